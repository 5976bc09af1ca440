"""bench compare's audit: a diverged candidate gates, unreadable candidate records and records that
contradict their own items are bad input (exit 2), absent seeds are said, counted memory is compared across
hardware, and a base model recorded on neither side is said so (docs/report-and-compare.md)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from bench.analysis import items, stats
from bench.analysis.compare import compare_records
from bench.analysis.verdicts import INCONSISTENT, MISSING, NOT_COMPARABLE, SAME, UNREADABLE, WORSE
from bench.cli.main import main as cli_main
from bench.measure.components import COMPONENTS
from bench.records import store as store_module
from bench.records.results import Metric, RunResult
from bench.records.store import Skipped, scan_records
from tests.synthetic_records import TASK, make_record, make_set, store

LOSS = "train.final_loss"
COUNTED = "memory.train.weights_trainable_mib"


def _with(record: RunResult, **values: float) -> RunResult:
    """The record with these metrics set (added where absent), keyword names with `__` for dots."""
    metrics = dict(record.metrics)
    for key, value in values.items():
        name = key.replace("__", ".")
        unit, higher = (metrics[name].unit, metrics[name].higher_is_better) if name in metrics else ("MiB", False)
        if name == LOSS:
            unit, higher = "loss", False
        metrics[name] = Metric(value=value, unit=unit, higher_is_better=higher)
    return record.model_copy(update={"metrics": metrics})


def _row(result, strategy: str, metric: str):
    return next(c for c in result.changes if c.strategy == strategy and c.metric == metric)


def _with_loss(records: list[RunResult]) -> list[RunResult]:
    return [_with(r, train__final_loss=0.30 + 0.01 * r.seed) for r in records]


# ---- 1. a diverged candidate -------------------------------------------------------------------


def test_a_diverged_candidate_loss_is_a_gating_regression_and_a_nan_timing_is_not():
    base = _with_loss(make_set(labels=("full",)))
    cand = _with_loss(make_set(labels=("full",)))
    cand[1] = _with(cand[1], train__final_loss=math.inf, train__tokens_per_s=math.nan)
    result = compare_records(base, cand)
    loss = _row(result, "full", LOSS)
    assert loss.verdict == WORSE and loss.regression and loss.p_value is None
    assert loss.note == "diverged: candidate seed 1: inf"
    timing = _row(result, "full", "train.tokens_per_s")  # a measurement that failed: not tested, not gated
    assert timing.verdict == MISSING and "not a number (candidate seed 1: nan): not tested" in timing.note
    assert result.failed and [c.metric for c in result.regressions] == [LOSS]


def test_a_nan_accuracy_in_the_candidate_gates_but_not_outside_fail_on():
    base, cand = make_set(labels=("full",)), make_set(labels=("full",))
    cand[2] = _with(cand[2], **{f"accuracy__{TASK}": math.nan})
    assert _row(compare_records(base, cand), "full", f"accuracy.{TASK}").regression
    held = _row(compare_records(base, cand, fail_on=["train.*"]), "full", f"accuracy.{TASK}")
    assert held.verdict == WORSE and not held.gating and "not in --fail-on" in held.note


def test_a_diverged_baseline_is_not_tested_and_says_why():
    base = _with_loss(make_set(labels=("full",)))
    base[0] = _with(base[0], train__final_loss=math.nan)
    result = compare_records(base, _with_loss(make_set(labels=("full",))))
    loss = _row(result, "full", LOSS)
    assert loss.verdict == MISSING and not result.failed
    assert "baseline seed 0: nan" in loss.note and "the baseline has no finite level" in loss.note


def test_cli_exits_1_on_a_diverged_candidate(tmp_path, capsys):
    """The record as the audit found it: `Infinity` in its JSON (Python's json writes it; pydantic writes null)."""
    base = store(_with_loss(make_set(labels=("full",))), tmp_path / "base")
    cand = store(_with_loss(make_set(labels=("full",))), tmp_path / "cand")
    path = cand / "full-0-0.003.json"
    raw = json.loads(path.read_text())
    raw["metrics"][LOSS]["value"] = math.inf
    path.write_text(json.dumps(raw))
    assert cli_main(["compare", str(base), str(cand)]) == 1
    captured = capsys.readouterr()
    assert "diverged: candidate seed 0: inf" in captured.out and "REGRESSION full: train.final_loss" in captured.err


# ---- 2. unreadable record files ----------------------------------------------------------------


def _damage(folder: Path) -> list[Path]:
    """A truncated record, one of a newer schema, and beside them JSON that is no record at all."""
    files = sorted(folder.glob("*.json"))
    text = files[0].read_text()
    files[0].write_text(text[:300])
    raw = json.loads(files[1].read_text())
    files[1].write_text(json.dumps({**raw, "schema_version": 99}))
    (folder / "summary.json").write_text(json.dumps({"alpha": 0.05, "changes": []}))
    return files[:2]


def test_only_files_that_may_be_records_are_damaged(tmp_path):
    folder = store(make_set(labels=("full",)), tmp_path / "results")
    broken = _damage(folder)
    (folder / "list.json").write_text("[1, 2]")
    (folder / "empty.json").write_text("")
    skipped: list[Skipped] = []
    assert len(list(scan_records(folder, skipped))) == 1
    damaged = {one.path.name for one in skipped if one.damaged}
    assert damaged == {broken[0].name, broken[1].name, "empty.json"}
    assert {one.path.name for one in skipped if not one.damaged} == {"summary.json", "list.json"}


def test_cli_exits_2_naming_unreadable_candidate_records_unless_allowed(tmp_path, capsys):
    base = store(make_set(), tmp_path / "base")
    cand = store(make_set(), tmp_path / "cand")
    broken = _damage(cand)
    store_module._SAID.clear()
    out = tmp_path / "cmp.json"
    assert cli_main(["compare", str(base), str(cand), "--json", str(out)]) == 2
    err = capsys.readouterr().err
    assert "BAD INPUT" in err and all(f"unreadable candidate record {path}" in err for path in broken)
    assert "summary.json" not in err.split("BAD INPUT")[1]  # a JSON that is no record is not a damaged one
    written = json.loads(out.read_text())
    assert [line.split(":")[0] for line in written["unreadable"]["candidate"]] == [str(p) for p in broken]
    assert [i["kind"] for i in written["issues"][:2]] == [UNREADABLE, UNREADABLE]
    store_module._SAID.clear()
    assert cli_main(["compare", str(base), str(cand), "--allow-unreadable"]) == 0
    assert "WARNING: 2 candidate record file(s) unreadable" in capsys.readouterr().err


def test_unreadable_baseline_records_are_said_and_do_not_fail_the_gate(tmp_path, capsys):
    base = store(make_set(), tmp_path / "base")
    cand = store(make_set(), tmp_path / "cand")
    _damage(base)
    store_module._SAID.clear()
    assert cli_main(["compare", str(base), str(cand)]) == 0
    captured = capsys.readouterr()
    assert "WARNING: 2 baseline record file(s) unreadable, so runs may be missing" in captured.err
    assert "(baseline)" in captured.out and UNREADABLE in captured.out


# ---- 3. seeds absent from one side -------------------------------------------------------------


def test_a_seed_missing_from_either_side_is_said_and_does_not_gate():
    result = compare_records(make_set(labels=("full",)), make_set(seeds=(0, 1), labels=("full",)))
    issues = [(i.kind, i.detail, i.gating) for i in result.issues]
    assert issues == [
        ("seed missing in candidate", "the candidate lacks seed(s) 2 of full (the baseline ran 0, 1, 2)", False)
    ]
    assert not result.failed
    other = compare_records(make_set(seeds=(0,), labels=("full",)), make_set(labels=("full",)))
    assert [i.detail for i in other.issues] == ["the baseline lacks seed(s) 1, 2 of full (the candidate ran 0, 1, 2)"]


def test_a_failed_candidate_seed_is_failed_not_missing():
    cand = make_set(seeds=(0, 1), labels=("full",)) + [make_record("full", 2, status="failed", reason="OOM")]
    result = compare_records(make_set(labels=("full",)), cand)
    assert [i.kind for i in result.issues] == ["failed in candidate"] and result.failed


# ---- 4. counted memory across hardware ---------------------------------------------------------


def test_counted_memory_is_compared_across_hardware_and_measured_peaks_are_not():
    base = [_with(r, memory__train__weights_trainable_mib=0.34) for r in make_set(labels=("full",))]
    cand = [_with(r, memory__train__weights_trainable_mib=0.68) for r in make_set(labels=("full",), cpu="Intel Xeon")]
    result = compare_records(base, cand)
    counted = _row(result, "full", COUNTED)
    assert counted.verdict == WORSE and counted.regression
    assert "counted from tensor sizes, so compared though hardware differs (cpu Test CPU -> Intel Xeon)" in counted.note
    peak = _row(result, "full", "memory.train.host_peak_mib")
    assert peak.verdict == NOT_COMPARABLE and not peak.gating
    assert _row(result, "full", "train.tokens_per_s").verdict == NOT_COMPARABLE


def test_every_counted_component_and_only_those_leave_the_hardware_bound_metrics():
    for name in (*COMPONENTS, "components"):
        assert not stats.hardware_bound(f"memory.train.{name}_mib"), name
    for measured in ("host_peak_mib", "cuda_allocated_peak_mib", "cuda_reserved_peak_mib", "nvml_process_mib"):
        assert stats.hardware_bound(f"memory.train.{measured}"), measured
    assert stats.hardware_bound("train.tokens_per_s") and not stats.hardware_bound(f"accuracy.{TASK}")


# ---- 5. a base model recorded on neither side --------------------------------------------------


@pytest.mark.parametrize(
    ("base_sha", "cand_sha", "where"),
    [(None, None, "either side"), ("a" * 64, None, "the candidate side"), (None, "a" * 64, "the baseline side")],
)
def test_an_unrecorded_base_model_names_the_side(base_sha, cand_sha, where):
    result = compare_records(make_set(base_sha=base_sha), make_set(base_sha=cand_sha))
    details = {i.detail for i in result.issues if i.kind == "unchecked"}
    assert details == {f"base model sha256 not recorded on {where}"}


# ---- 6. a headline that disagrees with its items -----------------------------------------------


def _scored(record: RunResult, after: str, before: str) -> RunResult:
    """The record with per-item outcomes of the task, its accuracy and gain consistent with them."""
    ids = [f"item-{i}" for i in range(len(after))]
    accuracy, start = after.count("1") / len(after), before.count("1") / len(before)
    updated = _with(record, **{f"accuracy__{TASK}": accuracy, f"accuracy_before__{TASK}": start})
    updated = _with(updated, **{f"gain__{TASK}": accuracy - start})
    return updated.model_copy(update={"items": {TASK: items.item_record(ids, before, after)}})


def _scored_set() -> list[RunResult]:
    runs = []
    for seed, record in enumerate(make_set(labels=("full",))):
        after = "".join("1" if (i + seed) % 10 else "0" for i in range(100))  # 90 of 100 right
        runs.append(_scored(record, after, "0" * 95 + "1" * 5))
    return runs


def test_a_headline_that_disagrees_with_its_items_is_bad_input_and_not_tested():
    base, cand = _scored_set(), _scored_set()
    assert not compare_records(base, cand).bad_input  # consistent records: nothing said
    cand[1] = _with(cand[1], **{f"accuracy__{TASK}": cand[1].metrics[f"accuracy.{TASK}"].value - 0.4})
    result = compare_records(base, cand)
    row = _row(result, "full", f"accuracy.{TASK}")
    assert row.verdict == NOT_COMPARABLE and not row.gating and row.p_value is None
    assert "candidate seed 1 (run full-1-0.003): 0.5, but its 100 item outcomes give 0.9" in row.note
    assert [(i.kind, i.bad_input) for i in result.bad_input] == [(INCONSISTENT, True)]
    assert result.failed and result.to_json()["bad_input"]
    assert _row(result, "full", f"gain.{TASK}").verdict == SAME  # its own items agree: still compared


def test_one_item_off_is_caught_and_float_rounding_is_not():
    record = _scored_set()[0]
    value = record.metrics[f"accuracy.{TASK}"].value
    assert items.headline_gap(_with(record, **{f"accuracy__{TASK}": value + 1e-12}), f"accuracy.{TASK}") is None
    assert items.headline_gap(_with(record, **{f"accuracy__{TASK}": value - 0.01}), f"accuracy.{TASK}") == (
        pytest.approx(value - 0.01),
        pytest.approx(value),
        100,
    )


def test_cli_exits_2_naming_a_record_that_disagrees_with_its_items(tmp_path, capsys):
    cand = _scored_set()
    cand[0] = _with(cand[0], **{f"accuracy__{TASK}": 0.5})
    base_folder, cand_folder = store(_scored_set(), tmp_path / "base"), store(cand, tmp_path / "cand")
    assert cli_main(["compare", str(base_folder), str(cand_folder)]) == 2
    err = capsys.readouterr().err
    assert "BAD INPUT" in err and f"full: accuracy.{TASK}: candidate seed 0 (run full-0-0.003)" in err


def test_a_diverged_row_says_so_in_its_change_column():
    from bench.cli.console import change_text

    cand = make_set()
    cand[1] = cand[1].model_copy(
        update={
            "metrics": {
                **cand[1].metrics,
                f"accuracy.{TASK}": Metric(value=math.nan, unit="acc", higher_is_better=True),
            }
        }
    )
    row = _row(compare_records(make_set(), cand), "full", f"accuracy.{TASK}")
    assert row.verdict == WORSE and change_text(row) == "diverged"  # it printed "+nan pt"
