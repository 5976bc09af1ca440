"""`bench history`: every metric's series over commits and nights, with change points.

A *point* is one invocation of `bench run`: the records of one results folder (a night of the
nightly, a commit's committed results). Points are ordered by commit time, then by when they ran.
Series are kept per (suite, hardware fingerprint, strategy label, metric), so timings are only
ever set beside timings of the same hardware; contaminated runs are left out of timing series and
counted. Where each series' level shifted: bench/analysis/change_points.py.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.analysis import stats
from bench.analysis.change_points import (
    DEFAULT_ALPHA,
    DEFAULT_MIN_SHIFT,
    ChangePoint,
    Point,
    Series,
    change_points,
)
from bench.analysis.environment import environment_of
from bench.analysis.timing import clean_timing_runs
from bench.records.results import RunResult
from bench.records.store import Skipped, scan_records, tell_skipped

__all__ = ["ChangePoint", "History", "Point", "Series", "build", "change_points", "new_regressions", "read_records"]

_BEFORE_HISTORY = datetime.min.replace(tzinfo=timezone.utc)  # where records without a commit time sort


@dataclass
class History:
    series: list[Series]
    skipped_files: int = 0
    nights: dict[tuple[str, str], int] = field(default_factory=dict)  # points of each (suite, fingerprint)

    def to_json(self) -> dict[str, Any]:
        return {"series": [_series_json(s) for s in self.series], "skipped_files": self.skipped_files}


def _series_json(series: Series) -> dict[str, Any]:
    """A series as --json writes it: its points without the records they were read from (and their
    environment, which each change point says where it changed)."""
    data = {f.name: getattr(series, f.name) for f in fields(series) if f.name not in ("points", "change_points")}
    kept = [f.name for f in fields(Point) if f.name not in ("records", "environment")]  # environment: per change
    data["points"] = [{name: getattr(p, name) for name in kept} for p in series.points]
    data["change_points"] = [asdict(c) for c in series.change_points]
    return data


def read_records(root: Path | str) -> tuple[list[tuple[Path, RunResult]], int]:
    """Every record below `root` with its folder; other JSON files (summaries) are told with their
    reason and counted, never fatal."""
    skipped: list[Skipped] = []
    found = [(path.parent, record) for path, record in scan_records(root, skipped)]
    tell_skipped(root, skipped)
    return found, len(skipped)


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
    nights: dict[tuple[str, str], int] = {}  # (suite, fingerprint) -> folders of it so far
    for folder, runs in ordered:
        for place in {(run.suite, _fingerprint(run)) for run in runs}:
            nights[place] = nights.get(place, 0) + 1
        for key, point, info in _points(folder, runs, metric):
            point.night = nights[key[:2]]
            if key not in series:
                series[key] = Series(*key, unit=info[0], higher_is_better=info[1])
            series[key].points.append(point)
    for one in series.values():
        one.change_points = change_points(one, alpha=alpha, min_shift=min_shift)
    ranked = sorted(series.values(), key=lambda s: (s.suite, s.fingerprint, s.strategy, s.metric))
    return History(ranked, skipped, nights)


def _order(runs: list[RunResult]) -> tuple[datetime, str]:
    """Commit time (as instants: committers' time zones differ), then when the folder's runs began."""
    committed = [datetime.fromisoformat(r.environment.git_commit_time) for r in runs if r.environment.git_commit_time]
    return (max(committed, default=_BEFORE_HISTORY), min(r.started_at for r in runs))


def _fingerprint(run: RunResult) -> str:
    return run.environment.fingerprint or "unknown"


def _points(folder: Path, runs: list[RunResult], only: str | None):
    groups: dict[tuple[str, str, str, str], list[RunResult]] = {}
    for run in runs:
        for name in run.metrics:
            if only is None or stats.matches(name, [only]):
                key = (run.suite, _fingerprint(run), run.label, name)
                groups.setdefault(key, []).append(run)
    for key, group in groups.items():
        name = key[3]
        timing = stats.matches(name, stats.TIMING)
        clean = clean_timing_runs(group) if timing else list(group)
        # oldest first, so that the newest run of a seed repeated in one folder is the one that stands for it
        clean.sort(key=lambda r: (r.started_at or "", r.run_id))
        kept = [(r, value) for r in clean if (value := r.finite(name)) is not None]
        if not kept:
            continue
        first = group[0]
        metric = first.metrics[name]
        point = Point(
            folder=str(folder),
            commit=first.environment.git_commit,
            commit_time=first.environment.git_commit_time,
            started_at=min(r.started_at for r in group),
            runs=[value for _, value in kept],
            left_out=len(group) - len(clean),
            seeds=[r.seed for r, _ in kept],
            records=[] if timing else [r for r, _ in kept],
            environment=environment_of(group),
        )
        yield key, point, (metric.unit, metric.higher_is_better)


def new_regressions(history: History) -> list[tuple[Series, ChangePoint]]:
    """Change points in the worse direction that start at the newest point of their suite on their
    hardware: not the newest point of a series that has since ended (a strategy taken out of the suite,
    a metric no longer measured), whose change is not new."""
    newest = dict(history.nights)
    for one in history.series:  # a History put together without build() numbers no nights
        place = (one.suite, one.fingerprint)
        newest[place] = max(newest.get(place, 0), one.points[-1].night)
    return [
        (s, c)
        for s in history.series
        for c in s.change_points
        if c.worse and c.index == len(s.points) - 1 and s.points[-1].night == newest[(s.suite, s.fingerprint)]
    ]
