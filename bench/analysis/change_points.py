"""Change points of a history series (docs/history.md): where a metric's level shifted, night by night.

PELT (l2 cost, as ruptures' Pelt computes it: `pelt_l2`) proposes where the mean of the point series
shifts, with a penalty of 3 sigma^2 log(n) (sigma: `_noise`). Each proposal is confirmed or dropped by
a permutation test between the segments either side of it, at `alpha`, scanning for the best split in
each permuted series as E-Divisive does (`scan_p`), and only when the shift is at least `min_shift` (points for
accuracy-like metrics, else relative, as `bench compare`'s threshold); a dropped proposal merges its
segments and the others are retested. The unit of the test follows docs/statistics.md: timings vary
night to night as a whole, so for hardware-bound metrics the unit is the night's mean; quality metrics
are exact repeats at one commit, so their unit is the seed: each side of a split holds the newest run
of each seed (`_once_per_seed`), however many nights repeated it. A timing segment of a single night
is only tested when it is the newest night: its mean against the night means before it (a t prediction
test), as `bench compare` holds a nightly. Shifts are said in points for accuracy-like units, as a
ratio with an interval on logarithms for positive quantities, else relative (`_sized`).

Why PELT and not E-Divisive (signal-processing-algorithms): the latter ships as a source package with
a C extension and pins numpy below 2. E-Divisive's own significance step is a permutation test, which
is what the confirmation does. ruptures' Pelt is the reference `pelt_l2` is tested against.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from bench.analysis import items, quality, split_tests, stats
from bench.analysis.environment import differences

PENALTY_FACTOR = 3.0
DEFAULT_ALPHA = 0.05
DEFAULT_MIN_SHIFT = 0.10
# a trailing segment of a few nights, too few for a test of night means, is tested with its runs against
# the runs before; they share their nights, which that test cannot see, so it is held to a tenth of alpha
NEWEST_SHARE = 0.1
# the outcome of a boundary before the newest night of a quality series that no test can decide yet (one
# night's runs against the night before: 3 seeds a side give no two-sided p below 2/20): not a change
# point, but kept, so the change before it is sized without the newest night
PENDING = -1.0


@dataclass
class Point:
    folder: str
    commit: str | None
    commit_time: str | None
    started_at: str
    runs: list[float]  # one value per run, oldest first
    left_out: int = 0  # contaminated runs not counted (timings only)
    # where the folder sits among the points of its suite on its hardware (1 = the oldest): a series
    # with gaps (a strategy absent, a metric missing or contaminated on some nights) skips numbers
    night: int = 0
    seeds: list[int] = field(default_factory=list)  # the seed of each run; empty: unknown, each run its own
    # the record of each run (quality series built from records): their item outcomes make the item-level test
    records: list[Any] = field(default_factory=list, repr=False, compare=False)
    # the environment its runs recorded (bench/analysis/environment.py): fact -> values
    environment: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    @property
    def mean(self) -> float:
        return sum(self.runs) / len(self.runs)


@dataclass
class ChangePoint:
    index: int  # the first point of the new level
    commit: str | None
    folder: str
    before: float
    after: float
    shift: float  # the change of the level, in the terms of `scale`
    shift_low: float  # 95% interval of the shift (Welch t on the test's units, on logarithms for "ratio")
    shift_high: float
    p: float
    worse: bool
    relative: bool = True  # False: shift (with its interval) is after - before, in points or in the unit
    # "ratio": after / before - 1 of a positive quantity (geometric means); "points": after - before of an
    # accuracy-like share; "relative": (after - before) / |before|; "absolute": after - before from a level of 0
    scale: str = "relative"
    # what else changed between the last point before and the first after (`peft 0.21.2 -> 0.22.0`), the
    # commit apart: a shift that came with a new package or other hardware may not be the code's
    environment: list[str] = field(default_factory=list)

    @property
    def shift_text(self) -> str:
        """The shift and its interval: in points, relative, or from a level of 0 in the metric's unit."""
        if self.scale == "points":
            return f"{100 * self.shift:+.1f} points [{100 * self.shift_low:+.1f}, {100 * self.shift_high:+.1f}]"
        if self.relative:
            return f"{self.shift:+.1%} [{self.shift_low:+.1%}, {self.shift_high:+.1%}]"
        return f"{self.shift:+.3g} [{self.shift_low:+.3g}, {self.shift_high:+.3g}] from 0"


@dataclass
class Series:
    suite: str
    fingerprint: str
    strategy: str
    metric: str
    unit: str
    higher_is_better: bool
    points: list[Point] = field(default_factory=list)
    change_points: list[ChangePoint] = field(default_factory=list)

    @property
    def hardware_bound(self) -> bool:
        """Whether the night is the unit of a test (timings, and memory, counted or measured: a count repeats
        exactly every night and changes only with the code) rather than the seed (quality). Which
        fingerprints may be compared is another question (`stats.hardware_bound`): a series keeps to one."""
        return stats.matches(self.metric, stats.HARDWARE_BOUND)


def _noise(series: Series) -> float:
    """The noise of a night's mean that the penalty is scaled to. Timings: from the night-to-night
    differences (robust to shifts). Quality metrics, whose runs are the unit: the seeds' spread within
    a night over the square root of the runs (their nights repeat exactly, so differences are 0)."""
    means = [p.mean for p in series.points]
    if series.hardware_bound:
        return split_tests.robust_sigma(means)
    spread = [(v - p.mean) ** 2 for p in series.points for v in p.runs]
    degrees = sum(len(p.runs) - 1 for p in series.points)
    if not degrees:
        return split_tests.robust_sigma(means)
    runs = sum(len(p.runs) for p in series.points) / len(series.points)
    return math.sqrt(sum(spread) / degrees / runs)


def candidates(means: list[float], sigma: float) -> list[int]:
    """Indices where PELT puts the start of a new level (not yet tested)."""
    import numpy as np

    n = len(means)
    if n < 2 or len(set(means)) == 1:
        return []
    penalty = PENALTY_FACTOR * max(sigma, 1e-12) ** 2 * math.log(max(n, 2))
    return [b for b in pelt_l2(np.asarray(means, dtype=float), penalty) if b < n]


def pelt_l2(signal: Any, penalty: float) -> list[int]:
    """The breakpoints of `ruptures.Pelt(model="l2", min_size=1, jump=1).fit(signal).predict(pen=penalty)`:
    its recursion, pruning and first-minimum ties (tests/test_change_points_speed.py holds the two equal on
    random series), with each end's candidate starts as one array. Hand-written because ruptures' PELT asks
    its cost for every (start, end) pair in Python, and its l2 cost sums each segment again; PELT prunes
    few starts on a series without a change, so one series of 730 nights took about 2 s, and `bench history`
    on a year of nightlies over a minute. Here a segment's cost comes from running sums, O(n^2) in numpy."""
    import numpy as np

    n = len(signal)
    centred = signal - signal.mean()  # the cost ignores a shift; centred sums stay small
    sums = np.concatenate(([0.0], np.cumsum(centred)))
    squares = np.concatenate(([0.0], np.cumsum(centred * centred)))
    best = np.zeros(n + 1)  # best[t]: the cost of the best partition of signal[:t], its penalties included
    start_of_last = np.zeros(n + 1, dtype=int)  # where that partition's last segment starts
    starts = np.zeros(0, dtype=int)  # the admissible starts, in the order ruptures keeps them
    for end in range(1, n + 1):
        starts = np.append(starts, end - 1)
        total = sums[end] - sums[starts]
        cost = np.maximum(squares[end] - squares[starts] - total * total / (end - starts), 0.0)
        candidate = best[starts] + (cost + penalty)  # summed in the order ruptures sums a partition
        pick = int(np.argmin(candidate))  # the first minimum, as min() over ruptures' list
        best[end], start_of_last[end] = candidate[pick], starts[pick]
        starts = starts[candidate <= best[end] + penalty]
    breakpoints, end = [], n
    while end > 0:
        breakpoints.append(end)
        end = int(start_of_last[end])
    return breakpoints[::-1]


class Test(NamedTuple):
    """How one proposal is tested: the groups (one per night) of values, how many of them lie before the split,
    whether the split is scanned (chosen by the data), the share of alpha it is held to, and the test: a
    permutation test of the groups (`scan_p`), or "prediction": tonight's night mean against the night means
    before it (t, two-sided)."""

    groups: list[list[float]]
    left: int
    scan: bool
    share: float
    kind: str = "permutation"


def _once_per_seed(points: list[Point]) -> list[list[float]]:
    """The newest run of each seed among `points`, kept in its night; nights left without a run are dropped.
    Nights repeat training exactly (same seed, same commit), so a seed counts once however many nights
    repeated it, as `bench compare` holds quality (bench/analysis/quality.py one_per_seed). Runs of unknown
    seed (a point without `seeds`) count once each."""
    newest: dict[object, tuple[int, float]] = {}
    for night, point in enumerate(points):
        known = len(point.seeds) == len(point.runs)
        seeds: list[object] = list(point.seeds) if known else [(night, i) for i in range(len(point.runs))]
        for seed, value in zip(seeds, point.runs):
            newest[seed] = (night, value)
    groups: list[list[float]] = [[] for _ in points]
    for night, value in newest.values():
        groups[night].append(value)
    return [group for group in groups if group]


def _test_units(
    series: Series, left: list[Point], right: list[Point], trailing: bool, alpha: float = DEFAULT_ALPHA
) -> Test | None:
    """The test of a split between `left` and `right`, or None where no honest test exists.

    Quality: the seeds, once a side (`_once_per_seed`). Timings: the night means, where there are enough nights
    a side for a permutation test of them to reach alpha. Tonight alone (the newest night, a split fixed in
    advance): its mean against the night means before it, a t prediction test at alpha, as `bench compare`
    holds a nightly (its runs against the runs before, held to a tenth of alpha, failed where nights spread more
    than runs: they share the night). A trailing segment of a few nights, too few for their means: its runs
    against the runs before, held to a tenth of alpha (NEWEST_SHARE), so that a persistent shift stays flagged on
    its second night, when two night means against six can give no p below 2/28. Either needs two nights or more
    before the split: one night has no night-to-night spread to hold the others against."""
    tonight = trailing and len(right) == 1  # a split fixed in advance: tonight against the nights before
    if not series.hardware_bound:
        before = _once_per_seed(left)
        return Test(before + _once_per_seed(right), len(before), not tonight, 1.0)
    means = [[p.mean] for p in left + right]
    if len(left) >= 2 and len(right) >= 2 and _means_can_decide(len(left), len(right), alpha):
        return Test(means, len(left), True, 1.0)
    if tonight and len(left) >= 2:
        return Test(means, len(left), False, 1.0, "prediction")
    if trailing and len(left) >= 2:
        return Test([p.runs for p in left + right], len(left), True, NEWEST_SHARE)
    return None


def _undecidable(test: Test, alpha: float) -> bool:
    """Whether the split of `test` (fixed, not scanned) cannot reach alpha at all: its smallest
    two-sided permutation p, 2 / C(n, right), is above alpha."""
    sizes = [len(group) for group in test.groups]
    right = sum(sizes[test.left :])
    return 2 / math.comb(sum(sizes), right) > alpha * test.share


def _means_can_decide(left: int, right: int, alpha: float) -> bool:
    """Whether a two-sided permutation test of `left` night means against `right` can reach alpha at all:
    its smallest p is 2 / C(left + right, right)."""
    return 2 / math.comb(left + right, right) <= alpha


def _scale(series: Series, before: list[float], after: list[float]) -> str:
    """How a shift of `series` is said (ChangePoint.scale): in points for an accuracy-like unit (as `bench
    compare` does, never %); as a ratio for a positive quantity (a loss, a time, a rate, memory), whose interval
    is on logarithms and so never passes -100%; else relative to the level before, absolute from a level of 0.
    A quality metric is a ratio only where `bench compare` takes it as one (`quality.scale_of`: a loss): an
    alignment margin or reward that happens to be positive on every night is a difference, as there."""
    if series.unit in stats.POINT_UNITS:
        return "points"
    ratio_unit = series.hardware_bound or series.unit in stats.RATIO_UNITS
    if ratio_unit and all(value > 0 for value in [*before, *after]):
        return "ratio"
    return "relative" if stats.mean(before) else "absolute"


class Shift(NamedTuple):
    """A tested split: its p (held to alpha x `share`), the levels either side and the shift between them with
    its 95% interval, in the terms of `scale`."""

    p: float
    share: float
    before: float
    after: float
    shift: float
    low: float
    high: float
    scale: str


def _by_items(series: Series, left: list[Point], right: list[Point], tonight: bool) -> Shift | float | None:
    """The split of an accuracy-like series whose records keep their item outcomes, tested as `bench compare`
    holds quality (bench/analysis/quality.py): each side's newest run of each seed, paired by seed where both
    ran the same seeds and by item within seed, a t test whose standard error holds seed and item noise. Its
    two-sided p is multiplied by the number of distinct tests the scan over the segment's splits could have
    made (`split_tests.distinct_tests`; 1 for tonight's split, fixed in advance). A float where no such test exists (one
    seed on a side: PENDING for tonight's split, else untestable), None where the records lack item outcomes."""
    if series.hardware_bound or series.unit not in stats.POINT_UNITS:
        return None
    before, after = split_tests.newest_records(left), split_tests.newest_records(right)
    if not before or not after or items.comparable_matrices(after, before, series.metric) is None:
        return None
    test = quality.quality_test(before, after, series.metric)
    if isinstance(test, str):
        return PENDING if tonight else 1.0
    test = replace(test, se=math.sqrt(test.se**2 + 2 * split_tests.commit_variance(series.points)))
    scans = 1 if tonight else split_tests.distinct_tests(left + right, series.metric)
    p = min(1.0, 2 * test.p() * scans)
    low, high = test.bounds(0.025)
    level = [stats.mean([r.metrics[series.metric].value for r in side]) for side in (before, after)]
    return Shift(p, 1.0, level[0], level[1], test.effect, low, high, "points")


def _by_values(series: Series, left: list[Point], right: list[Point], trailing: bool, alpha: float) -> Shift | float:
    """The split tested on the points' values (`_test_units`): a permutation test of seeds or night means, or
    tonight's night mean against the night means before it. A float where no test exists (1.0, or PENDING)."""
    test = _test_units(series, left, right, trailing, alpha)
    if test is None or not 0 < test.left < len(test.groups):
        return 1.0
    if not test.scan and not series.hardware_bound and _undecidable(test, alpha):
        return PENDING
    before = [v for g in test.groups[: test.left] for v in g]
    after = [v for g in test.groups[test.left :] for v in g]
    scale = _scale(series, before, after)
    shift = split_tests.shift_of(before, after, scale)
    if test.kind == "permutation":
        p = split_tests.scan_p(test.groups, test.left, scan=test.scan)
        low, high = split_tests.interval(before, after, scale)
    else:
        p = split_tests.tonight_p(before, after[0])
        divisor = abs(stats.mean(before)) if scale == "relative" else 1.0
        low, high = split_tests.tonight_interval(before, after[0], divisor, logs=scale == "ratio")
    return Shift(p, test.share, stats.mean(before), stats.mean(after), shift, low, high, scale)


def _confirm(series: Series, edges: list[int], k: int, alpha: float, min_shift: float) -> ChangePoint | float:
    """The change point at edges[k] if its test passes, else its p-value (1.0 where untestable). The shift is
    said as `_scale` says, and `min_shift` is in its terms: points for accuracy-like metrics (0.10 is 10 points),
    relative otherwise, and absolute in the metric's unit from a level of exactly 0 (a gain of 0.0)."""
    points = series.points
    if stats.matches(series.metric, stats.TAILS):
        return 1.0  # tails are shown, never called a change (as bench compare does not gate them)
    left, right = points[edges[k - 1] : edges[k]], points[edges[k] : edges[k + 1]]
    trailing = edges[k + 1] == len(points)
    found = _by_items(series, left, right, trailing and len(right) == 1)
    if found is None:
        found = _by_values(series, left, right, trailing, alpha)
    if not isinstance(found, Shift):
        return found
    if found.p > alpha * found.share or abs(found.shift) < min_shift:
        return found.p
    worse = (found.shift < 0) if series.higher_is_better else (found.shift > 0)
    relative = found.scale in ("ratio", "relative")
    return ChangePoint(
        edges[k],
        right[0].commit,
        right[0].folder,
        found.before,
        found.after,
        found.shift,
        found.low,
        found.high,
        found.p,
        worse,
        relative=relative,
        scale=found.scale,
        environment=[
            change.text()
            for change in differences(left[-1].environment, right[0].environment)
            if change.name != "commit"
        ],
    )


def change_points(
    series: Series, alpha: float = DEFAULT_ALPHA, min_shift: float = DEFAULT_MIN_SHIFT
) -> list[ChangePoint]:
    """PELT's proposals, pruned: while any proposal fails its test, the least significant one is
    dropped and its two segments merge, so the others are retested with more data. A quality boundary
    before the newest night that no test can decide yet is kept unreported (PENDING), not merged: merged,
    a one-night drop followed by a recovery tonight was sized as the mean of the two nights (-31%, not
    -62%) until the next night."""
    bounds = candidates([p.mean for p in series.points], _noise(series))
    tested: dict[tuple[int, int, int], ChangePoint | float] = {}  # a boundary's test depends on its segments only
    while True:
        edges = [0, *bounds, len(series.points)]
        outcomes = []
        for k in range(1, len(edges) - 1):
            key = (edges[k - 1], edges[k], edges[k + 1])
            if key not in tested:
                tested[key] = _confirm(series, edges, k, alpha, min_shift)
            outcomes.append(tested[key])
        failed = [(o, i) for i, o in enumerate(outcomes) if not isinstance(o, ChangePoint) and o != PENDING]
        if not failed:
            return [outcome for outcome in outcomes if isinstance(outcome, ChangePoint)]
        del bounds[max(failed)[1]]
