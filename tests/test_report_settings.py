"""The settings each strategy ran with, said in the report and above `bench run`'s table: learning rates
decide a ranking (strategy defaults span 2e-5 to 3e-2), and no report showed them (user audit)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.console import Console

from bench.analysis import selection
from bench.cli.main import main
from bench.records.results import RunResult
from bench.records.store import load_records
from bench.report.html import render
from tests.conftest import fast_suite, write_suite
from tests.synthetic_records import make_record, make_set

ROOT = Path(__file__).resolve().parents[1]


def with_options(record: RunResult, **options: object) -> RunResult:
    """The record as one whose suite entry set these options (its resolved options, as records store them)."""
    spec = {**record.spec, "options": {**record.spec["options"], **options}}
    return record.model_copy(update={"spec": spec})


def mixed() -> list[RunResult]:
    """full at its default rate (2e-5); lora at 1e-2 with r=16 (defaults 2e-4 and r=8)."""
    full = make_set(labels=("full",), learning_rate=2e-5)
    lora = [with_options(r, r=16, alpha=16.0) for r in make_set(labels=("lora",), learning_rate=1e-2)]
    return full + lora


def settings_html(page: str) -> str:
    found = re.search(r'<section id="settings">(.*?)</section>', page, re.S)
    assert found, "the report has no Settings section"
    return found.group(1)


def row_of(section: str, strategy: str) -> str:
    """The settings table's row of one strategy, its tags removed."""
    rows = re.findall(r"<tr>(.*?)</tr>", section, re.S)
    found = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", row)).strip() for row in rows if f"<b>{strategy}</b>" in row]
    assert len(found) == 1, f"{strategy}: {found}"
    return found[0]


def test_the_table_lists_each_strategys_rate_and_its_non_default_options():
    page = render(mixed())
    section = settings_html(page)
    assert 'id="settings-table"' in section
    assert page.index('id="results-table"') < page.index('id="settings"') < page.index('id="timing-quality"')
    assert row_of(section, "full") == "full 0, 1, 2 2e-05 (default) —"
    assert row_of(section, "lora") == "lora 0, 1, 2 0.01 (default 0.0002) r=16 (default 8)"  # alpha 16: the default
    shared = re.search(r'id="shared-training">(.*?)</p>', section, re.S)
    assert shared is None  # synthetic specs hold no training settings: nothing to say under the table


def test_a_note_says_when_the_rates_differ_and_not_when_they_are_equal():
    note = re.search(r'id="rate-note">(.*?)</p>', settings_html(render(mixed())), re.S)
    assert note and "Learning rates differ between strategies (2e-05 to 0.01)" in note.group(1)
    assert "learning-rate sweep per strategy" in note.group(1)
    same = settings_html(render(make_set(learning_rate=3e-3)))
    assert 'id="rate-note"' not in same
    assert row_of(same, "full") == "full 0, 1, 2 0.003 (default 2e-05) —"


def test_seeds_of_one_strategy_that_ran_with_other_options_get_a_row_each(monkeypatch):
    """One spec cannot (its options are part of it), so comparable is bypassed to plant it."""
    monkeypatch.setattr(selection, "comparable", lambda records: selection.Selection(list(records)))
    from bench.report.settings import rates_line, settings_rows

    runs = [make_record("lora", 0, learning_rate=1e-2), make_record("lora", 1, learning_rate=2e-4)]
    rows = settings_rows(runs)
    assert [(row["seeds"], row["rate"], row["default"], row["split"]) for row in rows] == [
        ([0], 1e-2, False, True),
        ([1], 2e-4, True, True),
    ]
    assert rates_line(runs) == "learning rates: lora 0.01 (seed 0) / 0.0002 (default) (seed 1)"


def test_a_strategy_without_known_defaults_shows_the_options_its_runs_differ_in():
    """A plugin's strategy (not imported by the report): no rate is called the default, and of its options
    those not the same in all its runs are shown."""
    runs = [
        with_options(make_record("full", 0), width=4, depth=2).model_copy(update={"label": "mine-a"}),
        with_options(make_record("full", 1), width=8, depth=2).model_copy(update={"label": "mine-b"}),
    ]
    runs = [r.model_copy(update={"strategy": "mine", "spec": {**r.spec, "strategy": "mine"}}) for r in runs]
    section = settings_html(render(runs))
    assert row_of(section, "mine-a") == "mine-a mine 0 0.003 width=4"
    assert row_of(section, "mine-b") == "mine-b mine 1 0.003 width=8"


def test_the_committed_results_show_their_rates_and_options():
    strategies = settings_html(render(list(load_records(ROOT / "results" / "strategies"))))
    assert row_of(strategies, "adapter") == "adapter 0 0.01 (default 0.0001) bottleneck=16 (default none)"
    assert row_of(strategies, "prompt") == "prompt 0 0.3 (default 0.03) —"
    assert "Learning rates differ between strategies (0.003 to 0.3)" in strategies
    assert "optimizer=adamw_torch" in strategies and "lr_scheduler=constant" in strategies
    smoke = settings_html(render(list(load_records(ROOT / "results" / "smoke"))))
    assert row_of(smoke, "full") == "full 0, 1, 2 0.001 (default 2e-05) —"
    assert row_of(smoke, "lora") == "lora 0, 1, 2 0.003 (default 0.0002) —"


def test_the_terminal_line_lists_each_strategys_rate():
    from bench.cli.console import print_learning_rates

    out = Console(record=True, width=200)
    print_learning_rates(mixed(), out, Console(record=True))
    assert out.export_text().strip() == "learning rates: full 2e-05 (default), lora 0.01"
    smoke = Console(record=True, width=200)
    print_learning_rates(list(load_records(ROOT / "results" / "smoke")), smoke, Console(record=True))
    assert smoke.export_text().strip() == "learning rates: full 0.001, lora 0.003"


def test_bench_run_prints_the_rates_with_its_table(tmp_path, monkeypatch, capsys):
    """Right above the table, so that the answer stays the last line (tests/test_terminal_results.py)."""
    import bench.api
    from bench.execute import ExecutionReport

    suite = write_suite(tmp_path, fast_suite("smoke", ["full", "lora"]))
    ran = mixed()
    monkeypatch.setattr(bench.api, "run_suite", lambda *a, **k: ExecutionReport(ran, executed=len(ran)))
    code = main(["run", str(suite), "--results", str(tmp_path / "results"), "--no-report"])
    said = capsys.readouterr().out
    assert code == 0
    assert "learning rates: full 2e-05 (default), lora 0.01" in said
    assert said.index("learning rates:") < said.index("results (mean") < said.index("answer:")


@pytest.mark.parametrize("kind", ["full", "lora", "adapter", "qlora", "prompt", "prefix", "dpo", "rlhf"])
def test_reading_a_strategys_defaults_never_imports_torch(kind):
    """The report never imports torch (tests/test_report.py renders in a fresh process); the defaults come
    from the strategy modules, which must stay free of it: checked in a fresh process per strategy."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from bench.report.settings import strategy_defaults\n"
        f"assert strategy_defaults({kind!r})['learning_rate'] > 0\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules)\n"
        "raise SystemExit(f'heavy: {heavy}' if heavy else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr


def test_no_star_on_a_loss_where_the_strategies_minimise_different_losses():
    """audit user17: the table starred train.final_loss across IPO (9.37), DPO's sigmoid (0.445) and RLOO (0.0),
    values of different losses. Where every strategy minimises one kind of loss, the star stays."""
    from bench.records.results import Metric
    from bench.report.html import context
    from tests.synthetic_records import make_set

    def with_loss(records, value, strategy=None, loss_type=None):
        changed = []
        for record in records:
            spec = dict(record.spec)
            if strategy:
                spec["strategy"] = strategy
            if loss_type:
                spec["options"] = {**spec["options"], "loss_type": loss_type}
            metrics = {**record.metrics, "train.final_loss": Metric(value=value, unit="nats", higher_is_better=False)}
            changed.append(record.model_copy(update={"spec": spec, "metrics": metrics}))
        return changed

    def stars(records):
        return {c["name"]: c["best"] for c in context(records)["columns"]}["train.final_loss"]

    same = with_loss(make_set(labels=("full",)), 0.4) + with_loss(make_set(labels=("lora",)), 0.6)
    assert stars(same) == ["full"]
    mixed = with_loss(make_set(labels=("full",)), 0.4) + with_loss(make_set(labels=("lora",)), 9.4, "dpo", "ipo")
    assert stars(mixed) == []
