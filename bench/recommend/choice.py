"""The one choice of `bench recommend` and its reason in a sentence, among the candidates that meet the constraints
(bench/recommend/constraints.py), with the noise test of that reason (bench/recommend/noise.py).

A lighter strategy is chosen over the best only where its difference's 95% interval stays within a tolerance
of it (DEFAULT_TOLERANCE: 2 accuracy points, or 5% of the fastest's tokens/s): a test that fails to reject
is no evidence that two strategies are equal, and with 2 seeds an interval can admit a 30-point drop. With
several lighter strategies, each one's bound is held at 97.5% / their number (Bonferroni), as the lightest
of those that pass is picked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.analysis.selection import suites_of
from bench.estimate.model import parse_bytes
from bench.estimate.suite import DEFAULT_RESERVE
from bench.measure.components import MIB
from bench.recommend.constraints import checks_of, memory_differs, pareto_set
from bench.recommend.figures import (
    ALPHA,
    OBJECTIVES,
    TENSOR_SOURCES,
    Candidate,
    Recommendation,
    _grouped,
    candidates_from,
)
from bench.recommend.formatting import (
    _limit,
    _rate,
    _size,
    failed_strategies,
    memory_key,
    nothing_fits,
    plan_text,
    planned_at,
    record_notes,
    source_notes,
)
from bench.recommend.noise import Difference, objective_figure, pair_difference, pair_noise, ties_with
from bench.recommend.user_model import _apply_model, _model_notes, load_model_config
from bench.records.results import RunResult

RESERVE_BYTES = parse_bytes(DEFAULT_RESERVE)  # the CUDA context and allocator slack an estimate leaves out
# How much worse a lighter strategy may be, at the low end of its difference's 95% interval, and still be chosen
# for its memory: accuracy in points (shares: 0.02 = 2 points); throughput as a share of the fastest's tokens/s
DEFAULT_TOLERANCE = {"accuracy": 0.02, "throughput": 0.05}


def _shown(candidate: Candidate, objective: str) -> str:
    """The candidate's mean of the objective, as the reason states it."""
    mean = objective_figure(candidate, objective).mean
    if mean is None:
        return "?"
    return f"{mean:.2f}" if objective == "accuracy" else f"{_rate(mean)} tokens/s"


def _scope(count: int, memory_bytes: int, min_accuracy: float | None, max_forgetting: float | None) -> str:
    """ "the 5 strategies that fit 24 GiB and reach accuracy 0.50", "the only strategy that fits 24 GiB"."""
    verb = ("fits", "reaches", "forgets") if count == 1 else ("fit", "reach", "forget")
    limits = [f"{verb[0]} {_size(memory_bytes / MIB)}"]
    if min_accuracy is not None:
        limits.append(f"{verb[1]} accuracy {_limit(min_accuracy)}")
    if max_forgetting is not None:
        limits.append(f"{verb[2]} at most {_limit(max_forgetting)}")
    phrase = limits[0] if len(limits) == 1 else ", ".join(limits[:-1]) + " and " + limits[-1]
    return f"the only strategy that {phrase}" if count == 1 else f"the {count} strategies that {phrase}"


def _signed(value: float, objective: str) -> str:
    if objective == "accuracy":
        return f"{100 * value:+.1f}"
    return ("+" if value >= 0 else "-") + _rate(abs(value))


def _difference(found: Difference, objective: str) -> str:
    """ "-0.5 points (95% interval -1.6 to +0.7" without the closing bracket, for the noise words to follow."""
    unit = "points" if objective == "accuracy" else "tokens/s"
    low, high = _signed(found.low, objective), _signed(found.high, objective)
    return f"{_signed(found.mean, objective)} {unit} (95% interval {low} to {high}"


def _tolerance(objective: str, tolerance: float, best: Candidate) -> tuple[float, str]:
    """(the tolerance in the difference's unit, in words)."""
    if objective == "accuracy":
        return tolerance, f"{100 * tolerance:g}-point tolerance"
    allowed = tolerance * (objective_figure(best, objective).mean or 0.0)
    return allowed, f"{100 * tolerance:g}% tolerance ({_rate(allowed)} tokens/s)"


def _tie(best: Candidate, tied: list[Candidate], objective: str, best_word: str, scope: str, said: str) -> str:
    """The reason where others tie with the best (the report's answer names one of them, "tie"): the lightest,
    and what the data says of the tie with the first of them (`said`, `_tie_noise`: a mean tied is not a
    difference shown small; audit user19: ia3 "tied with full" at a 95% interval of -18.7 to +18.7 points)."""
    lightest = all(memory_key(best) < memory_key(c) for c in tied)
    memory = "the least memory of them" if lightest else "no more memory than they do"
    return (
        f"{best.name}: tied with {', '.join(c.name for c in tied)} as {best_word} of {scope}"
        f" ({_shown(best, objective)} each; {said}), with {memory}, at {plan_text(best)}"
    )


def _tie_noise(
    best: Candidate, other: Candidate, objective: str, runs: dict[str, list[RunResult]], tolerance: tuple[float, str]
) -> str:
    """What the data says of a tie of means: the difference's interval against the tolerance (its value, in
    words), else the noise."""
    found = pair_difference(best, other, objective, runs)
    if found is None:
        return f"equal means; {pair_noise(best, other, objective, runs).words}"
    allowed, words = tolerance
    shown = "within" if -allowed <= found.low and found.high <= allowed else "not shown within"
    return f"{shown} the {words} of {other.name}: {_difference(found, objective)})"


def _one_hardware(ranked: list[Candidate], objective: str) -> tuple[list[Candidate], list[Candidate]]:
    """(those ranked, those left out): throughput is ranked among the strategies of one hardware only (the one
    with the most of them), as tokens/s of a GPU and of a CPU do not compare; accuracy over every one."""
    if objective != "throughput" or len({c.hardware for c in ranked}) < 2:
        return ranked, []
    groups: dict[str, list[Candidate]] = {}
    for candidate in ranked:
        groups.setdefault(candidate.hardware, []).append(candidate)
    kept = max(sorted(groups), key=lambda key: len(groups[key]))
    return groups[kept], [c for c in ranked if c.hardware != kept]


def _elsewhere(left_out: list[Candidate], objective: str) -> str:
    """The clause naming the strategies timed on other hardware, never ranked against the choice."""
    if not left_out:
        return ""
    named = ", ".join(f"{c.name} ({_shown(c, objective)})" for c in left_out)
    verb = "was" if len(left_out) == 1 else "were"
    return f"; not ranked against {named}, which {verb} timed on other hardware, whose tokens/s do not compare"


def _level(found: dict[str, Difference | None]) -> tuple[float, int]:
    """(the one-sided level of each non-inferiority test, how many there are): 2.5% over the lighter strategies
    with an interval (Bonferroni), so that the chance that any one more than the tolerance worse passes, and
    may be picked, stays within 2.5% however many lighter strategies the suite holds."""
    tested = sum(difference is not None for difference in found.values())
    return ALPHA / 2 / max(1, tested), tested


def _within_tolerance(
    lighter: list[Candidate], found: dict[str, Difference | None], allowed: float, level: float
) -> list[Candidate]:
    """Those of the lighter ones whose difference's one-sided (1 - level) lower bound stays within the tolerance
    (a non-inferiority test; at one lighter strategy, the low end of the 95% interval); no interval (one seed a
    side, no spread): no."""
    return [c for c in lighter if (d := found[c.name]) is not None and d.low_at(level) >= -allowed]


def _held(found: Difference, objective: str, level: float, tested: int) -> str:
    """Where several lighter strategies were tested: the low end each test held, as a clause."""
    if tested <= 1:
        return ""
    unit = "points" if objective == "accuracy" else "tokens/s"
    return (
        f"; {_signed(found.low_at(level), objective)} {unit} at its low end held for the {tested} lighter"
        " strategies tested at once"
    )


def _undecided(candidate: Candidate, found: Difference, objective: str, words: str, held: str) -> str:
    """The clause for a lighter strategy whose interval reaches past the tolerance but not wholly beyond it: the
    data cannot tell whether it is within the tolerance, so the more accurate (faster) one is kept."""
    unit = "points" if objective == "accuracy" else "tokens/s"
    mde = _signed(found.mde, objective).lstrip("+")
    return (
        f"; {candidate.name} needs less memory ({planned_at(candidate)}) but the data cannot tell whether it is"
        f" within the {words} of it: {_difference(found, objective)}{held}, detectable >= {mde} {unit})"
    )


def choose(
    feasible: list[Candidate],
    objective: str,
    scope: str,
    runs: dict[str, list[RunResult]] | None = None,
    tolerance: float | None = None,
) -> tuple[Candidate, str]:
    """The recommended candidate and the one-sentence reason: the best by the objective's mean (the lightest of
    those tied), unless others need less memory and the 95% interval of their difference to it stays within
    `tolerance` (DEFAULT_TOLERANCE): then the lightest of those. runs: each candidate's records by name."""
    runs = runs or {}
    best_word = "the most accurate" if objective == "accuracy" else "the fastest to train"
    ranked = [c for c in feasible if objective_figure(c, objective).mean is not None]
    ranked.sort(key=lambda c: (-(objective_figure(c, objective).mean or 0.0), memory_key(c)))
    if not ranked:
        lightest = min(feasible, key=memory_key)
        return lightest, f"{lightest.name}: none of {scope} measured {objective}; it needs the least memory, " + (
            f"{plan_text(lightest)}."
        )
    ranked, left_out = _one_hardware(ranked, objective)
    apart = _elsewhere(left_out, objective) + "."
    if left_out:
        scope += f", among those timed on {', '.join(sorted({c.machine for c in ranked}))}"
    best = ranked[0]
    if len(ranked) == 1:
        only = scope if len(feasible) == 1 else f"the only one of {scope} that measured {objective}"
        named = f"accuracy {_shown(best, objective)}" if objective == "accuracy" else _shown(best, objective)
        return best, f"{best.name}: {only} ({named}), at {plan_text(best)}{apart}"
    allowed, words = _tolerance(objective, DEFAULT_TOLERANCE[objective] if tolerance is None else tolerance, best)
    tied = [c for c in ranked[1:] if ties_with(best, c, objective)]
    if tied:
        said = _tie_noise(best, tied[0], objective, runs, (allowed, words))
        return best, _tie(best, tied, objective, best_word, scope, said) + apart
    noise = {c.name: pair_noise(best, c, objective, runs) for c in ranked[1:]}
    # lighter beyond the noise of the memory figures (constraints.memory_differs): 649 vs 651 MiB is no lighter
    lighter = [c for c in ranked[1:] if memory_key(c) < memory_key(best) and memory_differs(c, best)]
    found = {c.name: pair_difference(best, c, objective, runs) for c in lighter}
    level, tested = _level(found)
    close = _within_tolerance(lighter, found, allowed, level)
    if close:
        pick = min(close, key=memory_key)
        held = _held(found[pick.name], objective, level, tested)  # type: ignore[arg-type]
        return pick, (
            f"{pick.name}: less memory than {best.name}, {best_word} of {scope}"
            f" ({planned_at(pick)} vs {_size(best.planning_mib)}), and within the {words} of it:"
            f" {_shown(pick, objective)} vs {_shown(best, objective)},"
            f" {_difference(found[pick.name], objective)}{held}; {noise[pick.name].words}){apart}"  # type: ignore[arg-type]
        )
    runner = ranked[1]
    reason = (
        f"{best.name}: {best_word} of {scope} ({_shown(best, objective)} vs {runner.name}"
        f" {_shown(runner, objective)}, {noise[runner.name].words}), at {plan_text(best)}"
    )
    # lighter ones whose interval reaches past the tolerance but not wholly beyond it: the data cannot tell
    undecided = [c for c in lighter if c not in close and (d := found[c.name]) and d.high >= -allowed]
    if undecided:
        first: Difference = found[undecided[0].name]  # type: ignore[assignment]
        # the held bound is said where it, not the 95% interval, is what reaches past the tolerance
        held = _held(first, objective, level, tested) if first.low >= -allowed else ""
        reason += _undecided(undecided[0], first, objective, words, held)
    return best, reason + apart


def recommend_by_suite(records: list[RunResult], memory_bytes: int, **options: Any) -> dict[str, Recommendation]:
    """`recommend` for each suite of the records apart (options: those of `recommend`)."""
    return {suite: recommend(runs, memory_bytes, **options) for suite, runs in suites_of(records).items()}


def recommend(
    records: list[RunResult],
    memory_bytes: int,
    min_accuracy: float | None = None,
    max_forgetting: float | None = None,
    objective: str = "accuracy",
    model_config: Any = None,
    reserve_bytes: int = RESERVE_BYTES,
    tolerance: float | None = None,
) -> Recommendation:
    """The strategies of `records` that meet the constraints, their Pareto set and one choice. The runs are
    the report's (bench.analysis.selection.comparable: per strategy the newest spec, one run per seed); records
    of several suites are ranked together, so callers split them first (recommend_by_suite).

    `model_config`: the user's model (a transformers config, or the path of its config.json); where it
    is larger than the measured model, memory is the estimator's for it (imports torch), held against
    `memory_bytes` with `reserve_bytes` on top, as `bench estimate` does. `tolerance`: how much worse a
    lighter strategy may be at the low end of its 95% interval to be chosen (`choose`; DEFAULT_TOLERANCE). A
    strategy whose runs all failed is rejected with their reasons.
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    from bench.analysis.selection import comparable

    selection = comparable(records)
    candidates = candidates_from(selection.records)
    user_parameters, notes = None, []
    if model_config is not None and candidates:
        config = load_model_config(model_config) if isinstance(model_config, (str, Path)) else model_config
        user_parameters, notes = _apply_model(candidates, selection.records, config, memory_bytes, reserve_bytes)
    elif candidates:
        notes = _model_notes(candidates, None)
    for candidate in candidates:
        if candidate.estimate is None and candidate.memory_source in TENSOR_SOURCES:
            candidate.reserve_mib = reserve_bytes / MIB
        candidate.checks = checks_of(candidate, memory_bytes, min_accuracy, max_forgetting)
    feasible = [c for c in candidates if all(check.met for check in c.checks)]
    rejected = {c.name: "; ".join(k.text for k in c.checks if not k.met) for c in candidates if c not in feasible}
    rejected.update(failed_strategies(selection.records))
    groups = _grouped([record for record in selection.records if record.status == "ok"])
    runs = {c.name: groups[c.name] for c in feasible}
    pareto, dominated = pareto_set(feasible, runs)
    choice, reason = None, nothing_fits(candidates, memory_bytes, min_accuracy, max_forgetting)
    if feasible:
        scope = _scope(len(feasible), memory_bytes, min_accuracy, max_forgetting)
        picked, reason = choose(feasible, objective, scope, runs, tolerance)
        choice = picked.name
        notes += [f"{picked.name}: {check.text}" for check in picked.marginal]
    notes = source_notes(candidates) + notes + record_notes(candidates) + selection.notes
    return Recommendation(
        memory_bytes=memory_bytes,
        objective=objective,
        min_accuracy=min_accuracy,
        max_forgetting=max_forgetting,
        candidates=candidates,
        feasible=[c.name for c in feasible],
        pareto=pareto,
        rejected=rejected,
        dominated=dominated,
        choice=choice,
        reason=reason,
        notes=notes,
        measured_parameters=max((c.model_parameters for c in candidates if c.model_parameters), default=None),
        user_parameters=user_parameters,
    )
