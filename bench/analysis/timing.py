"""What makes timing comparable between two result sets (bench/analysis/compare.py): machine speed (each
run's reference workload), sessions (`bench run` invocations, the unit of timing), hardware, and the
runs whose timing was contaminated by other load. docs/statistics.md says why each matters."""

from __future__ import annotations

from bench.analysis import stats
from bench.records.results import RunResult

ONE_SESSION = (
    "1 vs 1 sessions (bench run invocations): on a shared machine timing moves between sessions"
    " (docs/statistics.md), the runs of one session are not independent, and neither side shows how far"
    " sessions spread, so this cannot be tested; use bench ab (interleaved rounds) or several sessions a side"
)

# why one session against several is tested over session means (docs/statistics.md)
ONE_AGAINST_SEVERAL = "t prediction test: a session's runs share its machine speed, one measurement of it"


def one_session_against_several(
    c_values: list[float], b_values: list[float], alpha: float
) -> tuple[bool | None, float | None]:
    """(beyond noise?, p) of one side's single session mean against the other side's session means (a nightly
    against recent nights): the t prediction test, one-sided in the observed direction as `stats.differs`;
    (None, None) where a session lacked the metric and too few are left."""
    single, others = (c_values, b_values) if len(c_values) == 1 else (b_values, c_values)
    if len(single) != 1 or len(others) < 2:
        return None, None
    p = stats.prediction_p(single[0], others)
    return p <= alpha, p


def speed_factors(runs: list[RunResult], unit: str) -> dict[int, float] | None:
    """Per run, the factor that brings a timing to the runs' common machine speed, or None when a run
    has no reference (schema 1) or the unit is neither a time nor a rate.

    A run whose reference took 10% longer ran on a 10% slower machine: its seconds are divided by 1.1
    and its tokens/s multiplied by 1.1, relative to the mean reference of all the runs compared."""
    references = {id(run): run.timing_quality and run.timing_quality.reference for run in runs}
    if not references or any(not value for value in references.values()):
        return None
    common = sum(references.values()) / len(references)
    if unit.endswith("/s"):
        return {key: value / common for key, value in references.items()}
    if unit in ("s", "ms"):
        return {key: common / value for key, value in references.items()}
    return None


def session_counts(base: list[RunResult], cand: list[RunResult]) -> tuple[int, int] | None:
    """How many sessions each side's runs come from, or None when some run has none recorded."""
    if not all(run.session for run in base + cand):
        return None
    return len({run.session for run in base}), len({run.session for run in cand})


def session_means(runs: list[RunResult], metric: str, speed: dict[int, float] | None) -> list[float]:
    """One value per session (`bench run` invocation): the mean of its runs' values."""
    sessions: dict[str, list[RunResult]] = {}
    for run in runs:
        sessions.setdefault(run.session, []).append(run)
    means = [stats.mean(metric_values(group, metric, speed)) for group in sessions.values()]
    return [mean for mean in means if mean is not None]


def metric_values(runs: list[RunResult], metric: str, speed: dict[int, float] | None) -> list[float]:
    values = []
    for run in runs:
        value = run.metrics[metric].value if metric in run.metrics else None
        if value is not None:
            values.append(value * speed[id(run)] if speed else value)
    return values


def fingerprints(runs: list[RunResult]) -> set[str | None]:
    return {run.environment.fingerprint for run in runs}


def speed_change(base: list[RunResult], cand: list[RunResult]) -> str:
    """How much the reference workload's time moved from the baseline to the candidate."""

    def mean_reference(runs: list[RunResult]) -> float | None:
        values = [run.timing_quality.reference for run in runs if run.timing_quality]
        return stats.mean(values) if all(values) else None

    before, after = mean_reference(base), mean_reference(cand)
    if not before or not after:
        return "no reference"
    return f"reference workload {after / before - 1:+.1%}"


def hardware_diff(base: list[RunResult], cand: list[RunResult]) -> str:
    """Which hardware fields differ, e.g. `cpu_capability AVX512 -> AVX2`; fingerprints when several."""

    def fields(runs: list[RunResult]) -> dict[str, str]:
        seen: dict[str, set[str]] = {}
        for run in runs:
            hardware = run.environment.hardware.model_dump() if run.environment.hardware else {}
            for key, value in hardware.items():
                seen.setdefault(key, set()).add(str(value))
        return {key: " | ".join(sorted(values)) for key, values in seen.items()}

    before, after = fields(base), fields(cand)
    keys = [key for key in before | after if before.get(key) != after.get(key)]
    changed = [f"{key} {before.get(key)} -> {after.get(key)}" for key in keys]
    return "; ".join(changed) or "mixed fingerprints within a set"


def start_diff(base: list[RunResult], cand: list[RunResult]) -> str:
    """Why host memory peaks are not comparable (runs started warm on one side, cold on the other), or ""."""
    before, after = ({start_kind(run) for run in side} for side in (base, cand))
    if before == after and len(before) == 1:
        return ""
    return f"warm and cold starts differ (baseline {'/'.join(sorted(before))}, candidate {'/'.join(sorted(after))})"


def start_kind(run: RunResult) -> str:
    """How the run's process started, "warm" or "cold" (the record's `start` adds the reason of a cold
    start where a warm one was asked for); records from before `start` was kept: "unknown"."""
    return (run.start or "unknown").split(" ", 1)[0]


def timing_counts(record: RunResult) -> bool:
    """Whether the record's timing is ranked: not found contaminated by other load (bench/measure/contention.py).
    A record that recorded no timing quality counts, unchecked; `timing_unrecorded` counts those."""
    return not record.timing_contaminated


def clean_timing_runs(runs: list[RunResult]) -> list[RunResult]:
    """The runs whose timing was not contaminated: the one rule the report, the terminal table and
    `bench recommend` rank timing by."""
    return [run for run in runs if timing_counts(run)]


def timing_unrecorded(runs: list[RunResult], metric: str | None) -> int:
    """How many ok runs that measured the timing `metric` (a finite value) recorded no timing quality, so
    their contamination is unknown; metric None: every ok run (the report's Timing quality section, which
    counts against all ok runs)."""
    return sum(
        run.status == "ok" and run.timing_quality is None and (metric is None or run.finite(metric) is not None)
        for run in runs
    )


def contaminated_runs(runs: list[RunResult], side: str) -> list[str]:
    return [
        f"{side} seed {run.seed}: " + "; ".join(run.timing_quality.reasons) for run in runs if run.timing_contaminated
    ]
