"""Quality verdicts that know training (seed) noise: seed-paired, in points, family-wise (issue 24)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from bench.analysis.compare import compare_records
from bench.analysis.items import item_record
from bench.analysis.stats import benjamini_hochberg
from bench.analysis.verdicts import NOISE, SAME, UNKNOWN, WORSE
from bench.records.store import load_records
from tests.conftest import bench_cli, write_suite
from tests.synthetic_records import make_record, store

ROOT = Path(__file__).resolve().parents[1]
FORGETTING = ROOT / "results" / "smollm2-forgetting"


def _row(result, strategy: str, metric: str):
    return next(c for c in result.changes if c.strategy == strategy and c.metric == metric)


def _quality_rows(result):
    families = ("accuracy.", "gain.", "forgetting.")
    return [c for c in result.changes if c.metric.startswith(families) and c.verdict != "missing"]


def test_one_seed_a_side_cannot_tell_and_never_gates():
    """Seed 0 against seed 1 of the committed SmolLM2 comparison: same commit, nothing changed."""
    records = list(load_records(FORGETTING))
    result = compare_records([r for r in records if r.seed == 0], [r for r in records if r.seed == 1])
    assert not result.failed, [f"{c.strategy} {c.metric}" for c in result.regressions]
    rows = _quality_rows(result)
    assert len(rows) >= 40 and all(c.verdict == UNKNOWN for c in rows)
    assert all("seed-to-seed (training) variance cannot be estimated" in c.note for c in rows)


def _flip_items(record, task: str, positions: list[int]):
    """The record with these items of `task` scored wrong after training, and its metrics to match."""
    items = dict(record.items)
    entry = dict(items[task])
    after = list(entry["after"])
    for index in positions:
        after[index] = "0"
    entry["after"] = "".join(after)
    items[task] = entry
    metrics = dict(record.metrics)
    accuracy = entry["after"].count("1") / len(after)
    forgetting = accuracy - entry["before"].count("1") / len(after)
    metrics[f"accuracy.{task}"] = metrics[f"accuracy.{task}"].model_copy(update={"value": accuracy})
    metrics[f"forgetting.{task}"] = metrics[f"forgetting.{task}"].model_copy(update={"value": forgetting})
    retained = [name for name in metrics if name.startswith("forgetting.") and name != "forgetting.mean"]
    mean = sum(metrics[name].value for name in retained) / len(retained)
    metrics["forgetting.mean"] = metrics["forgetting.mean"].model_copy(update={"value": mean})
    return record.model_copy(update={"items": items, "metrics": metrics})


def test_eight_arc_easy_items_made_wrong_for_lora_in_every_seed_gate():
    records = list(load_records(FORGETTING))
    lora = [r for r in records if r.label == "lora"]
    right_in_both = [i for i in range(150) if all(r.items["arc-easy"]["after"][i] == "1" for r in lora)][:8]
    candidate = [_flip_items(r, "arc-easy", right_in_both) if r.label == "lora" else r for r in records]
    result = compare_records(records, candidate)
    assert result.failed
    assert {(c.strategy, c.metric) for c in result.regressions} == {
        ("lora", "accuracy.arc-easy"),
        ("lora", "forgetting.arc-easy"),
        ("lora", "forgetting.mean"),
    }
    row = _row(result, "lora", "accuracy.arc-easy")
    assert row.effect == pytest.approx(-8 / 150) and row.test == "items"
    assert row.high < 0  # the gate and its interval agree
    assert "paired by seed and item (2 seeds x 150 items)" in row.note
    assert _row(result, "full", "accuracy.arc-easy").verdict == SAME  # untouched strategies: identical


def _final_loss_half_again(records):
    worse = []
    for record in records:
        loss = record.metrics["train.final_loss"]
        metrics = {**record.metrics, "train.final_loss": loss.model_copy(update={"value": loss.value * 1.5})}
        worse.append(record.model_copy(update={"metrics": metrics}))
    return worse


def test_final_loss_half_again_on_every_seed_gates_however_few_seeds():
    records = list(load_records(ROOT / "results" / "smoke"))
    worse = _final_loss_half_again(records)
    result = compare_records(records, worse)
    assert result.failed
    for strategy in ("full", "lora"):
        row = _row(result, strategy, "train.final_loss")
        assert row.verdict == WORSE and row.gating and "paired by seed (3 seeds)" in row.note
        assert math.expm1(row.effect) == pytest.approx(0.5)
        assert "+50.0%" in row.note


def test_seeds_pair_whatever_order_the_records_come_in():
    records = list(load_records(ROOT / "results" / "smoke"))
    worse = _final_loss_half_again(records)
    in_order = sorted(records, key=lambda r: r.seed)
    reversed_candidate = sorted(worse, key=lambda r: -r.seed)
    row = _row(compare_records(in_order, reversed_candidate), "full", "train.final_loss")
    assert "paired by seed (3 seeds)" in row.note and math.expm1(row.effect) == pytest.approx(0.5)


def _with_outcomes(label: str, seed: int, after: str, before: str, task: str = "cipher"):
    record = make_record(label, seed)
    metrics = dict(record.metrics)
    accuracy = after.count("1") / len(after)
    metrics[f"accuracy.{task}"] = metrics[f"accuracy.{task}"].model_copy(update={"value": accuracy})
    gain = accuracy - before.count("1") / len(before)
    metrics[f"gain.{task}"] = metrics[f"gain.{task}"].model_copy(update={"value": gain})
    ids = [f"{task}-{i}" for i in range(len(after))]
    return record.model_copy(update={"items": {task: item_record(ids, before, after)}, "metrics": metrics})


def _seed_set(accuracy_by_seed: dict[int, str], before: str):
    return [_with_outcomes("full", seed, after, before) for seed, after in accuracy_by_seed.items()]


def test_a_drop_in_points_is_judged_in_points_not_hidden_by_a_relative_threshold():
    """0.60 -> 0.55 on 400 items in each of 3 seeds, the same 20 items lost: -5 points, -8% relative,
    which the old 10% relative threshold called "no change" before any test."""
    rng = np.random.default_rng(3)
    before = "0" * 400
    baseline, candidate = {}, {}
    for seed in (0, 1, 2):
        right = rng.permutation(400)[:240]
        after = ["0"] * 400
        for index in right:
            after[index] = "1"
        baseline[seed] = "".join(after)
        for index in sorted(right)[:20]:
            after[index] = "0"
        candidate[seed] = "".join(after)
    result = compare_records(_seed_set(baseline, before), _seed_set(candidate, before))
    row = _row(result, "full", "accuracy.cipher")
    assert row.effect == pytest.approx(-0.05)
    assert row.verdict == WORSE and row.regression and row.high < 0


def test_a_significant_change_under_the_minimum_effect_is_reported_not_gated(tmp_path):
    before = "0" * 800
    baseline = {seed: ("1" * 480 + "0" * 320) for seed in (0, 1, 2)}
    candidate = {seed: ("0" * 6 + "1" * 474 + "0" * 320) for seed in (0, 1, 2)}  # -0.75 points, every seed
    base, cand = _seed_set(baseline, before), _seed_set(candidate, before)
    row = _row(compare_records(base, cand), "full", "accuracy.cipher")
    assert row.verdict == SAME and "under the minimum effect 1.0 points" in row.note and not row.regression
    tighter = compare_records(base, cand, min_effects={"accuracy.*": 0.002})
    assert _row(tighter, "full", "accuracy.cipher").regression
    # the suite's gate.min_effect travels in the records' spec
    gated = [
        r.model_copy(update={"spec": {**r.spec, "gate": {"min_effect": {"accuracy.cipher": 0.001}}}}) for r in cand
    ]
    assert _row(compare_records(base, gated), "full", "accuracy.cipher").regression
    # and from the command line
    base_dir, cand_dir = store(base, tmp_path / "b"), store(cand, tmp_path / "c")
    assert bench_cli("compare", str(base_dir), str(cand_dir)).returncode == 0
    assert bench_cli("compare", str(base_dir), str(cand_dir), "--min-effect", "accuracy.*=0.002").returncode == 1
    bad = bench_cli("compare", str(base_dir), str(cand_dir), "--min-effect", "accuracy.*=lots")
    assert bad.returncode == 2 and "--min-effect" in bad.stderr


def test_benjamini_hochberg_adjusts_as_published():
    # the worked example of Benjamini & Hochberg (1995), the first few of their 15 p-values
    p = [0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344, 0.0459, 0.3240]
    q = benjamini_hochberg(p)
    assert q[0] == pytest.approx(0.001) and q[2] == pytest.approx(0.0019 * 10 / 3)
    assert all(a <= b for a, b in zip(q, q[1:]))  # monotone in p
    assert benjamini_hochberg([0.5, 0.01]) == [0.5, 0.02]  # input order kept


def test_one_lucky_test_among_several_does_not_gate_the_suite():
    """p = 0.036 alone is a regression at 0.05; beside a second gating test that found nothing, it is what
    chance gives one time in fourteen, and Benjamini-Hochberg calls it noise."""
    factors = {"full": {0: 1.03, 1: 1.03, 2: 1.01}, "lora": {0: 1.01, 1: 0.99, 2: 1.0}}
    base, cand = [], []
    for label in ("full", "lora"):
        for seed in (0, 1, 2):
            record = make_record(label, seed)
            loss = record.metrics["accuracy.cipher"].model_copy(
                update={"value": 1.0 + 0.01 * seed, "unit": "loss", "higher_is_better": False}
            )
            changed = loss.model_copy(update={"value": loss.value * factors[label][seed]})
            base.append(record.model_copy(update={"metrics": {**record.metrics, "train.final_loss": loss}}))
            cand.append(record.model_copy(update={"metrics": {**record.metrics, "train.final_loss": changed}}))
    alone = compare_records(base, cand, min_effects={"train.final_loss": 0.0}, control=False)
    row = _row(alone, "full", "train.final_loss")
    assert row.verdict == WORSE and row.p_value == pytest.approx(0.036, abs=0.002)
    family = compare_records(base, cand, min_effects={"train.final_loss": 0.0})
    assert [c.metric for c in family.changes if c.gating and c.p_value is not None] == ["train.final_loss"] * 2
    row = _row(family, "full", "train.final_loss")
    assert row.verdict == NOISE and "Benjamini-Hochberg over 2 gating hypotheses" in row.note
    assert row.q_value == pytest.approx(2 * row.p_value)
    assert not family.failed and alone.failed


def test_gating_verdicts_and_their_intervals_always_agree():
    rng = np.random.default_rng(7)
    before = "0" * 80
    for trial in range(30):
        seeds_b, seeds_c = (0, 1, 2), (0, 1, 2) if trial % 2 else (3, 4, 5)
        base = {s: "".join("1" if x else "0" for x in rng.random(80) < 0.6) for s in seeds_b}
        drop = rng.uniform(0, 0.2)
        cand = {s: "".join("1" if x else "0" for x in rng.random(80) < 0.6 - drop) for s in seeds_c}
        result = compare_records(_seed_set(base, before), _seed_set(cand, before))
        for row in result.changes:
            if row.verdict == WORSE and row.low is not None:
                assert row.high < 0, row
            if row.verdict == NOISE and row.low is not None and row.q_value is None:
                assert row.low <= 0 <= row.high or abs(row.effect) < (row.threshold or 0), row


def test_the_suite_gate_is_validated_and_leaves_run_ids_alone(tmp_path):
    import yaml

    from bench.plan import plan
    from bench.suite import SuiteError, load_suite

    plain = plan(load_suite(ROOT / "suites" / "smoke.yaml"))
    suite = yaml.safe_load((ROOT / "suites" / "smoke.yaml").read_text())
    specs = plan(load_suite(write_suite(tmp_path, {**suite, "gate": {"min_effect": {"accuracy.*": 0.02}}})))
    assert [s.run_id for s in specs] == [s.run_id for s in plain]
    assert specs[0].gate.min_effect == {"accuracy.*": 0.02}
    bad = {**suite, "name": "bad", "gate": {"min_effect": {"accuracy.*": -1}}}
    with pytest.raises(SuiteError, match="gate.min_effect"):
        load_suite(write_suite(tmp_path, bad))


def test_gpu_timings_are_never_divided_by_a_cpu_workload():
    from types import SimpleNamespace

    from bench.run.recorder import Recorder

    gpu = SimpleNamespace(reference_seconds=[], reference_note=None)
    Recorder.time_reference(gpu, "cuda:0")
    assert gpu.reference_seconds == [] and gpu.reference_note.startswith("none: GPU timings")
    cpu = SimpleNamespace(reference_seconds=[], reference_note=None)
    Recorder.time_reference(cpu, "cpu")
    assert len(cpu.reference_seconds) == 1 and cpu.reference_note is None
    # records without a reference are compared as measured, never "at equal machine speed"
    base = [make_record("full", s, reference=None) for s in (0, 1, 2)]
    cand = [make_record("full", s, reference=None, scale={"train.tokens_per_s": 0.7}) for s in (0, 1, 2)]
    row = _row(compare_records(base, cand), "full", "train.tokens_per_s")
    assert not row.adjusted and "equal machine speed" not in row.note


def test_every_row_that_does_not_gate_says_why():
    base = [make_record(label, s) for label in ("full", "lora") for s in (0, 1, 2)]
    slow = {"train.tokens_per_s": 0.7, "latency.ttft_ms.p99": 1.5}
    cand = [make_record(label, s, scale=slow) for label in ("full", "lora") for s in (0, 1, 2)]
    for fail_on in (None, ["accuracy.*"]):
        result = compare_records(base, cand, fail_on=fail_on)
        quiet = [row for row in result.changes if not row.gating and row.verdict in (WORSE, NOISE, UNKNOWN)]
        assert any(row.metric == "train.tokens_per_s" for row in quiet) == (fail_on is not None)
        assert quiet and all(row.note.startswith("not gated:") for row in quiet), quiet


def test_repeated_seeds_count_once_and_the_newest_run_stands_for_its_seed():
    from bench.analysis.quality import one_per_seed

    older = [make_record("full", s).model_copy(update={"started_at": "2026-11-01T00:00:00+00:00"}) for s in (0, 1)]
    newer = [make_record("full", s).model_copy(update={"started_at": "2026-11-02T00:00:00+00:00"}) for s in (0, 1)]
    kept = one_per_seed(older + newer + older)
    assert [(r.seed, r.started_at[:10]) for r in kept] == [(0, "2026-11-02"), (1, "2026-11-02")]
    # a nightly's pooled baseline of three nights: quality is compared seed against seed, n = 3 not 9
    nights = [make_record("lora", s) for _ in range(3) for s in (0, 1, 2)]
    row = _row(compare_records(nights, [make_record("lora", s) for s in (0, 1, 2)]), "lora", "accuracy.cipher")
    assert (row.n_baseline, row.n_candidate) == (3, 3) and row.verdict == SAME


def test_fields_added_to_the_spec_later_do_not_make_old_records_incomparable():
    """A field added to the spec (null when unset) is absent from older records: the same run."""
    old = [make_record("full", s) for s in (0, 1, 2)]
    new = []
    for record in old:
        spec = {**record.spec, "task": {**record.spec["task"], "loss": None}, "model": {**record.spec["model"]}}
        spec["model"]["chat_template"] = None
        new.append(record.model_copy(update={"spec": spec}))
    result = compare_records(old, new)
    assert not result.issues and _row(result, "full", "accuracy.cipher").verdict == SAME
    changed = [r.model_copy(update={"spec": {**r.spec, "task": {**r.spec["task"], "loss": "all"}}}) for r in old]
    assert compare_records(old, changed).issues[0].detail == "spec changed: task.loss"
