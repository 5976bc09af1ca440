"""Hold a candidate result set against a baseline: direction-aware, noise-aware, never guessing.

Runs are matched by suite + label + spec minus seed; a changed spec is "not comparable". Then:

* a changed base model (its weights' sha256) makes the strategy "not comparable", never a regression;
* timing and memory are compared only between records of the same hardware fingerprint; across
  fingerprints they are "not comparable: hardware differs" while quality metrics are still compared;
* timing from a run whose record says it was contaminated (another process, steal, scattered steps)
  is shown but never gates;
* the base model's scores are identities: equal or "changed", never tested; per-suite constants
  (`accuracy_before.*`) as a whole, those on the held-out preference pairs the seed draws
  (`align.preference_accuracy_before`) seed by seed;
* everything else changes only when its relative change passes its threshold (default 10%) AND an
  exact permutation test over the runs (seeds) agrees, one-sided in the observed direction
  (p <= alpha, default 0.05). The run is the unit: see bench/analysis/stats.py. Designs too small for any
  test to reach alpha say "cannot tell";
* for timing the unit is the session (one `bench run` invocation, recorded since schema 6): the
  runs of one session share the machine's mood of that moment. Several sessions a side: tested over
  session means. One session against several (a nightly against recent nights): its mean against
  theirs, a t prediction test (stats.prediction_p). One against one: "cannot tell" (bench ab
  interleaves sessions for that).

A metric absent or null on either side is "missing". Imports no torch.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

from bench.analysis import quality, stats
from bench.analysis.environment import environment_changes
from bench.analysis.gate import control_family, min_effect_for, quality_verdict
from bench.analysis.snapshot import load_set
from bench.analysis.spec_keys import spec_diff, spec_key
from bench.analysis.timing import (
    ONE_AGAINST_SEVERAL,
    ONE_SESSION,
    contaminated_runs,
    fingerprints,
    hardware_diff,
    metric_values,
    one_session_against_several,
    session_counts,
    session_means,
    speed_change,
    speed_factors,
    start_diff,
)
from bench.analysis.untestable import identity_verdict, untestable
from bench.analysis.verdicts import (
    BETTER,
    DEFAULT_ALPHA,
    DEFAULT_GATES,
    DEFAULT_THRESHOLD,
    INCONSISTENT,
    LATENCY_TAIL,
    MISSING,
    NOISE,
    NOT_COMPARABLE,
    SAME,
    TIMING_CONTAMINATED,
    UNKNOWN,
    UNREADABLE,
    WORSE,
    Comparison,
    MetricChange,
    RunIssue,
)
from bench.records.results import RunResult
from bench.records.store import Skipped
from bench.suite import SuiteError

min_p_value = stats.min_p_value


def threshold_for(metric: str, thresholds: dict[str, float]) -> float:
    """The most specific user pattern that matches (exact name first), else the default."""
    found = stats.most_specific(metric, thresholds)
    return DEFAULT_THRESHOLD if found is None else found


def compare_metric(
    strategy: str,
    metric: str,
    base: list[RunResult],
    cand: list[RunResult],
    thresholds: dict[str, float],
    gating: bool,
    alpha: float = DEFAULT_ALPHA,
    adjust: bool = False,
    min_effects: dict[str, float] | None = None,
) -> MetricChange:
    """One metric of one matched strategy over per-run values: the verdict and the numbers behind it.

    `adjust`: timings are first brought to one machine speed with each run's reference workload.
    `min_effects`: the smallest quality change that gates, per metric pattern (points or fractions)."""
    if stats.is_quality(metric):  # once per seed: repeated rounds or nights are not more training runs
        base, cand = quality.one_per_seed(base), quality.one_per_seed(cand)
    entries = [run.metrics[metric] for run in base + cand if metric in run.metrics]
    unit, higher = entries[0].unit, entries[0].higher_is_better
    timing = stats.matches(metric, stats.TIMING)
    speed = speed_factors(base + cand, unit) if adjust and timing else None
    sessions = session_counts(base, cand) if timing else None  # None: not recorded (before schema 6)
    by_session = sessions is not None and min(sessions) >= 2
    one_against_several = sessions is not None and min(sessions) == 1 and max(sessions) >= 2
    values = session_means if by_session or one_against_several else metric_values
    b_values, c_values = values(base, metric, speed), values(cand, metric, speed)
    threshold = threshold_for(metric, thresholds)
    b_mean, c_mean = stats.mean(b_values), stats.mean(c_values)
    result = MetricChange(
        strategy=strategy, metric=metric, unit=unit, higher_is_better=higher, baseline=b_mean, candidate=c_mean,
        n_baseline=len(b_values), n_candidate=len(c_values), change=None, threshold=threshold, p_value=None,
        test="", verdict=MISSING, gating=gating,
    )  # fmt: skip
    result.adjusted = speed is not None
    if untestable(result, base, cand, b_values, c_values):
        return result
    if b_mean == c_mean:
        result.change = 0.0
    else:
        result.change = (c_mean - b_mean) / abs(b_mean) if b_mean else math.copysign(math.inf, c_mean - b_mean)
    if stats.matches(metric, stats.IDENTITY):
        identity_verdict(result, base, cand, b_values, c_values)
        return result
    if stats.is_quality(metric):
        return quality_verdict(result, base, cand, alpha, min_effect_for(metric, min_effects or {}, cand))
    if abs(result.change) <= threshold:
        result.verdict, result.note = SAME, f"within ±{threshold:.0%}"
        return result
    if sessions == (1, 1):
        result.test, result.n_baseline, result.n_candidate = "sessions", 1, 1
        result.verdict, result.note = UNKNOWN, ONE_SESSION
        return result
    result.test = "sessions" if by_session or one_against_several else "runs"
    test = one_session_against_several if one_against_several else stats.differs
    beyond, result.p_value = test(c_values, b_values, alpha)  # one-sided, in the observed direction
    if beyond is None:
        result.verdict = UNKNOWN
        more = "sessions" if result.test == "sessions" else "seeds"
        sizes = f"{len(b_values)} vs {len(c_values)} {result.test}"
        result.note = f"{sizes}: too few for any test to reach p<={alpha}; add {more}"
        return result
    if not beyond:
        result.verdict, result.note = NOISE, f"beyond ±{threshold:.0%} but within run-to-run noise"
        return result
    result.verdict = BETTER if (c_mean > b_mean) == higher else WORSE
    via = f": one session's mean against the others' ({ONE_AGAINST_SEVERAL})" if one_against_several else ""
    result.note = f"{len(b_values)} vs {len(c_values)} {result.test}{via}"
    return result


def _base_models(runs: list[RunResult]) -> set[str | None]:
    return {run.model.get("sha256") for run in runs}


def _compare_runs(
    strategy: str,
    base_ok: list[RunResult],
    cand_ok: list[RunResult],
    result: Comparison,
    patterns: list[str],
    thresholds: dict[str, float],
    adjust: bool,
    min_effects: dict[str, float],
) -> None:
    """Every metric of one matched strategy, after the checks that can make it not comparable."""
    base_models, cand_models = _base_models(base_ok), _base_models(cand_ok)
    if None in base_models | cand_models:
        sides = [side for side, models in (("baseline", base_models), ("candidate", cand_models)) if None in models]
        where = "either side" if len(sides) == 2 else f"the {sides[0]} side"
        result.issues.append(RunIssue(strategy, "unchecked", f"base model sha256 not recorded on {where}"))
    elif base_models != cand_models:
        before, after = ",".join(sorted(base_models)), ",".join(sorted(cand_models))
        detail = f"base model changed (sha {before[:12]} -> {after[:12]})"
        result.issues.append(RunIssue(strategy, NOT_COMPARABLE, detail))
        return
    base_hw, cand_hw = fingerprints(base_ok), fingerprints(cand_ok)
    hardware_note = ""
    if None in base_hw | cand_hw or base_hw != cand_hw or len(base_hw) > 1:
        hardware_note = f"hardware differs ({hardware_diff(base_ok, cand_ok)})"
        result.issues.append(RunIssue(strategy, "timing not comparable", hardware_note))
    start_note = start_diff(base_ok, cand_ok)
    contaminated = contaminated_runs(base_ok, "baseline") + contaminated_runs(cand_ok, "candidate")
    speed_note = speed_change(base_ok, cand_ok)
    if contaminated:
        result.issues.append(RunIssue(strategy, "timing contaminated", " | ".join(contaminated)))
    for metric in sorted({name for run in base_ok + cand_ok for name in run.metrics}):
        gate = stats.matches(metric, patterns) and not (
            patterns is DEFAULT_GATES and stats.matches(metric, stats.TAILS)
        )
        change = compare_metric(strategy, metric, base_ok, cand_ok, thresholds, gate, result.alpha, adjust, min_effects)
        if change.adjusted and change.verdict != MISSING:
            change.note = f"at equal machine speed ({speed_note}); " + change.note
        if change.held.startswith(INCONSISTENT):
            detail = f"{metric}: {change.held.removeprefix(INCONSISTENT + ': ')}"
            result.issues.append(RunIssue(strategy, INCONSISTENT, detail, bad_input=True))
        if hardware_note and stats.matches(metric, stats.COUNTED) and change.verdict != MISSING:
            change.note = f"counted from tensor sizes, so compared though {hardware_note}; {change.note}"
        if hardware_note and stats.hardware_bound(metric) and change.verdict != MISSING:
            change.verdict, change.gating, change.note, change.p_value = NOT_COMPARABLE, False, hardware_note, None
        elif start_note and stats.matches(metric, stats.START_BOUND) and change.verdict != MISSING:
            change.verdict, change.gating, change.note, change.p_value = NOT_COMPARABLE, False, start_note, None
        elif contaminated and stats.matches(metric, stats.TIMING):
            change.hold(f"{TIMING_CONTAMINATED} ({len(contaminated)} runs)")
        elif thin := stats.thin_tail(metric, _fewest_samples(base_ok + cand_ok, metric)):
            change.hold(thin)
        elif not gate and change.verdict in (WORSE, BETTER, NOISE, UNKNOWN):
            change.hold(LATENCY_TAIL if stats.matches(metric, stats.TAILS) else "not in --fail-on")
        result.changes.append(change)


def _fewest_samples(runs: list[RunResult], metric: str) -> int:
    """Samples per run behind a percentile metric (latency.ttft_ms.p99 -> timings latency.ttft_ms)."""
    family = metric.rsplit(".", 1)[0]
    counts = [len(run.timings[family].samples) for run in runs if family in run.timings]
    return min(counts) if counts else 0


def _by_strategy(records: list[RunResult], qualify: bool) -> dict[str, dict[str, list[RunResult]]]:
    """label (suite/label where `qualify`) -> spec key -> records."""
    grouped: dict[str, dict[str, list[RunResult]]] = {}
    for record in sorted(records, key=lambda r: (r.label, r.seed)):
        name = f"{record.suite}/{record.label}" if qualify else record.label
        grouped.setdefault(name, {}).setdefault(spec_key(record), []).append(record)
    return grouped


class PatternError(SuiteError):
    """A metric pattern that can select nothing: a typo in `--fail-on` would turn the gate off unseen.
    A SuiteError, so `bench` says it and exits 2 (bench/cli/main.py)."""


def check_patterns(
    records: list[RunResult], fail_on: list[str] | None, thresholds: dict[str, float], min_effects: dict[str, float]
) -> None:
    """Raise PatternError for `--fail-on` patterns that match no metric of either side; warn on stderr
    for `--threshold` and `--min-effect` patterns that match none (they change nothing)."""
    names = {name for record in records for name in record.metrics}
    if not names:
        return  # nothing recorded on either side: the comparison says so itself

    def unmatched(patterns: list[str]) -> list[str]:
        return [pattern for pattern in patterns if not any(stats.matches(name, [pattern]) for name in names)]

    if missing := unmatched(fail_on or []):
        problems = [f"{pattern!r} matches no metric of either side" for pattern in missing]
        raise PatternError("--fail-on", problems)
    for flag, patterns in (("--threshold", thresholds), ("--min-effect", min_effects)):
        for pattern in unmatched(list(patterns)):
            print(f"bench: warning: {flag} {pattern!r} matches no metric of either side: ignored", file=sys.stderr)


def compare_records(
    baseline: list[RunResult],
    candidate: list[RunResult],
    *,
    fail_on: list[str] | None = None,
    thresholds: dict[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    baseline_name: str = "baseline",
    candidate_name: str = "candidate",
    adjust_timing: bool = True,
    min_effects: dict[str, float] | None = None,
    control: bool = True,
) -> Comparison:
    """Match runs across the two sets and compare every metric either side recorded.

    `adjust_timing`: compare timings at equal machine speed, using each run's reference workload.
    `control`: hold the gating tests to alpha as a family (`bench ab` does it after its own tests)."""
    thresholds, patterns = thresholds or {}, fail_on or DEFAULT_GATES
    check_patterns(baseline + candidate, fail_on, thresholds, min_effects or {})
    result = Comparison(baseline_name, candidate_name, alpha=alpha)
    qualify = max(len({r.suite for r in baseline}), len({r.suite for r in candidate})) > 1
    base_groups, cand_groups = _by_strategy(baseline, qualify), _by_strategy(candidate, qualify)
    compared: dict[str, list[RunResult]] = {"baseline": [], "candidate": []}
    for strategy in sorted(set(base_groups) | set(cand_groups)):
        if strategy not in cand_groups:
            result.issues.append(RunIssue(strategy, "only in baseline", "no candidate run"))
            continue
        if strategy not in base_groups:
            result.issues.append(RunIssue(strategy, "only in candidate", "no baseline run"))
            continue
        common = [key for key in cand_groups[strategy] if key in base_groups[strategy]]
        if not common:
            b_key, c_key = next(iter(base_groups[strategy])), next(iter(cand_groups[strategy]))
            fields = ", ".join(spec_diff(b_key, c_key)) or "spec"
            result.issues.append(RunIssue(strategy, NOT_COMPARABLE, f"spec changed: {fields}"))
            continue
        for key in common:
            base_runs, cand_runs = base_groups[strategy][key], cand_groups[strategy][key]
            base_ok = [run for run in base_runs if run.status == "ok"]
            cand_ok = [run for run in cand_runs if run.status == "ok"]
            if not base_ok and base_runs:
                result.issues.append(RunIssue(strategy, "no successful baseline run", _statuses(base_runs)))
            for run in cand_runs:
                if run.status != "ok":
                    broke = run.status == "failed" and bool(base_ok)
                    kind = "failed in candidate" if run.status == "failed" else "skipped in candidate"
                    result.issues.append(RunIssue(strategy, kind, f"seed {run.seed}: {run.reason}", gating=broke))
            _missing_seeds(strategy, base_runs, cand_runs, result)
            if base_ok and cand_ok:
                compared["baseline"] += base_ok
                compared["candidate"] += cand_ok
                _compare_runs(
                    strategy, base_ok, cand_ok, result, patterns, thresholds, adjust_timing, min_effects or {}
                )
    result.environment = environment_changes(compared["baseline"], compared["candidate"])
    if control:
        control_family(result)
    return result


def _missing_seeds(strategy: str, base_runs: list[RunResult], cand_runs: list[RunResult], result: Comparison) -> None:
    """Seeds one side has a run of (in any state) and the other none: said, never gated. An absent run is no
    evidence of a regression by itself (a failed one is, and gates), but the comparison holds fewer seeds, and
    a run that died before writing its record looks exactly like this."""
    seeds = {"baseline": {run.seed for run in base_runs}, "candidate": {run.seed for run in cand_runs}}
    for side, other in (("candidate", "baseline"), ("baseline", "candidate")):
        if lacks := sorted(seeds[other] - seeds[side]):
            ran = ", ".join(map(str, sorted(seeds[other])))
            detail = f"the {side} lacks seed(s) {', '.join(map(str, lacks))} of {strategy} (the {other} ran {ran})"
            result.issues.append(RunIssue(strategy, f"seed missing in {side}", detail))


def _statuses(runs: list[RunResult]) -> str:
    """What became of each run of a side, seed by seed: `seed 0 failed: <last line of its reason>`."""
    said = [(run.seed, run.status, (run.reason or "").strip().splitlines()) for run in runs]
    return "; ".join(f"seed {seed} {status}" + (f": {lines[-1]}" if lines else "") for seed, status, lines in said)


def compare(
    baseline: Path | str,
    candidate: Path | str,
    *,
    fail_on: list[str] | None = None,
    thresholds: dict[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    baseline_rev: str | None = None,
    candidate_rev: str | None = None,
    adjust_timing: bool = True,
    min_effects: dict[str, float] | None = None,
) -> Comparison:
    """Compare two result folders (each optionally read at a git revision). Files of either folder that may be
    records but could not be read are kept in `Comparison.unreadable` and said first among its issues."""
    base_name = f"{baseline}@{baseline_rev}" if baseline_rev else str(baseline)
    cand_name = f"{candidate}@{candidate_rev}" if candidate_rev else str(candidate)
    base_skipped: list[Skipped] = []
    cand_skipped: list[Skipped] = []
    result = compare_records(
        load_set(baseline, baseline_rev, base_skipped),
        load_set(candidate, candidate_rev, cand_skipped),
        fail_on=fail_on,
        thresholds=thresholds,
        alpha=alpha,
        baseline_name=base_name,
        candidate_name=cand_name,
        adjust_timing=adjust_timing,
        min_effects=min_effects,
    )
    said = []
    for side, skipped in (("baseline", base_skipped), ("candidate", cand_skipped)):
        if damaged := [f"{one.path}: {one.reason}" for one in skipped if one.damaged]:
            result.unreadable[side] = damaged
            said += [RunIssue(f"({side})", UNREADABLE, f"{file}: the comparison may miss its run") for file in damaged]
    result.issues[:0] = said  # first: the runs compared may not be all there are
    return result
