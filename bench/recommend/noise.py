"""Whether `bench recommend`'s winner is beyond noise of another strategy.

The report's test for the pair (bench/report/aggregate.py answer), alone: accuracy with per-item outcomes is
paired by item (bench.analysis.items.metric_difference), anything else tested over seeds, two-sided
(bench.analysis.stats.seed_test). A design that cannot reach ALPHA says "cannot tell", never falls back to
seed ranges. The report decides its pairs over a family (Benjamini-Hochberg, bench/report/family.py), so a p
at or under ALPHA for one pair alone is said as that, never as "beyond seed noise", which the report may not
say of it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench.analysis import stats
from bench.analysis.items import SEED_NOISE_UNKNOWN, metric_difference
from bench.analysis.quality import minimum_detectable, quality_test
from bench.analysis.timing import clean_timing_runs
from bench.recommend.figures import ALPHA, FORGETTING, THROUGHPUT, Candidate, Figure, _value
from bench.records.results import RunResult


@dataclass(frozen=True)
class Noise:
    """One pair's test: within noise (p > ALPHA), not (p <= ALPHA alone) or None (cannot tell); in words."""

    within: bool | None
    words: str


def _seeded(figure: Figure, start: int = 0) -> list[tuple[int, float]]:
    """(seed, value) pairs; distinct stand-in seeds where the figure does not say them (never paired)."""
    if len(figure.seeds) == len(figure.values):
        return list(zip(figure.seeds, figure.values))
    return list(enumerate(figure.values, start))


def _said(p: float | None, why: str) -> Noise:
    if p is None:
        return Noise(None, f"cannot tell: {why}")
    if p > ALPHA:
        return Noise(True, f"within seed noise, p = {p:.2g}")
    return Noise(False, f"p = {p:.2g} for this pair alone, uncorrected for other comparisons")


def seed_noise(a: Figure, b: Figure) -> Noise:
    """Two strategies' per-seed values, tested as the report's answers test them (two-sided, over seeds)."""
    if a.mean is None or b.mean is None:
        return Noise(None, "cannot tell: not measured")
    p, design = stats.seed_test(_seeded(a), _seeded(b, len(a.values)), ALPHA)
    return _said(p, design)


def item_noise(a: list[RunResult], b: list[RunResult], metric: str | None) -> Noise | None:
    """The item-paired test of two strategies' runs on a quality metric; None where they hold no comparable
    per-item outcomes."""
    difference = metric_difference(a, b, metric) if metric and a and b else None
    if difference is None:
        return None
    if not difference.knows_seed_noise:
        return Noise(None, f"cannot tell: {SEED_NOISE_UNKNOWN}")
    return _said(difference.p_value, "")


def within_noise(a: Figure, b: Figure) -> bool | None:
    """Whether two strategies' seeds cannot be told apart (p > ALPHA, two-sided over seeds); False where they
    differ at ALPHA; None where the design cannot reach ALPHA (one seed, 2 vs 2, 3 vs 3: cannot tell)."""
    return seed_noise(a, b).within


def objective_figure(candidate: Candidate, objective: str) -> Figure:
    return candidate.accuracy if objective == "accuracy" else candidate.throughput


def pair_noise(best: Candidate, other: Candidate, objective: str, runs: dict[str, list[RunResult]]) -> Noise:
    """The report's test of the pair, alone (the noise section above): by item for accuracy where both hold
    per-item outcomes, else over seeds (throughput: the runs with clean timing only)."""
    if objective == "accuracy":
        found = item_noise(runs.get(best.name, []), runs.get(other.name, []), best.accuracy_metric)
        if found is not None:
            return found
    return seed_noise(objective_figure(best, objective), objective_figure(other, objective))


@dataclass(frozen=True)
class Difference:
    """One strategy's objective minus another's: the mean, its two-sided 95% interval and the minimum
    detectable effect (80% power), as the report's quality table states them; in accuracy points (shares)
    for accuracy, tokens/s for throughput."""

    mean: float
    low: float
    high: float
    mde: float
    se: float = math.nan  # with df and floor, the t bound at any level (low_at); nan: the 95% bounds only
    df: float = math.inf
    floor: float = -math.inf  # the lowest the difference can be (accuracy: -1); a bound never passes it

    def low_at(self, one_sided: float) -> float:
        """The one-sided (1 - one_sided) lower bound: `low` at 0.025. Where no t bound is known (a Wilson score
        interval where every outcome was alike), `low`, whatever the level."""
        if math.isnan(self.se):
            return self.low
        return max(self.mean - stats.t_quantile(1 - one_sided, self.df) * self.se, self.floor)


def _runs_of(candidate: Candidate, objective: str, runs: dict[str, list[RunResult]]) -> list[RunResult]:
    """The candidate's runs the objective is compared on: for throughput the runs with clean timing only."""
    found = runs.get(candidate.name, [])
    return clean_timing_runs(found) if objective == "throughput" else found


def pair_difference(
    best: Candidate, other: Candidate, objective: str, runs: dict[str, list[RunResult]]
) -> Difference | None:
    """other - best on the objective with its 95% interval: paired by item for accuracy where both hold per-item
    outcomes (the report's quality table), else over seeds (bench.analysis.quality: paired where both ran the
    same seeds); None where a side has one seed, did not measure it or its seeds show no spread at all (the
    seed noise is then unknown: two seeds that each lost one item more agree by chance)."""
    metric = best.accuracy_metric if objective == "accuracy" else THROUGHPUT
    mine, theirs = _runs_of(other, objective, runs), _runs_of(best, objective, runs)
    if objective == "accuracy" and metric and mine and theirs:
        found = metric_difference(mine, theirs, metric)
        if found is not None:
            bounded = found.knows_seed_noise and found.se > 0
            if not bounded:
                return None
            se = math.nan if found.score is not None else found.se
            return Difference(found.mean, found.low, found.high, found.mde, se, found.df, found.limits[0])
    measured = [[r for r in side if _value(r, metric) is not None] for side in (mine, theirs)] if metric else []
    if not measured or not all(measured):
        return None
    test = quality_test(measured[1], measured[0], metric)
    if isinstance(test, str) or test.scale == "ratio" or test.se == 0:  # no spread: the seeds bound nothing
        return None
    low, high = test.bounds(ALPHA / 2)
    mde = minimum_detectable(test.se, test.df, ALPHA / 2, power=0.8)
    return Difference(test.effect, low, high, mde, test.se, test.df)


def dimension_noise(a: Candidate, b: Candidate, dimension: str, runs: dict[str, list[RunResult]]) -> Noise:
    """The report's test of two strategies on one dimension of dominance (accuracy, forgetting, throughput)."""
    if dimension in ("accuracy", "throughput"):
        return pair_noise(a, b, dimension, runs)
    found = item_noise(runs.get(a.name, []), runs.get(b.name, []), FORGETTING)
    return found if found is not None else seed_noise(a.forgetting, b.forgetting)


def ties_with(a: Candidate, b: Candidate, objective: str) -> bool:
    x, y = objective_figure(a, objective).mean, objective_figure(b, objective).mean
    return x is not None and y is not None and math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
