"""The tests a proposed split of a history series is confirmed by (bench/analysis/change_points.py): a
permutation test of night groups that scans for the best split (`scan_p`), tonight's night mean against
the nights before (`tonight_p`, `tonight_interval`), the size of a shift and its interval (`shift_of`,
`interval`), and for accuracy with item outcomes, each side's newest run of each seed (`newest_records`),
the number of distinct tests a scan over a segment makes (`distinct_tests`) and how much a night's level
moves beyond its seeds (`commit_variance`). Points are a series' nights: `mean`, `runs`, `records`."""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Any

from bench.analysis import stats


def robust_sigma(means: list[float]) -> float:
    import numpy as np

    if len(means) < 3:
        return 0.0
    diffs = np.diff(np.asarray(means))
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


def scan_p(groups: list[list[float]], split: int, scan: bool = True, resamples: int = 999) -> float:
    """Permutation p of a shift in mean at night `split` of `groups`.

    With `scan`, the observed split is held against the BEST split of each permuted series (E-Divisive's
    test): the split was chosen for fitting the data well, and testing it as if given would find
    changes in pure noise. Without it (a split fixed in advance, tonight against the nights before),
    against the same split of each permuted series."""
    import numpy as np

    sizes = np.array([len(g) for g in groups])
    values = np.concatenate([np.asarray(g, dtype=float) for g in groups])
    ends = np.cumsum(sizes)
    allowed = np.arange(1, len(groups)) if scan else np.array([split])
    if scan and all(len(g) == 1 for g in groups):
        allowed = allowed[(allowed >= 2) & (allowed <= len(groups) - 2)]

    def statistic(matrix):  # (rows, n) -> per row, the statistic at each allowed split
        total, n = matrix.sum(axis=1, keepdims=True), matrix.shape[1]
        left_n = ends[allowed - 1]
        left_sum = np.cumsum(matrix, axis=1)[:, left_n - 1]
        difference = left_sum / left_n - (total - left_sum) / (n - left_n)
        return np.abs(difference) * np.sqrt(left_n * (n - left_n) / n)

    observed = statistic(values[None, :])[0, list(allowed).index(split)] if split in allowed else None
    if observed is None or np.ptp(values) == 0:
        return 1.0
    rng = np.random.default_rng(0)  # fixed: the same history gives the same answer
    shuffled = rng.permuted(np.tile(values, (resamples, 1)), axis=1)
    null = statistic(shuffled).max(axis=1)
    return float((1 + np.sum(null >= observed - 1e-12)) / (resamples + 1))


def log_mean(values: list[float]) -> float:
    return sum(math.log(v) for v in values) / len(values)


def shift_of(before: list[float], after: list[float], scale: str) -> float:
    """The shift of the level in the terms of `scale`: a ratio of geometric means, minus 1, for "ratio"."""
    if scale == "ratio":
        return math.expm1(log_mean(after) - log_mean(before))
    difference = stats.mean(after) - stats.mean(before)
    return difference / abs(stats.mean(before)) if scale == "relative" else difference


def interval(before: list[float], after: list[float], scale: str) -> tuple[float, float]:
    """95% interval of the shift (Welch t), in the terms of `scale`: on logarithms for "ratio"."""
    from scipy import stats as scipy_stats

    shift = shift_of(before, after, scale)
    if len(before) < 2 or len(after) < 2 or (len(set(before)) == 1 and len(set(after)) == 1):
        return shift, shift
    logs = scale == "ratio"
    a, b = ([math.log(v) for v in after], [math.log(v) for v in before]) if logs else (after, before)
    with warnings.catch_warnings():  # near-identical segments (exact repeats) are expected, not a problem
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = scipy_stats.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    if logs:
        return math.expm1(low), math.expm1(high)
    divisor = abs(stats.mean(before)) if scale == "relative" else 1.0
    return low / divisor, high / divisor


def tonight_p(before: list[float], tonight: float) -> float:
    """Two-sided p of tonight's night mean against the night means before it (t prediction test)."""
    return min(1.0, 2 * stats.prediction_p(tonight, before))


def tonight_interval(
    before: list[float], tonight: float, scale: float, logs: bool | None = None
) -> tuple[float, float]:
    """95% interval of tonight's shift from the level before, over `scale`: the spread of a new night about
    that level, s (1 + 1/m)^(1/2) with m - 1 degrees of freedom. On logarithms where every value is positive
    (unless `logs` says otherwise), as `tonight_p` tests (a machine's speed moves by a factor), turned back into
    a relative shift: the interval leaves out no change exactly where that test's p is under 0.05."""
    if logs is None:
        logs = all(value > 0 for value in [*before, tonight])
    sample, x = ([math.log(v) for v in before], math.log(tonight)) if logs else (before, tonight)
    m, centre = len(sample), sum(sample) / len(sample)
    half = stats.t_quantile(0.975, m - 1) * math.sqrt(sum((v - centre) ** 2 for v in sample) / (m - 1) * (1 + 1 / m))
    if logs:
        return math.expm1(x - centre - half), math.expm1(x - centre + half)
    shift = (x - centre) / scale
    return shift - half / scale, shift + half / scale


def newest_records(points: list[Any]) -> list[Any]:
    """The newest record of each seed among `points`, in seed order (what `_once_per_seed` keeps of the values);
    empty where a point was built without its records."""
    newest: dict[int, Any] = {}
    for point in points:
        if len(point.records) != len(point.runs):
            return []
        for record in point.records:
            newest[record.seed] = record
    return [newest[seed] for seed in sorted(newest)]


def _records_key(records: list[Any], metric: str) -> tuple:
    """What a side of an item-level test is made of: each seed's value and item outcomes."""
    return tuple((r.seed, r.metrics[metric].value, _outcomes(r)) for r in records)


def _outcomes(record: Any) -> tuple:
    return tuple(
        (task, entry.get("before"), entry.get("after")) for task, entry in sorted((record.items or {}).items())
    )


def distinct_tests(segment: list[Any], metric: str) -> int:
    """How many different tests the splits of `segment` make: each side holds the newest run of each seed, so
    splits between nights that repeat one another (one commit, night after night) make the same test, and the
    scan over them is one test, not one per night (a Bonferroni bound over the distinct ones)."""
    sides = {
        (_records_key(newest_records(segment[:split]), metric), _records_key(newest_records(segment[split:]), metric))
        for split in range(1, len(segment))
    }
    return max(len(sides), 1)


def commit_variance(points: list[Any]) -> float:
    """How much a night's level moves beyond what its seeds explain (a new commit that shifts every seed a
    little): the robust variance of the night means (`robust_sigma`, from night-to-night differences, so a
    step in the level barely moves it) less the seeds' share of it, the mean within-night variance over the
    runs a night. Each side of an item-level split is one night, so the test adds it twice. 0 where nights
    repeat one commit exactly. Without it, a shared shift of 0.3 logits a commit (about 4.5 points) made
    the split test reject 10.3% of 4,000 no-change draws and change_points flag 7% of series."""
    means = [p.mean for p in points]
    spreads = [statistics.variance(p.runs) for p in points if len(p.runs) > 1]
    if len(means) < 3 or not spreads:
        return 0.0
    runs = sum(len(p.runs) for p in points) / len(points)
    return max(robust_sigma(means) ** 2 - sum(spreads) / len(spreads) / runs, 0.0)
