"""Before any test of one metric of one strategy (bench/analysis/compare.py compare_metric): the values no
test can be run on, each with its verdict and why. A value that is not a number (a diverged training is
worse), a side without values, a record whose headline disagrees with its own item outcomes (bad input),
a direction that differs between the sets; and the base model's scores, which are identities, never tested
(identity_verdict)."""

from __future__ import annotations

import math

from bench.analysis import items, stats
from bench.analysis.verdicts import CHANGED, INCONSISTENT, NOT_COMPARABLE, SAME, UNKNOWN, WORSE, MetricChange
from bench.records.results import RunResult


def untestable(
    result: MetricChange, base: list[RunResult], cand: list[RunResult], b_values: list[float], c_values: list[float]
) -> bool:
    """Fill in `result` and say True where no test can run: a value that is not a number (a diverged
    training is worse), a side without values, a record whose headline disagrees with its own items, or a
    direction that differs between the sets."""
    metric = result.metric
    if unmeasured := not_numbers(base, cand, metric):  # a NaN would test as p = 0, beyond any noise
        quality_metric = stats.is_quality(metric)
        if quality_metric and b_values and stats.finite(b_values):  # the candidate's training diverged
            result.verdict, result.note = WORSE, f"diverged: {unmeasured}"  # gates without a test
        elif quality_metric:
            result.note = f"not a number ({unmeasured}): not tested, the baseline has no finite level to hold to"
        else:  # timing, memory: a measurement that failed more often than a slower program
            result.note = f"not a number ({unmeasured}): not tested"
        return True
    if result.baseline is None or result.candidate is None:
        side = "both" if not b_values and not c_values else "baseline" if not b_values else "candidate"
        runs = base + cand if side == "both" else base if side == "baseline" else cand
        reasons = sorted({run.metrics[metric].reason or "null" for run in runs if metric in run.metrics})
        result.note = f"{side}: " + ("; ".join(reasons) if reasons else "not recorded")
        return True
    if stats.is_quality(metric) and (disagree := inconsistent_records(base, cand, metric)):
        result.verdict, result.gating, result.held = NOT_COMPARABLE, False, f"{INCONSISTENT}: {disagree}"
        result.note = f"{result.held}: not tested"
        return True
    if {run.metrics[metric].higher_is_better for run in base + cand if metric in run.metrics} != {
        result.higher_is_better
    }:
        result.verdict, result.note = NOT_COMPARABLE, "direction (higher_is_better) differs between the sets"
        return True
    return False


def inconsistent_records(base: list[RunResult], cand: list[RunResult], metric: str) -> str:
    """The runs whose value of a quality metric disagrees with the mean of their own per-item outcomes by
    more than rounding (a hand-edited or corrupt record: "candidate seed 1 (run 8754...): 0.51, its 100
    items 0.91"), or "" where every run agrees or keeps no items for it."""
    found = []
    for side, runs in (("baseline", base), ("candidate", cand)):
        for run in runs:
            if gap := items.headline_gap(run, metric):
                headline, from_items, count = gap
                where = f"{side} seed {run.seed} (run {run.run_id})"
                found.append(f"{where}: {headline:.4g}, but its {count} item outcomes give {from_items:.4g}")
    return "; ".join(found)


def not_numbers(base: list[RunResult], cand: list[RunResult], metric: str) -> str:
    """The runs whose value of `metric` is NaN or infinite ("candidate seed 1: nan"), or "" where none is."""
    found = []
    for side, runs in (("baseline", base), ("candidate", cand)):
        for run in runs:
            value = run.metrics[metric].value if metric in run.metrics else None
            if value is not None and not math.isfinite(value):
                found.append(f"{side} seed {run.seed}: {value}")
    return "; ".join(found)


def _by_seed(runs: list[RunResult], metric: str) -> dict[int, set[float]]:
    found: dict[int, set[float]] = {}
    for run in runs:
        if metric in run.metrics and run.metrics[metric].value is not None:
            found.setdefault(run.seed, set()).add(run.metrics[metric].value)
    return found


def identity_verdict(
    result: MetricChange, base: list[RunResult], cand: list[RunResult], b_values: list[float], c_values: list[float]
) -> None:
    """A base model's score: the same or "changed", never tested or gated. A per-suite constant
    (stats.SUITE_CONSTANT) as its set of values; one on the held-out pairs the seed draws
    (stats.PER_SEED_CONSTANT: 0.467 / 0.5 / 0.533 over three seeds) seed by seed, on the seeds both ran."""
    result.test, result.gating = "identity", False
    if not stats.matches(result.metric, stats.PER_SEED_CONSTANT):
        result.n_baseline, result.n_candidate = len(set(b_values)), len(set(c_values))
        result.verdict = SAME if set(b_values) == set(c_values) else CHANGED
        result.note = "per-suite constant (the base model's score): compared as an identity, never gated"
        return
    by_seed_b, by_seed_c = _by_seed(base, result.metric), _by_seed(cand, result.metric)
    seeds = sorted(by_seed_b.keys() & by_seed_c.keys())
    result.n_baseline, result.n_candidate = len(by_seed_b), len(by_seed_c)
    what = "the base model's score on the held-out pairs the seed draws (they differ by seed)"
    if not seeds:
        result.verdict, result.note = UNKNOWN, f"{what}: no seed on both sides to compare it on, never gated"
        return
    differ = [seed for seed in seeds if by_seed_b[seed] != by_seed_c[seed]]
    result.verdict = CHANGED if differ else SAME
    where = f"; differs on seed {', '.join(map(str, differ))}" if differ else ""
    result.note = f"{what}: compared seed by seed as an identity ({len(seeds)} seeds), never gated{where}"
