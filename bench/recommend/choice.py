"""The one choice of `bench recommend` and its reason in a sentence, among the candidates that meet the constraints
(bench/recommend/constraints.py), with the noise test of that reason (bench/recommend/noise.py)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from bench.analysis.selection import suites_of
from bench.estimate.model import parse_bytes
from bench.estimate.suite import DEFAULT_RESERVE
from bench.measure.components import MIB
from bench.recommend.constraints import SHORT_NAMES, checks_of, pareto_set
from bench.recommend.figures import (
    MEMORY_SOURCES,
    OBJECTIVES,
    TENSOR_SOURCES,
    Candidate,
    Recommendation,
    _grouped,
    candidates_from,
)
from bench.recommend.formatting import _limit, _rate, _size
from bench.recommend.noise import objective_figure, pair_noise, ties_with
from bench.recommend.user_model import _apply_model, _model_notes, load_model_config
from bench.records.results import RunResult

RESERVE_BYTES = parse_bytes(DEFAULT_RESERVE)  # the CUDA context and allocator slack an estimate leaves out


# (name, value of a candidate, higher is better, how "better" reads)


def _shown(candidate: Candidate, objective: str) -> str:
    """The candidate's mean of the objective, as the reason states it."""
    mean = objective_figure(candidate, objective).mean
    if mean is None:
        return "?"
    return f"{mean:.2f}" if objective == "accuracy" else f"{_rate(mean)} tokens/s"


def _memory_key(candidate: Candidate) -> float:
    return math.inf if candidate.needed_mib is None else candidate.needed_mib


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


def _at(candidate: Candidate) -> str:
    """Its planning memory, saying where it is the estimate for the user's model."""
    shown = _size(candidate.planning_mib)
    return f"~{shown} on your model (estimate)" if candidate.estimate is not None else shown


def _plan(candidate: Candidate) -> str:
    """The figure it plans with, named, and the reserve held beside it: "0.94 MiB (tensors) + 2 GiB reserve"."""
    if candidate.estimate is not None or candidate.memory_source is None:
        return _at(candidate)
    shown = f"{_size(candidate.memory_mib)} ({SHORT_NAMES[candidate.memory_source]})"
    return shown + (f" + {_size(candidate.reserve_mib)} reserve" if candidate.reserve_mib else "")


def _tie(best: Candidate, tied: list[Candidate], objective: str, best_word: str, scope: str) -> str:
    """The reason where others tie with the best (the report's answer names one of them, "tie"): the lightest."""
    lightest = all(_memory_key(best) < _memory_key(c) for c in tied)
    memory = "the least memory of them" if lightest else "no more memory than they do"
    return (
        f"{best.name}: tied with {', '.join(c.name for c in tied)} as {best_word} of {scope}"
        f" ({_shown(best, objective)} each), with {memory}, at {_plan(best)}."
    )


def choose(
    feasible: list[Candidate], objective: str, scope: str, runs: dict[str, list[RunResult]] | None = None
) -> tuple[Candidate, str]:
    """The recommended candidate and the one-sentence reason: the best by the objective's mean (the lightest of
    those tied), unless others are within seed noise of it and need less memory: then the one of those with the
    least. runs: each candidate's records by name, for the item-paired test of accuracy."""
    best_word = "the most accurate" if objective == "accuracy" else "the fastest to train"
    ranked = [c for c in feasible if objective_figure(c, objective).mean is not None]
    ranked.sort(key=lambda c: (-(objective_figure(c, objective).mean or 0.0), _memory_key(c)))
    if not ranked:
        lightest = min(feasible, key=_memory_key)
        return lightest, f"{lightest.name}: none of {scope} measured {objective}; it needs the least memory, " + (
            f"{_plan(lightest)}."
        )
    best = ranked[0]
    if len(ranked) == 1:
        only = scope if len(feasible) == 1 else f"the only one of {scope} that measured {objective}"
        named = f"accuracy {_shown(best, objective)}" if objective == "accuracy" else _shown(best, objective)
        return best, f"{best.name}: {only} ({named}), at {_plan(best)}."
    tied = [c for c in ranked[1:] if ties_with(best, c, objective)]
    if tied:
        return best, _tie(best, tied, objective, best_word, scope)
    noise = {c.name: pair_noise(best, c, objective, runs or {}) for c in ranked[1:]}
    lighter = [c for c in ranked[1:] if noise[c.name].within and _memory_key(c) < _memory_key(best)]
    if lighter:
        pick = min(lighter, key=_memory_key)
        return pick, (
            f"{pick.name}: within seed noise of {best.name}, {best_word} of {scope}"
            f" ({_shown(pick, objective)} vs {_shown(best, objective)}),"
            f" with less memory ({_at(pick)} vs {_size(best.planning_mib)})."
        )
    runner = ranked[1]
    return best, (
        f"{best.name}: {best_word} of {scope} ({_shown(best, objective)} vs {runner.name}"
        f" {_shown(runner, objective)}, {noise[runner.name].words}), at {_plan(best)}."
    )


def _failing(candidates: list[Candidate], constraint: str) -> list[Candidate]:
    return [c for c in candidates if any(k.constraint == constraint and not k.met for k in c.checks)]


def _nothing_fits(
    candidates: list[Candidate], memory_bytes: int, min_accuracy: float | None, max_forgetting: float | None
) -> str:
    """One line: how many strategies miss each constraint, and the closest to it (what to relax)."""
    if not candidates:
        return "no successful (ok) runs to recommend from"
    total, parts = len(candidates), []
    too_big = _failing(candidates, "memory")
    if too_big:
        part = f"{len(too_big)} of {total} need more than {_size(memory_bytes / MIB)}"
        smallest = min(too_big, key=_memory_key)
        if smallest.planning_mib is not None:
            part += f" (smallest: {smallest.name}, {_plan(smallest)})"
        parts.append(part)
    for constraint, limit, words, closest, value in (
        ("accuracy", min_accuracy, "have accuracy below", "best", lambda c: c.accuracy.mean),
        ("forgetting", max_forgetting, "forget more than", "least", lambda c: c.forgetting.mean),
    ):
        failing = _failing(candidates, constraint)
        if not failing or limit is None:
            continue
        part = f"{len(failing)} of {total} {words} {_limit(limit)}"
        measured = [c for c in failing if value(c) is not None]
        if measured:
            top = max(measured, key=value)
            part += f" ({closest}: {top.name}, {abs(value(top)):.2f})"
        parts.append(part)
    return "no strategy meets the constraints: " + "; ".join(parts)


def _source_notes(candidates: list[Candidate]) -> list[str]:
    used = {c.memory_source for c in candidates if c.memory_source}
    notes = [
        f"memory ({short}): {meaning}"
        + (f" [{', '.join(c.name for c in candidates if c.memory_source == metric)}]" if len(used) > 1 else "")
        for metric, short, meaning in MEMORY_SOURCES
        if metric in used
    ]
    reserved = [c for c in candidates if c.reserve_mib]
    if reserved:
        notes.append(
            f"a strategy planned with its tensors fits only with {_size(reserved[0].reserve_mib)} reserve on top"
            " (the CUDA context, the allocator's slack and the process, which they leave out), as bench estimate"
            " holds an estimate; --reserve sets it"
        )
    if len(used) > 1:
        notes.append("memory figures come from different sources, so they do not compare exactly")
    return notes


def _record_notes(candidates: list[Candidate]) -> list[str]:
    notes = []
    machines = sorted({c.machine for c in candidates})
    if len(machines) > 1:
        notes.append(
            f"records from {len(machines)} machines ({', '.join(machines)}): each strategy is listed per machine,"
            " its runs never pooled across them"
        )
    for c in candidates:
        if c.throughput.reason and c.throughput.mean is not None:
            notes.append(f"{c.name}: throughput: {c.throughput.reason}")
    return notes


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
) -> Recommendation:
    """The strategies of `records` that meet the constraints, their Pareto set and one choice. The runs are
    the report's (bench.analysis.selection.comparable: per strategy the newest spec, one run per seed); records
    of several suites are ranked together, so callers split them first (recommend_by_suite).

    `model_config`: the user's model (a transformers config, or the path of its config.json); where it
    is larger than the measured model, memory is the estimator's for it (imports torch), held against
    `memory_bytes` with `reserve_bytes` on top, as `bench estimate` does.
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
    pareto, dominated = pareto_set(feasible)
    choice, reason = None, _nothing_fits(candidates, memory_bytes, min_accuracy, max_forgetting)
    if feasible:
        groups = _grouped([record for record in selection.records if record.status == "ok"])
        runs = {c.name: groups[c.name] for c in feasible}
        scope = _scope(len(feasible), memory_bytes, min_accuracy, max_forgetting)
        picked, reason = choose(feasible, objective, scope, runs)
        choice = picked.name
        notes += [f"{picked.name}: {check.text}" for check in picked.marginal]
    notes = _source_notes(candidates) + notes + _record_notes(candidates) + selection.notes
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
