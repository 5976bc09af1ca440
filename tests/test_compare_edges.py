"""bench compare at its edges: specs written before a field existed, minimum effects through gain and
forgetting, several suites, patterns that match nothing, baselines that all failed, what the table hides,
and packed sets unpacked beside their archive."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from rich.console import Console

from bench.analysis.compare import compare_records
from bench.analysis.history import build
from bench.analysis.spec_keys import spec_key
from bench.analysis.verdicts import MISSING, NOT_COMPARABLE, SAME, UNKNOWN, WORSE
from bench.cli.console import change_text, comparison_table
from bench.plan import RunSpec
from bench.records.archives import pack
from bench.records.store import ResultStore, load_records, scan_records
from tests.synthetic_records import make_record, make_set, store

ROOT = Path(__file__).resolve().parents[1]
BASELINES = ("smollm2-cpu", "strategies", "smollm2-gpu-memory")


def committed(name: str) -> list:
    return [record for _, record in scan_records(ROOT / "results" / name)]


def as_written_today(record):
    """The record as a fresh run writes it: every RunSpec field, defaults included (processes 1, parallel
    ddp, gradient_checkpointing false, null preference and parent)."""
    fresh = RunSpec.model_validate(record.spec).model_dump(mode="json")
    return record.model_copy(update={"spec": fresh})


@pytest.mark.parametrize("name", BASELINES)
def test_a_fresh_run_is_comparable_with_a_committed_baseline(name: str):
    baseline = committed(name)
    assert baseline
    fresh = [as_written_today(record) for record in baseline]
    assert any(json.dumps(old.spec) != json.dumps(new.spec) for old, new in zip(baseline, fresh))
    for old, new in zip(baseline, fresh):
        assert RunSpec.model_validate(new.spec).run_id == old.run_id  # the same run ...
        assert spec_key(new) == spec_key(old)  # ... is the same spec to compare
    result = compare_records(baseline, fresh)
    assert not [issue for issue in result.issues if issue.kind == NOT_COMPARABLE]
    assert result.changes


def test_a_field_away_from_its_default_still_makes_runs_not_comparable():
    base = make_set()
    cand = [r.model_copy(update={"spec": {**r.spec, "processes": 2}}) for r in make_set()]
    result = compare_records(base, cand)
    assert {issue.detail for issue in result.issues} == {"spec changed: processes"}


def test_a_minimum_effect_for_accuracy_holds_for_gain_and_forgetting():
    drop = {
        "accuracy.cipher": 0.85,
        "gain.cipher": 0.85,
        "forgetting.next-letter": 1.5,
        "forgetting.copy": 1.5,
        "forgetting.mean": 1.5,
    }
    base, cand = make_set(), make_set(scale=drop)
    plain = compare_records(base, cand)
    assert {c.metric for c in plain.regressions} >= {"accuracy.cipher", "gain.cipher", "forgetting.mean"}
    large = compare_records(base, cand, min_effects={"accuracy.*": 0.5})
    quality = [c for c in large.changes if c.metric.split(".")[0] in ("accuracy", "gain", "forgetting")]
    assert quality and all(c.verdict == SAME and c.threshold == 0.5 for c in quality), [
        (c.metric, c.verdict, c.threshold) for c in quality
    ]
    assert not large.failed
    # a pattern naming the metric itself still wins over the accuracy it restates
    own = compare_records(base, cand, min_effects={"accuracy.*": 0.5, "gain.*": 0.01})
    assert [c.metric for c in own.regressions if c.strategy == "full"] == ["gain.cipher"]


def test_sets_holding_different_numbers_of_suites_match_by_suite_and_label():
    other = [
        r.model_copy(update={"suite": "other", "run_id": f"o-{r.run_id}", "spec": {**r.spec, "suite": "other"}})
        for r in make_set()
    ]
    result = compare_records(make_set(), make_set() + other)
    assert {c.strategy for c in result.changes} == {"smoke/full", "smoke/lora"}
    assert {(i.strategy, i.kind) for i in result.issues} == {
        ("other/full", "only in candidate"),
        ("other/lora", "only in candidate"),
    }


def test_a_fail_on_pattern_that_matches_nothing_is_an_error():
    with pytest.raises(ValueError, match="acuracy"):
        compare_records(make_set(), make_set(), fail_on=["acuracy.*", "train.*"])


def test_threshold_and_min_effect_patterns_that_match_nothing_are_warned(capsys):
    compare_records(make_set(), make_set(), thresholds={"trian.*": 0.2}, min_effects={"acc.*": 0.1})
    err = capsys.readouterr().err
    assert "--threshold 'trian.*' matches no metric" in err and "--min-effect 'acc.*' matches no metric" in err


def test_cli_exits_2_naming_a_fail_on_pattern_that_matches_nothing(tmp_path):
    folder = store(make_set(), tmp_path / "base")
    run = subprocess.run(
        [sys.executable, "-m", "bench.cli", "compare", folder, folder, "--fail-on", "acuracy.*"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )
    assert run.returncode == 2, run.stdout + run.stderr
    assert "acuracy.*" in run.stderr and "Traceback" not in run.stderr


def test_an_all_failed_baseline_is_named_as_such():
    failed = make_set(status="failed", reason="Traceback ...\nOOM")
    result = compare_records(failed, make_set())
    assert {(i.strategy, i.kind) for i in result.issues} == {
        ("full", "no successful baseline run"),
        ("lora", "no successful baseline run"),
    }
    assert not result.changes and not result.failed
    assert "seed 0 failed: OOM" in result.issues[0].detail


def rows(comparison) -> list[str]:
    console = Console(width=400, record=True)
    console.print(comparison_table(comparison))
    return console.export_text().splitlines()


def test_the_table_hides_metrics_missing_on_both_sides_when_timing_is_contaminated():
    unmeasured = {"train.tokens_per_s": None}
    cand = make_set(contaminated="planted: another process", values=unmeasured)
    result = compare_records(make_set(values=unmeasured), cand)
    both = [c for c in result.changes if c.metric == "train.tokens_per_s"]
    assert both and all(c.verdict == MISSING and c.note.startswith("not gated:") for c in both)
    shown = rows(result)
    assert not [line for line in shown if "train.tokens_per_s" in line]
    assert [line for line in shown if "timing contaminated" in line]  # the contamination itself is said


def test_accuracy_rows_without_a_test_show_their_change_in_points():
    base = make_set(seeds=(0,))
    cand = make_set(seeds=(1,), scale={"accuracy.cipher": 0.9})
    result = compare_records(base, cand)
    change = next(c for c in result.changes if c.metric == "accuracy.cipher" and c.strategy == "full")
    assert change.verdict == UNKNOWN
    assert change_text(change).endswith(" pt") and "%" not in change_text(change)
    assert f"{100 * (change.candidate - change.baseline):+.1f} pt" == change_text(change)
    timing = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert change_text(timing).endswith("%")


def test_a_packed_set_also_unpacked_beside_its_archive_counts_each_record_once(tmp_path):
    records = make_set()
    stage, root = tmp_path / "stage", tmp_path / "results"
    for record in records:
        ResultStore(stage / "records").write(record)
    (root / "smoke").mkdir(parents=True)
    pack(stage / "records", root / "smoke" / "records.tar.xz")
    with tarfile.open(root / "smoke" / "records.tar.xz") as archive:  # `tar -xJf records.tar.xz` in the set
        archive.extractall(root / "smoke", filter="data")
    assert (root / "smoke" / "records" / "smoke" / "x86_64-2c-cpu").is_dir()
    assert sorted(r.run_id for r in load_records(root / "smoke")) == sorted(r.run_id for r in records)


def test_history_of_an_archive_names_a_skipped_file_by_its_member(tmp_path, capsys):
    stage = tmp_path / "stage" / "records"
    ResultStore(stage).write(make_record("full", 0))
    (stage / "smoke" / "summary.json").write_text("{}")
    archive = tmp_path / "records.tar.xz"
    pack(stage, archive)
    history = build(archive)
    assert history.skipped_files == 1
    err = capsys.readouterr().err
    assert f"skipped {archive}/records/smoke/summary.json" in err, err


def test_a_regression_beyond_the_minimum_effect_still_gates():
    result = compare_records(make_set(), make_set(scale={"accuracy.cipher": 0.5}), min_effects={"accuracy.*": 0.2})
    assert {(c.strategy, c.metric) for c in result.regressions if c.verdict == WORSE} >= {("full", "accuracy.cipher")}


def test_a_long_reason_shared_by_rows_is_said_once_under_the_table():
    """One session a side: every timing row's note carried the same 9-line reason it cannot be tested."""
    one = [r.model_copy(update={"session": "s-base"}) for r in make_set()]
    other = [r.model_copy(update={"session": "s-cand"}) for r in make_set(scale={"train.tokens_per_s": 0.7})]
    text = "\n".join(rows(compare_records(one, other)))
    reason = "1 vs 1 sessions (bench run invocations): on a shared machine timing moves between sessions"
    assert text.count(reason) == 1 and text.index("[1] " + reason) > text.index("rows hidden")
    assert sum("cannot tell" in line and "[1]" in line for line in text.splitlines()) >= 2


def test_a_loss_row_states_one_effect_in_its_change_column_and_its_note():
    """The change column gave the ratio of the means (+400%) beside a note whose interval is for the seeds'
    mean log ratio (+291.5%): two sizes for one row."""
    from bench.records.results import Metric

    def with_loss(records, losses):
        out = []
        for record, loss in zip(records, losses):
            metrics = {**record.metrics, "train.final_loss": Metric(value=loss, unit="loss", higher_is_better=False)}
            out.append(record.model_copy(update={"metrics": metrics}))
        return out

    base = with_loss(make_set(labels=("full",)), [1.0, 1.0, 1.0])
    cand = with_loss(make_set(labels=("full",)), [2.0, 3.0, 10.0])
    row = next(c for c in compare_records(base, cand).changes if c.metric == "train.final_loss")
    assert change_text(row) == "+291.5%" and "+291.5%" in row.note
