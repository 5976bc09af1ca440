"""A sweep of many strategies (audit user21, 2026-12-08): a chart's legend listed the first 17 of 50 in a
fixed 340 px figure and cut the rest (and its notes) silently; the report's Settings table computed which
options vary across every run once per strategy (635,000 deep copies of a spec at 5,000 records). Each test
fails on the code before."""

from __future__ import annotations

import re

import bench.report.settings as settings
from bench.report import charts, html
from tests.synthetic_records import make_set

LEGEND = re.compile(r'<text x="[\d.]+" y="([\d.]+)" class="legend[^"]*">([^<]+)</text>')


def _height(svg: str) -> float:
    return float(re.search(r'viewBox="0 0 [\d.]+ ([\d.]+)"', svg).group(1))


def test_a_legend_of_40_strategies_lists_each_within_the_chart() -> None:
    names = [f"lora-v{index:02d}" for index in range(40)]
    svg = charts.bars("x", "x", ["a", "b"], {name: [1.0, 2.0] for name in names}, "ms", {})
    shown = LEGEND.findall(svg)
    assert [text for _, text in shown] == names
    assert max(float(y) for y, _ in shown) < _height(svg)


def test_a_legend_note_is_wrapped_to_the_margin_it_is_drawn_in() -> None:
    """The trend chart's "whiskers: ± half the seeds' range" ran past the right edge."""
    svg = charts.trend("t", "t", {"full": [(1.0, 1.0, 0.1, "n1"), (2.0, 1.1, 0.1, "n2")]}, {}, "acc", {})
    notes = [text for _, text in LEGEND.findall(svg) if text != "full"]
    assert " ".join(notes) == "dashed: change point whiskers: ± half the seeds&#x27; range"
    assert all(len(line.replace("&#x27;", "'")) <= charts.NOTE_CHARACTERS for line in notes)


def test_the_settings_table_reads_each_runs_options_a_bounded_number_of_times(monkeypatch) -> None:
    """Linear in runs, not strategies x runs: 30 strategies x 2 seeds."""
    records = []
    for index in range(30):
        for run in make_set(seeds=(0, 1), labels=("lora",)):
            spec = {**run.spec, "label": f"lora-{index}", "options": {**run.spec["options"], "r": index + 1}}
            records.append(run.model_copy(update={"label": f"lora-{index}", "spec": spec}))
    calls = []
    real = settings.options_of
    monkeypatch.setattr(settings, "options_of", lambda record: calls.append(record) or real(record))
    rows = settings.settings_rows(records)
    assert len(rows) == 30
    assert len(calls) <= 3 * len(records), len(calls)
    assert "lora-29" in html.render(records)


def test_the_regression_line_names_the_first_ten_of_a_sweeps_regressions(capsys) -> None:
    """One line of 7.5 KB named 211 regressions; now their count and the first ten."""
    from types import SimpleNamespace

    from bench.cli.console import verdict

    regressions = [
        SimpleNamespace(strategy=f"lora-{index}", metric="accuracy.cipher", effect=-0.03, scale="points")
        for index in range(211)
    ]
    result = SimpleNamespace(unreadable={}, bad_input=[], changes=regressions, failed=True, regressions=regressions)
    result.issues = []
    assert verdict(result) == 1
    said = " ".join(capsys.readouterr().err.split())
    assert said.startswith("REGRESSION 211 gating changes, the first 10: lora-0: accuracy.cipher -3.0 pt; lora-1:")
    assert "lora-9: accuracy.cipher" in said and "lora-10:" not in said and len(said) < 600


def test_a_report_of_one_folder_reads_its_records_once_and_still_says_what_it_skipped(tmp_path, capsys, monkeypatch):
    """One folder is one night: no trend to draw, so no second read of every record (5,000: 10 s, 1 GB)."""
    import bench.analysis.history
    from bench.api import report
    from tests.synthetic_records import store

    folder = store(make_set(), tmp_path / "results")
    (folder / "summary.json").write_text('{"counts": {}}')
    monkeypatch.setattr(bench.analysis.history, "build", lambda *args, **kwargs: 1 / 0)
    report(folder, tmp_path / "r.html")
    said = capsys.readouterr().err
    assert f"skipped {folder / 'summary.json'}: not a record" in said and "1 JSON file(s) under" in said


def test_a_file_skipped_inside_a_packed_set_is_named_by_its_member(tmp_path, capsys) -> None:
    """It was named by the temporary folder the archive was read from (/tmp/bench-records-xxxx/...)."""
    from bench.records.archives import pack
    from bench.records.store import ResultStore, load_records

    stage = tmp_path / "stage" / "records"
    for record in make_set():
        ResultStore(stage).write(record)
    (stage / "summary.json").write_text('{"counts": {}}')
    (tmp_path / "results" / "smoke").mkdir(parents=True)
    pack(stage, tmp_path / "results" / "smoke" / "records.tar.xz")
    assert len(list(load_records(tmp_path / "results" / "smoke"))) == 6
    said = capsys.readouterr().err
    assert f"skipped {tmp_path / 'results' / 'smoke' / 'records.tar.xz' / 'records' / 'summary.json'}" in said
    assert "bench-records-" not in said


def test_the_settings_table_writes_many_seeds_as_ranges() -> None:
    from bench.report.scales import runs_of

    assert runs_of(list(range(20))) == "0-19"
    assert runs_of([7, 0, 1, 2, 3, 11, 9, 10]) == "0-3, 7, 9, 10, 11"
    assert runs_of([0, 1, 2]) == "0, 1, 2"  # as short as the range
    page = html.render(make_set(seeds=tuple(range(12)), labels=("lora",)))
    assert "<td>0-11</td>" in page
