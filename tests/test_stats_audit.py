"""Audit of the statistics behind the verdicts (docs/statistics.md): each test failed before its fix."""

from __future__ import annotations

import itertools
import json
import math
from types import SimpleNamespace

import numpy as np
import pytest

from bench.analysis import items, quality, stats
from bench.analysis.compare import compare_records
from bench.analysis.verdicts import MISSING, WORSE
from bench.records.results import Metric
from bench.records.store import load_records
from tests.synthetic_records import TASK, make_record
from tests.test_quality import FORGETTING, _flip_items

TASKS = ("t0", "t1", "t2", "t3")


def _record(seed: int, outcomes: dict[str, tuple[np.ndarray, np.ndarray]]) -> SimpleNamespace:
    """A run with per-item outcomes (after, before) per task and the metrics they give."""
    record_items, metrics = {}, {}
    for task, (after, before) in outcomes.items():
        ids = [f"{task}-{i}" for i in range(len(after))]
        marks = {
            name: "".join("1" if x else "0" for x in side) for name, side in (("before", before), ("after", after))
        }
        record_items[task] = items.item_record(ids, marks["before"], marks["after"])
        metrics[f"forgetting.{task}"] = SimpleNamespace(value=float(after.mean() - before.mean()), unit="acc")
    mean = sum(m.value for m in metrics.values()) / len(metrics)
    metrics["forgetting.mean"] = SimpleNamespace(value=mean, unit="acc")
    return SimpleNamespace(seed=seed, items=record_items, metrics=metrics, started_at="", run_id=str(seed))


def _side(rng: np.random.Generator, seeds: range, difficulty: dict, before: dict, spread: float) -> list:
    """Runs whose seed shifts every task at once (a seed that trains better or worse), plus a wobble per task."""
    runs = []
    for seed in seeds:
        shift = rng.normal(0, spread)
        outcomes = {}
        for task, logits in difficulty.items():
            chance = 1 / (1 + np.exp(-(logits + shift + rng.normal(0, 0.5 * spread))))
            outcomes[task] = (rng.random(len(logits)) < chance, before[task])
        runs.append(_record(seed, outcomes))
    return runs


def _unpaired_aa(rng: np.random.Generator, seeds: int = 3) -> tuple[list, list]:
    """Two sides of one strategy on disjoint seeds, the same 100 items of four retained tasks: no true difference."""
    difficulty = {task: rng.normal(0, 1.5, 100) for task in TASKS}
    before = {task: rng.random(100) < 1 / (1 + np.exp(-logits)) for task, logits in difficulty.items()}
    return (
        _side(rng, range(seeds), difficulty, before, 0.3),
        _side(rng, range(100, 100 + seeds), difficulty, before, 0.3),
    )


def test_report_forgetting_mean_of_unpaired_seeds_agrees_with_compare():
    """A seed that moves every retained task counts once in the report's difference, as in bench compare's
    test: the report treated the tasks as independent (its seed variance / 4, its df summed over tasks)."""
    a, b = _unpaired_aa(np.random.default_rng(3))
    report = items.metric_difference(a, b, "forgetting.mean")
    gate = quality.quality_test(b, a, "forgetting.mean")
    assert report.mean == pytest.approx(gate.effect)
    assert report.se == pytest.approx(gate.se) and report.df == pytest.approx(gate.df)
    assert report.df < 20  # two sides of 3 seeds, not 4 tasks x 99 items' worth


def test_report_forgetting_mean_false_alarms_stay_at_alpha():
    """A/A, 3 seeds a side, 4 retained tasks, seed shifts common to the tasks: the report called 19% of
    the differences beyond noise (p <= 0.05 alone) before; at alpha now."""
    rng = np.random.default_rng(7)
    reps = 300
    alarms = sum(items.metric_difference(*_unpaired_aa(rng), "forgetting.mean").p_value <= 0.05 for _ in range(reps))
    assert alarms / reps < 0.09, alarms


def test_one_strategy_forgetting_mean_holds_the_seed_spread_over_every_task():
    """One strategy's forgetting.mean interval: the seeds' means over all tasks are the unit (k - 1 df)."""
    runs, _ = _unpaired_aa(np.random.default_rng(11), seeds=4)
    interval = items.metric_interval(runs, "forgetting.mean")
    per_seed = [r.metrics["forgetting.mean"].value for r in runs]
    assert interval.mean == pytest.approx(np.mean(per_seed))
    assert interval.se**2 >= np.var(per_seed, ddof=1) / len(runs) - 1e-12
    assert interval.df < 40


def test_one_run_against_many_is_tested_not_a_crash():
    """scipy's permutation_test needs two values a side: 20 baseline runs against 1 candidate run raised
    ValueError out of bench compare (1 / 21 <= 0.05, so the test ran)."""
    base = [make_record("full", seed) for seed in range(20)]
    cand = [make_record("full", 20, scale={"memory.train.host_peak_mib": 1.5})]
    result = compare_records(base, cand)
    row = next(c for c in result.changes if c.metric == "memory.train.host_peak_mib")
    assert row.verdict == WORSE and row.p_value == pytest.approx(1 / 21)
    assert result.failed


def _enumerated(candidate: list[float], baseline: list[float], increased: bool) -> float:
    pooled, observed = candidate + baseline, np.mean(candidate) - np.mean(baseline)
    count = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(candidate)):
        rest = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        statistic = np.mean([pooled[i] for i in chosen]) - np.mean(rest)
        total += 1
        count += statistic >= observed - 1e-12 if increased else statistic <= observed + 1e-12
    return count / total


@pytest.mark.parametrize("increased", [True, False])
@pytest.mark.parametrize(
    ("candidate", "baseline"),
    [([3.0], [1.0, 2.0, 3.0, 4.0, 0.0]), ([1.0, 1.0, 2.0, 5.0], [2.0]), ([0.0], [1.0]), ([2.0], [2.0, 2.0, 1.0])],
)
def test_one_value_a_side_is_the_exact_permutation_p(candidate, baseline, increased):
    assert stats.permutation_p(candidate, baseline, increased) == pytest.approx(
        _enumerated(candidate, baseline, increased)
    )


def _with(record, metric: str, value: float):
    old = record.metrics[metric]
    changed = Metric(value=value, unit=old.unit, higher_is_better=old.higher_is_better)
    return record.model_copy(update={"metrics": {**record.metrics, metric: changed}})


@pytest.mark.parametrize("metric", ["train.tokens_per_s", "memory.train.host_peak_mib"])  # quality: diverged
def test_a_value_that_is_not_a_number_is_named_and_never_tested(metric):
    """A NaN (a diverged loss, a phase of zero measured seconds) tested as p = 0: tokens/s "worse" and
    gating, memory "better", accuracy "~ noise" with p = nan."""
    base = [make_record("full", seed) for seed in range(5)]
    cand = [make_record("full", seed) for seed in range(5)]
    cand[2] = _with(cand[2], metric, math.nan)
    result = compare_records(base, cand)
    row = next(c for c in result.changes if c.metric == metric)
    assert row.verdict == MISSING and row.p_value is None and not result.failed
    assert "candidate seed 2: nan" in row.note


def test_seed_test_and_differs_do_not_test_nan():
    assert stats.differs([1.0, math.nan, 2.0], [1.0, 2.0, 3.0, 4.0], 0.05) == (None, None)
    p, design = stats.seed_test([(0, 1.0), (1, math.nan)], [(2, 1.0), (3, 2.0)], 0.05)
    assert p is None and "not a number" in design


def test_two_seeds_that_each_lost_different_items_are_not_p_zero():
    """Each seed of LoRA lost two arc-easy items it had right, different ones in each seed: the per-seed
    changes agree exactly (discrete), the items share nothing, and the variance estimate came out 0: p = 0,
    q = 0, a gating regression however large the family. The seed term now falls back to the residual
    scatter when the seeds' means agree exactly."""
    records = list(load_records(FORGETTING))
    lora = sorted((r for r in records if r.label == "lora"), key=lambda r: r.seed)
    right = [i for i in range(150) if all(r.items["arc-easy"]["after"][i] == "1" for r in lora)]
    flipped = {lora[0].run_id: right[:2], lora[1].run_id: right[2:4]}
    candidate = [_flip_items(r, "arc-easy", flipped[r.run_id]) if r.run_id in flipped else r for r in records]
    result = compare_records(records, candidate)
    row = next(c for c in result.changes if c.strategy == "lora" and c.metric == "accuracy.arc-easy")
    assert row.effect == pytest.approx(-2 / 150)
    assert row.se > 0 and row.p_value > 0.05 and row.verdict != WORSE
    assert not result.failed


def test_per_run_shares_that_moved_alike_on_every_seed_take_the_exact_p():
    """Accuracy without per-item outcomes, 2 seeds a side, each 4 points lower (one item of 25): the paired t
    had se = 0 and said p = 0 (worse, gating); the exact sign-flip p of 2 seeds is 1/4."""
    base = [make_record("full", seed, values={"accuracy.cipher": 0.52 + 0.04 * seed}) for seed in (0, 1)]
    cand = [make_record("full", seed, values={"accuracy.cipher": 0.48 + 0.04 * seed}) for seed in (0, 1)]
    result = compare_records(base, cand)
    row = next(c for c in result.changes if c.metric == "accuracy.cipher")
    assert row.p_value == pytest.approx(0.25) and row.verdict != WORSE
    assert "exact sign-flip p = 1/2^k" in row.note
    unpaired = [make_record("full", seed, values={"accuracy.cipher": 0.48}) for seed in (5, 6, 7)]
    base = [make_record("full", seed, values={"accuracy.cipher": 0.52}) for seed in (0, 1, 2)]
    row = next(c for c in compare_records(base, unpaired).changes if c.metric == "accuracy.cipher")
    assert row.p_value == pytest.approx(1 / 20)


def test_a_constant_loss_ratio_still_gates():
    """The loss is continuous: every seed x 1.5 is no chance, p = 0 as documented."""
    base = [_with_loss(make_record("full", seed), 1.0 + 0.1 * seed) for seed in (0, 1)]
    cand = [_with_loss(make_record("full", seed), 1.5 * (1.0 + 0.1 * seed)) for seed in (0, 1)]
    row = next(c for c in compare_records(base, cand).changes if c.metric == "train.final_loss")
    assert row.p_value < 1e-9 and row.verdict == WORSE


def _with_loss(record, value: float):
    loss = Metric(value=value, unit="loss", higher_is_better=False)
    return record.model_copy(update={"metrics": {**record.metrics, "train.final_loss": loss}})


def test_comparison_json_is_strict_json_when_the_baseline_is_zero():
    """A relative change from a baseline of 0 is infinite: --json wrote `Infinity`, which is not JSON."""
    base = [make_record("full", seed, values={"memory.train.host_peak_mib": 0.0}) for seed in range(4)]
    cand = [make_record("full", seed, values={"memory.train.host_peak_mib": 5.0 + seed}) for seed in range(4)]
    result = compare_records(base, cand)
    row = next(c for c in result.changes if c.metric == "memory.train.host_peak_mib")
    assert row.verdict == WORSE and row.change == math.inf  # tested: the threshold cannot hide a change from 0
    text = json.dumps(result.to_json(), allow_nan=False)
    found = next(c for c in json.loads(text)["changes"] if c["metric"] == "memory.train.host_peak_mib")
    assert found["change"] is None and found["verdict"] == WORSE


def test_host_memory_of_warm_and_cold_starts_is_not_compared():
    """The same run's host peak is 476 MiB started warm and 563 MiB cold (the interpreter imports the
    stack itself): a warm baseline against a cold candidate showed a false 18% memory change."""
    from tests.synthetic_records import make_set

    def started(records, start, scale=1.0):
        out = []
        for record in records:
            metrics = dict(record.metrics)
            host = metrics["memory.train.host_peak_mib"]
            metrics["memory.train.host_peak_mib"] = host.model_copy(update={"value": host.value * scale})
            out.append(record.model_copy(update={"start": start, "metrics": metrics}))
        return out

    warm = started(make_set(), "warm")
    cold = started(make_set(), "cold (execution.backend: local)", scale=1.18)
    rows = {(c.strategy, c.metric): c for c in compare_records(warm, cold).changes}
    host = rows[("full", "memory.train.host_peak_mib")]
    assert host.verdict == "not comparable" and not host.gating and "warm and cold starts differ" in host.note
    assert "baseline warm, candidate cold" in host.note
    assert rows[("full", f"accuracy.{TASK}")].verdict != "not comparable"  # quality is still compared
    same = {(c.strategy, c.metric): c for c in compare_records(warm, started(make_set(), "warm", 1.18)).changes}
    assert same[("full", "memory.train.host_peak_mib")].verdict == WORSE


def test_each_phase_of_a_run_is_timing():
    """RLHF's per-phase throughput and seconds are timings: compared on one fingerprint only, never from a
    contaminated run (before, train.reward.tokens_per_s was compared across machines)."""
    for metric in ("train.reward.tokens_per_s", "train.policy.steps_per_s", "train.parent.seconds"):
        assert stats.matches(metric, stats.TIMING), metric
    assert not stats.matches("train.reward.final_loss", stats.TIMING)
