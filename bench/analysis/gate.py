"""What gates: a quality verdict with both noises and its minimum effect, and the family-wise control
that holds every gating test of one comparison to alpha together (docs/statistics.md). Imports no torch."""

from __future__ import annotations

import math

from bench.analysis import quality, stats
from bench.analysis.verdicts import (
    ALL_STRATEGIES,
    BETTER,
    MISSING,
    NOISE,
    SAME,
    UNKNOWN,
    WORSE,
    Comparison,
    MetricChange,
)
from bench.records.results import RunResult


def min_effect_for(metric: str, user: dict[str, float], runs: list[RunResult]) -> float | None:
    """The smallest change of a quality metric that gates: the user's `--min-effect` pattern, else the
    suite's `gate.min_effect` (recorded in each run's spec), else None (the default of its scale).

    In each source a pattern for the metric itself wins; else gain.T and forgetting.T take the minimum
    effect of accuracy.T, the same item outcomes a constant apart (stats.hypothesis), and forgetting.mean
    the smallest of its retained tasks' where each has one (a mean moves by that much only where one of
    them does). So a change declared too small for accuracy cannot gate through its restatements."""
    suite = next((run.spec.get("gate") or {} for run in runs if run.spec.get("gate")), {})
    for source in (user, suite.get("min_effect") or {}):
        for names in _restated(metric, runs):
            found = [stats.most_specific(name, source) for name in names]
            if found and None not in found:
                return min(value for value in found if value is not None)
    return None


def _restated(metric: str, runs: list[RunResult]) -> list[list[str]]:
    """The names whose minimum effect a metric takes, most specific first: itself, then what it restates."""
    names = [[metric]]
    if stats.hypothesis(metric) != metric:
        names.append([stats.hypothesis(metric)])
    elif metric == "forgetting.mean":
        tasks = sorted({name for run in runs for name in run.metrics if name.startswith("forgetting.")} - {metric})
        names.append([stats.hypothesis(name) for name in tasks])
    return names


def seconds_matched(run: RunResult) -> bool:
    """A run whose budget was matched by seconds (`budget.match: seconds`): it trained for as many steps as
    its machine managed in `max_seconds`, so its quality is that machine's and that moment's."""
    resolved = run.budget.get("resolved") or run.spec.get("budget") or {}
    return resolved.get("match") == "seconds"


def steps_said(steps: list[int | None]) -> str:
    """Steps done, one per run in seed order: `98` where all agree, else `98, 91` (`?`: not recorded)."""
    said = ["?" if count is None else str(count) for count in steps]
    return ", ".join(said if len(set(said)) > 1 else said[:1])


def steps_note(base: list[RunResult], cand: list[RunResult]) -> str | None:
    """Where a side's budget was matched by seconds and the sides did different steps: that the quality
    change is partly the machines' (their speed and load), not only the code's; else None."""
    if not any(seconds_matched(run) for run in base + cand):
        return None
    sides = [[run.budget.get("steps_done") for run in sorted(side, key=lambda run: run.seed)] for side in (base, cand)]
    if sides[0] == sides[1]:
        return None
    said = " vs ".join(steps_said(side) for side in sides)
    return f"budget matched by seconds: steps done differ ({said}): quality depends on machine speed"


def quality_verdict(
    result: MetricChange, base: list[RunResult], cand: list[RunResult], alpha: float, min_effect: float | None
) -> MetricChange:
    """A quality metric with both noises, items and seeds (bench/analysis/quality.py); one-sided at alpha, with the
    (1 - 2 alpha) interval that agrees with it, and gated only beyond the minimum effect. Runs whose budget
    was matched by seconds and whose sides did different steps say so in the note (steps_note)."""
    _tested(result, base, cand, alpha, min_effect)
    if note := steps_note(base, cand):
        result.note = f"{result.note}; {note}" if result.note else note
    return result


def _tested(
    result: MetricChange, base: list[RunResult], cand: list[RunResult], alpha: float, min_effect: float | None
) -> MetricChange:
    """quality_verdict's verdict and note, from the test of both noises."""
    result.test = "seeds"
    if quality.identical_per_seed(base, cand, result.metric):
        seeds = len(quality.measured(base, result.metric))
        result.verdict, result.note = SAME, f"identical on each of {seeds} paired seeds"
        return result
    test = quality.quality_test(base, cand, result.metric)
    if isinstance(test, str):
        result.verdict, result.note = UNKNOWN, test
        return result
    if test.scale == "points" and "item" in test.design:
        result.test = "items"
    smallest = quality.DEFAULT_MIN_EFFECT[test.scale] if min_effect is None else min_effect
    floor = math.log1p(smallest) if test.scale == "ratio" else smallest
    result.threshold, result.effect, result.p_value = smallest, test.effect, test.p()
    result.low, result.high = test.bounds(alpha)
    result.se, result.df, result.scale = test.se, test.df, test.scale
    result.mde = quality.minimum_detectable(test.se, test.df, alpha)  # restated for the family by control_family
    span = f"{test.shown(test.effect)}, {1 - 2 * alpha:.0%} CI {test.shown(result.low)} to {test.shown(result.high)}"
    detail = test.design
    if result.p_value > alpha:
        result.verdict, result.note = NOISE, f"within item and seed noise ({span}; {detail})"
    elif abs(test.effect) < floor:
        result.verdict = SAME
        result.note = f"beyond noise but under the minimum effect {test.shown(floor).lstrip('+')} ({span}; {detail})"
    else:
        result.verdict = BETTER if (test.effect > 0) == result.higher_is_better else WORSE
        result.note = f"{span}; {detail}"
    return result


def control_family(result: Comparison) -> None:
    """Benjamini-Hochberg over every gating test of one comparison, separately for the worse and the
    better direction: a verdict stands only when its adjusted p (q) is at most alpha. With no real
    change anywhere (an A/A) that bounds the chance of any gating verdict by alpha. Metrics that restate
    one test (accuracy.T, gain.T and forgetting.T; tokens/s, samples/s, steps/s and seconds) count
    once, with the smallest p among them (stats.hypothesis)."""
    tested = [c for c in result.changes if c.gating and c.p_value is not None and c.verdict != MISSING]
    within = [c for c in tested if c.parent is not None]  # bench ab: strategies' rows under a suite row
    tested = [c for c in tested if c.parent is None]
    members: dict[tuple[str, str], list[MetricChange]] = {}
    for change in tested:
        members.setdefault((change.strategy, stats.hypothesis(change.metric)), []).append(change)
    for change in tested:  # the change each quality test is sure (95%) to catch as one of this family
        if change.se is not None:
            change.mde = quality.minimum_detectable(change.se, change.df, result.alpha / max(len(members), 1))
            mde = quality.shown(change.mde, change.scale).lstrip("+")
            change.note += f"; MDE {mde} (95% power at alpha/{len(members)})"
    for direction in (WORSE, BETTER):
        p_values = []
        for group in members.values():
            pointing = [c.p_value for c in group if _points(c) == direction]
            p_values.append(min(pointing, default=1.0))
        for group, q in zip(members.values(), stats.benjamini_hochberg(p_values)):
            for change in group:
                if _points(change) != direction:
                    continue
                change.q_value = q
                if change.verdict == direction and q > result.alpha:
                    change.verdict = NOISE
                    change.note = (
                        f"p={change.p_value:.2g} alone, but q={q:.2g} > {result.alpha} after Benjamini-Hochberg"
                        f" over {len(members)} gating hypotheses; " + change.note
                    )
    _control_within(result, within)


def _control_within(result: Comparison, within: list[MetricChange]) -> None:
    """The second stage of `bench ab`'s timing family: a strategy's row gates only where the suite-level
    row of its hypothesis stood the same way in the first stage, and then as one of Benjamini-Hochberg
    over the strategies under it. With no change anywhere a strategy's row can gate only after its
    suite row did, so the comparison's false-alarm rate is still the first stage's."""
    for parent in (c for c in result.changes if c.strategy == ALL_STRATEGIES):
        group: dict[str, list[MetricChange]] = {}
        for change in within:
            if change.parent == parent.metric:
                group.setdefault(change.strategy, []).append(change)
        for direction in (WORSE, BETTER):
            p_values = [min((c.p_value for c in g if _points(c) == direction), default=1.0) for g in group.values()]
            for changes, q in zip(group.values(), stats.benjamini_hochberg(p_values)):
                for change in (c for c in changes if _points(c) == direction):
                    change.q_value = q
                    if change.verdict != direction:
                        continue
                    if not _opens(parent, direction, result.alpha):
                        why = f"the {ALL_STRATEGIES} row did not move {direction} beyond noise, and it gates first"
                        _demote(change, f"{why} (bench ab --only {change.strategy} tests this strategy alone)")
                    elif q > result.alpha:
                        _demote(change, f"q={q:.2g} > {result.alpha} over the {len(group)} strategies under it")


def _demote(change: MetricChange, why: str) -> None:
    change.verdict = NOISE
    change.note = f"p={change.p_value:.2g} alone, but {why}; {change.note}"


def _opens(parent: MetricChange, direction: str, alpha: float) -> bool:
    """Whether a suite-level row stood (q <= alpha) in this direction, whatever its size."""
    return parent.q_value is not None and parent.q_value <= alpha and _points(parent) == direction


def _points(change: MetricChange) -> str | None:
    """The direction a change points, better or worse, whatever its verdict."""
    if change.effect is not None:
        moved = change.effect
    elif change.baseline is not None and change.candidate is not None:
        moved = change.candidate - change.baseline
    elif change.change is not None:  # bench ab's suite-level rows: a mean ratio, no means of their own
        moved = change.change
    else:
        return None
    if moved == 0:
        return None
    return BETTER if (moved > 0) == change.higher_is_better else WORSE
