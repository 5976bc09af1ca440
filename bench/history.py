"""`bench history`: every metric's series over commits and nights, with change points.

A *point* is one invocation of `bench run`: the records of one results folder (a night of the
nightly, a commit's committed results). Points are ordered by commit time, then by when they ran.
Series are kept per (suite, hardware fingerprint, strategy label, metric), so timings are only
ever set beside timings of the same hardware; contaminated runs are left out of timing series and
counted.

Change points: ruptures' PELT (l2 cost) proposes where the mean of the point series shifts, with a
penalty of 3 sigma^2 log(n) (sigma from the median absolute first difference, robust to the shifts
themselves). Each proposal is then confirmed or dropped by the permutation test of bench.stats
between the segments either side of it, at `alpha`, and only when the shift is at least
`min_shift` (relative, as `bench compare`'s threshold). The unit of that test follows
docs/statistics.md: timings vary night to night as a whole, so for hardware-bound metrics the unit
is the night's mean; quality metrics are exact repeats at one commit, so their unit is the run.
A segment of a single night (the newest, or a one-night blip) has no night-to-night spread of its
own; it is tested with its runs against the runs of the adjoining segment, as `bench compare`
tests tonight against pooled recent nights.

Why ruptures and not E-Divisive (signal-processing-algorithms): the latter ships as a source
package with a C extension and pins numpy below 2; ruptures is a plain wheel on numpy and scipy.
E-Divisive's own significance step is a permutation test, which is what the confirmation does.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from bench import stats
from bench.results import RunResult, load_record

PENALTY_FACTOR = 3.0
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_SHIFT = 0.10


@dataclass
class Point:
    folder: str
    commit: str | None
    commit_time: str | None
    started_at: str
    runs: list[float]  # one value per run (seed)
    left_out: int = 0  # contaminated runs not counted (timings only)

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
    shift: float  # relative change of the mean, (after - before) / |before|
    shift_low: float  # 95% interval of the relative shift (Welch t on the test's units)
    shift_high: float
    p: float
    worse: bool


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
        return stats.matches(self.metric, stats.HARDWARE_BOUND)


@dataclass
class History:
    series: list[Series]
    skipped_files: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"series": [asdict(s) for s in self.series], "skipped_files": self.skipped_files}


def read_records(root: Path | str) -> tuple[list[tuple[Path, RunResult]], int]:
    """Every record below `root` with its folder; other JSON files (summaries) are counted, not fatal."""
    found, skipped = [], 0
    for path in sorted(Path(root).rglob("*.json")):
        if path.name.startswith(".") or "logs" in path.parts:
            continue
        try:
            found.append((path.parent, load_record(path)))
        except (ValidationError, ValueError, KeyError, json.JSONDecodeError):
            skipped += 1
    return found, skipped


def build(
    root: Path | str,
    suite: str | None = None,
    metric: str | None = None,
    *,
    alpha: float = DEFAULT_ALPHA,
    min_shift: float = DEFAULT_MIN_SHIFT,
) -> History:
    records, skipped = read_records(root)
    folders: dict[Path, list[RunResult]] = {}
    for folder, record in records:
        if record.status == "ok" and (suite is None or record.suite == suite):
            folders.setdefault(folder, []).append(record)
    ordered = sorted(folders.items(), key=lambda item: _order(item[1]))
    series: dict[tuple[str, str, str, str], Series] = {}
    for folder, runs in ordered:
        for key, point, info in _points(folder, runs, metric):
            if key not in series:
                series[key] = Series(*key, unit=info[0], higher_is_better=info[1])
            series[key].points.append(point)
    for one in series.values():
        one.change_points = change_points(one, alpha=alpha, min_shift=min_shift)
    return History(sorted(series.values(), key=lambda s: (s.suite, s.fingerprint, s.strategy, s.metric)), skipped)


def _order(runs: list[RunResult]) -> tuple[str, str]:
    commit_times = [r.environment.git_commit_time or "" for r in runs]
    return (max(commit_times), min(r.started_at for r in runs))


def _points(folder: Path, runs: list[RunResult], only: str | None):
    groups: dict[tuple[str, str, str, str], list[RunResult]] = {}
    for run in runs:
        for name in run.metrics:
            if only is None or stats.matches(name, [only]):
                key = (run.suite, run.environment.fingerprint or "unknown", run.label, name)
                groups.setdefault(key, []).append(run)
    for key, group in groups.items():
        name = key[3]
        timing = stats.matches(name, stats.TIMING)
        clean = [r for r in group if not (timing and r.timing_contaminated)]
        values = [r.metrics[name].value for r in clean if r.metrics[name].value is not None]
        values = [v for v in values if math.isfinite(v)]
        if not values:
            continue
        first = group[0]
        metric = first.metrics[name]
        point = Point(
            folder=str(folder),
            commit=first.environment.git_commit,
            commit_time=first.environment.git_commit_time,
            started_at=min(r.started_at for r in group),
            runs=values,
            left_out=len(group) - len(clean),
        )
        yield key, point, (metric.unit, metric.higher_is_better)


def _robust_sigma(means: list[float]) -> float:
    import numpy as np

    if len(means) < 3:
        return 0.0
    diffs = np.diff(np.asarray(means))
    return float(1.4826 * np.median(np.abs(diffs - np.median(diffs))) / math.sqrt(2))


def candidates(means: list[float]) -> list[int]:
    """Indices where ruptures' PELT puts the start of a new level (not yet tested)."""
    import numpy as np
    import ruptures

    n = len(means)
    if n < 2 or len(set(means)) == 1:
        return []
    sigma = _robust_sigma(means)
    penalty = PENALTY_FACTOR * max(sigma, 1e-12) ** 2 * math.log(max(n, 2))
    signal = np.asarray(means, dtype=float).reshape(-1, 1)
    return [b for b in ruptures.Pelt(model="l2", min_size=1, jump=1).fit(signal).predict(pen=penalty) if b < n]


def _units(series: Series, points: list[Point]) -> list[float]:
    if series.hardware_bound and len(points) > 1:
        return [p.mean for p in points]
    return [v for p in points for v in p.runs]


def _interval(before: list[float], after: list[float], base: float) -> tuple[float, float]:
    from scipy import stats as scipy_stats

    shift = (stats.mean(after) - stats.mean(before)) / abs(base)
    if len(before) < 2 or len(after) < 2 or (len(set(before)) == 1 and len(set(after)) == 1):
        return shift, shift
    result = scipy_stats.ttest_ind(after, before, equal_var=False)
    low, high = result.confidence_interval(0.95)
    return low / abs(base), high / abs(base)


def change_points(
    series: Series, alpha: float = DEFAULT_ALPHA, min_shift: float = DEFAULT_MIN_SHIFT
) -> list[ChangePoint]:
    points = series.points
    bounds = candidates([p.mean for p in points])
    edges = [0, *bounds, len(points)]
    found = []
    for k in range(1, len(edges) - 1):
        left, right = points[edges[k - 1] : edges[k]], points[edges[k] : edges[k + 1]]
        one_night = len(left) == 1 or len(right) == 1
        before = [v for p in left for v in p.runs] if one_night else _units(series, left)
        after = [v for p in right for v in p.runs] if one_night else _units(series, right)
        base = stats.mean(before)
        if not base:
            continue
        shift = (stats.mean(after) - base) / abs(base)
        beyond, p = stats.differs(after, before, alpha)
        if not beyond or abs(shift) < min_shift:
            continue
        low, high = _interval(before, after, base)
        worse = (shift < 0) if series.higher_is_better else (shift > 0)
        start = right[0]
        found.append(
            ChangePoint(edges[k], start.commit, start.folder, base, stats.mean(after), shift, low, high, p, worse)
        )
    return found


def new_regressions(history: History) -> list[tuple[Series, ChangePoint]]:
    """Change points that start at the newest point of their series, in the worse direction."""
    return [(s, c) for s in history.series for c in s.change_points if c.worse and c.index == len(s.points) - 1]
