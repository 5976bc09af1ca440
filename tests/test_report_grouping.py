"""Which runs the report and `bench recommend` compare: one run per seed over several nights, never pooled
across suites or across specs of one label; and the planning commands' one-line input errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.analysis import selection
from bench.cli.main import main
from bench.records.results import Metric, RunResult
from bench.report import aggregate, html
from tests.synthetic_records import TASK, make_set, store
from tests.test_paired import _with_items

ACCURACY = f"accuracy.{TASK}"
SUITE = Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml"


def night(day: int, **kw) -> list[RunResult]:
    """One night of the nightly: the same runs (seeds 0-2), started on day `day`."""
    return [
        r.model_copy(update={"started_at": f"2026-11-{day:02d}T12:00:00+00:00", "session": f"night{day}"})
        for r in make_set(**kw)
    ]


def in_suite(records: list[RunResult], suite: str, memory: float) -> list[RunResult]:
    """The records as another suite's, with this training memory."""
    out = []
    for r in records:
        metrics = dict(r.metrics)
        metrics["memory.train.components_mib"] = Metric(value=memory, unit="MiB", higher_is_better=False)
        out.append(r.model_copy(update={"suite": suite, "spec": {**r.spec, "suite": suite}, "metrics": metrics}))
    return out


def test_nights_count_each_seed_once_and_the_newest_stands() -> None:
    old = [night(day, values={ACCURACY: 0.5}) for day in range(1, 7)]
    newest = night(7, values={ACCURACY: 0.7})
    records = [r for nights in old for r in nights] + newest
    chosen = selection.comparable(records)
    assert sorted((r.label, r.seed) for r in chosen.records) == sorted((r.label, r.seed) for r in newest)
    assert all(r.started_at.startswith("2026-11-07") for r in chosen.records)
    assert chosen.notes and chosen.notes[0].startswith("7 nights") and "History" in chosen.notes[0]
    summary = html.context(records)
    most = next(a for a in summary["answers"] if a.question == "Most accurate")
    assert most.winner_mean == pytest.approx(0.7)
    assert all(len(row["seeds"]) == 3 for row in summary["rows"])
    assert summary["selection"] == chosen.notes


def test_several_suites_are_never_pooled() -> None:
    tiny = in_suite(make_set(), "smoke", 1.0)
    big = in_suite(make_set(), "smollm2", 300.0)
    summary = aggregate.summarize(selection.comparable([*tiny, *big]).records)
    memory = summary[summary["metric"] == "memory.train.components_mib"].set_index("strategy")["mean"]
    assert memory.to_dict() == {"smoke/full": 1.0, "smoke/lora": 1.0, "smollm2/full": 300.0, "smollm2/lora": 300.0}
    assert set(selection.keyed_records([*tiny, *big])) == set(memory.index)
    assert any("2 suites (smoke, smollm2)" in note for note in selection.comparable([*tiny, *big]).notes)


def test_a_changed_spec_keeps_the_newest_spec_and_says_what_it_left_out() -> None:
    old = [r for r in night(1, values={ACCURACY: 0.5}) if r.label == "lora"]
    new = night(2, values={ACCURACY: 0.9}, learning_rate=1e-3)
    chosen = selection.comparable([*old, *new])
    lora = [r for r in chosen.records if r.label == "lora"]
    assert len(lora) == 3 and all(r.spec["options"]["learning_rate"] == 1e-3 for r in lora)
    assert chosen.notes == ["lora: 3 runs of an older spec left out (1 older spec); the newest spec's runs are shown"]
    summary = aggregate.summarize(chosen.records)
    row = summary[(summary["strategy"] == "lora") & (summary["metric"] == ACCURACY)].iloc[0]
    assert row["mean"] == pytest.approx(0.9) and row["n"] == 3


def test_recommend_answers_per_suite(tmp_path: Path, capsys) -> None:
    store(in_suite(make_set(), "smoke", 1.0), tmp_path / "results")
    store(in_suite(make_set(), "smollm2", 300.0), tmp_path / "results")
    assert main(["recommend", str(tmp_path / "results"), "--memory", "24GiB"]) == 0
    out = capsys.readouterr().out
    assert "2 suites (smoke, smollm2)" in out and "== suite smoke ==" in out and "== suite smollm2 ==" in out
    assert "smoke/" not in out  # each suite ranked alone: no strategy dominated by another suite's


def test_no_recommendation_is_said_once(tmp_path: Path, capsys) -> None:
    folder = store(make_set(), tmp_path / "results")
    assert main(["recommend", str(folder), "--memory", "1KiB"]) == 1
    captured = capsys.readouterr()
    assert (captured.out + captured.err).count("no recommendation") == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--device-memory", "24GiB", "--batch-sizes", "2000000"], "--batch-sizes: each must be from 1 to 1048576"),
        (["--tokens", "99999999"], "--tokens must be a count from 1 to 1048576, got 99999999"),
        (["--device-memory", "24"], "--device-memory: '24' has no unit: give a unit, e.g. 24GiB"),
    ],
)
def test_estimate_refuses_out_of_range_input_in_one_line(args: list[str], said: str, capsys) -> None:
    assert main(["estimate", str(SUITE), *args]) == 2
    error = capsys.readouterr().err.strip()
    assert said in error and "\n" not in error and "Traceback" not in error


def test_estimate_names_a_model_config_that_is_not_json(tmp_path: Path, capsys) -> None:
    config = tmp_path / "config.json"
    config.write_text("not json", encoding="utf-8")
    assert main(["estimate", str(SUITE), "--model-config", str(config)]) == 2
    assert str(config) in capsys.readouterr().err


def test_recommend_refuses_a_bare_number_of_memory(tmp_path: Path, capsys) -> None:
    folder = store(make_set(), tmp_path / "results")
    assert main(["recommend", str(folder), "--memory", "24"]) == 2
    assert "--memory: '24' has no unit: give a unit, e.g. 24GiB" in capsys.readouterr().err


WITH_ITEMS = {"full": "1111111111" * 3, "lora": "0000111111" * 3}


def test_several_suites_are_answered_each_on_its_own() -> None:
    """Two suites in one folder: each question per suite, the winner among that suite's strategies, where
    before the table ranked one suite's strategy against another's ('Least memory: smoke/full vs
    smollm2/full')."""
    before = "0000011111" * 3
    scored = [_with_items(label, s, after, before) for label, after in WITH_ITEMS.items() for s in (0, 1, 2)]
    tiny = in_suite(scored, "smoke", 1.0)
    big = in_suite(scored, "smollm2", 300.0)
    for r in big:
        if r.label == "lora":
            r.metrics["memory.train.components_mib"] = Metric(value=200.0, unit="MiB", higher_is_better=False)
    found = html.context([*tiny, *big])
    memory = {a.suite: a for a in found["answers"] if a.question.startswith("Least memory")}
    assert set(memory) == {"smoke", "smollm2"}
    assert (memory["smollm2"].winner, memory["smollm2"].runner_up) == ("lora", "full")
    assert memory["smollm2"].winner_mean == 200.0 and memory["smoke"].winner_mean == 1.0
    assert {a.suite for a in found["answers"]} == {"smoke", "smollm2"}
    alone = {a.question: a for a in aggregate.answers(tiny)}
    assert [(a.question, a.winner, a.beyond_noise, a.note) for a in found["answers"] if a.suite == "smoke"] == [
        (q, a.winner, a.beyond_noise, a.note) for q, a in alone.items()
    ]  # as in a report of that suite alone
    assert [q["suite"] for q in found["qualities"]] == ["smoke", "smollm2"]
    assert found["task"] is None and found["model"] is None  # each suite names its own
    page = html.render([*tiny, *big])
    assert (
        "<th>Suite</th><th>Question</th>" in page
        and 'id="quality-table-smoke"' in page
        and 'id="quality-table-smollm2"' in page
    )


def test_one_suite_keeps_its_table_as_it_was() -> None:
    page = html.render([_with_items(label, 0, after, "0000011111" * 3) for label, after in WITH_ITEMS.items()])
    assert "<th>Question</th>" in page and "<th>Suite</th><th>Question</th>" not in page
    assert 'id="quality-table"' in page
    assert all(a.suite is None for a in html.context(make_set())["answers"])


def test_the_front_page_line_answers_each_suite(tmp_path: Path) -> None:
    from bench.report.front import one_line_answer

    tiny = in_suite(make_set(values={ACCURACY: 0.9}), "smoke", 1.0)
    big = in_suite(make_set(values={ACCURACY: 0.5}), "smollm2", 300.0)
    line = one_line_answer([*tiny, *big])
    assert line.startswith("smoke: Most accurate: ") and "; smollm2: Most accurate: " in line
    assert "smoke/" not in line
    assert not one_line_answer(tiny).startswith("smoke:")
