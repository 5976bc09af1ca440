"""The rows an answer of the report ranks and what its note adds: timing over clean runs, one hardware's
runs, forgetting's floors (nothing to forget), strategies that did not learn the task, a merged model's
lower latency (bench/report/aggregate.py asks the questions)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bench.analysis.timing import clean_timing_runs, timing_unrecorded
from bench.records.results import RunResult, learned_task, retained_tasks
from bench.report.scales import fmt

if TYPE_CHECKING:
    import pandas as pd


def clean_timing(rows: pd.DataFrame, keyed: dict[str, list[RunResult]], metric: str) -> tuple[pd.DataFrame, str]:
    """A timing metric's rows over each strategy's runs whose timing was not contaminated (a strategy with none
    left is not ranked), and what was left out, in words."""
    strategies = list(rows["strategy"])
    clean = {strategy: clean_timing_runs(keyed.get(strategy, [])) for strategy in strategies}
    measured = {strategy: len(seed_values(keyed.get(strategy, []), metric)) for strategy in strategies}
    counted = {strategy: len(seed_values(clean[strategy], metric)) for strategy in strategies}
    said = []
    dropped = sum(measured[s] - counted[s] for s in strategies)
    if dropped:
        unranked = sorted(s for s in strategies if not counted[s])
        said.append(f"{dropped} run{'s' * (dropped > 1)} with contaminated timing left out")
        said[-1] += f" ({', '.join(unranked)}: no clean run, not ranked)" if unranked else ""
    unknown = timing_unrecorded([r for s in strategies for r in keyed.get(s, [])], metric)
    if unknown:
        said.append(f"timing quality not recorded for {unknown} run{'s' * (unknown > 1)}: contamination unknown")
    return over_runs(rows, clean, metric), "; ".join(said)


def over_runs(rows: pd.DataFrame, keyed: dict[str, list[RunResult]], metric: str) -> pd.DataFrame:
    """A metric's rows over each strategy's runs in `keyed` (those of one hardware, or with clean timing):
    values, n and mean; a strategy with none is not ranked."""
    values = {strategy: [v for _, v in seed_values(keyed.get(strategy, []), metric)] for strategy in rows["strategy"]}
    rows = rows.assign(
        values=[values[s] for s in rows["strategy"]],
        n=[len(values[s]) for s in rows["strategy"]],
        mean=[sum(values[s]) / len(values[s]) if values[s] else math.nan for s in rows["strategy"]],
    )
    return rows[rows["n"] > 0]


def uncompared(keyed: dict[str, list[RunResult]], metric: str) -> str:
    """Why a timing question has no strategy left to rank: every run that measured it was contaminated."""
    measured = sum(len(seed_values(runs, metric)) for runs in keyed.values())
    return (
        f"timing could not be compared: all {measured} runs that measured it had contaminated timing "
        "(another process, CPU steal or scattered steps; see Timing quality)"
    )


def mean_gains(keyed: dict[str, list[RunResult]], task: str | None = None) -> dict[str, float]:
    """Each strategy's mean gain on the learned task (`gain.TASK`: accuracy after minus before, on the same
    items) over its runs that measured it; a strategy that measured none is left out. `task`: the one learned
    task of them all (one suite); None: each strategy's own (records of several suites)."""
    gains = {
        strategy: [v for _, v in seed_values(runs, f"gain.{own}")] if (own := task or learned_task(runs)) else []
        for strategy, runs in keyed.items()
    }
    return {strategy: sum(values) / len(values) for strategy, values in gains.items() if values}


def unlearned(rows: pd.DataFrame, keyed: dict[str, list[RunResult]], metric: str, task: str | None) -> dict[str, float]:
    """For a forgetting metric, the strategies among `rows` that did not learn the task (mean gain <= 0, by
    means) with their mean gain: one that did not learn forgets nothing by changing nothing, and would win
    "least forgetting" for it (an RLHF run below the base model's accuracy did; so did five strategies tied
    at 0 whose loss stayed where it started). Other metrics: none."""
    gains = mean_gains(keyed, task) if metric.startswith("forgetting.") else {}
    return {s: gains[s] for s in sorted(rows["strategy"]) if s in gains and gains[s] <= 0}


def gains_text(gains: dict[str, float]) -> str:
    """ "adapter -3.0, bitfit -5.0 points" """
    return ", ".join(f"{strategy} {100 * gain:+.1f}" for strategy, gain in gains.items()) + " points"


def nothing_learned(keyed: dict[str, list[RunResult]], metric: str, task: str | None) -> str:
    """For the learned task's accuracy: where no strategy's mean gain is above 0, that, in words (the most
    accurate is then only the least harmed)."""
    if metric != f"accuracy.{task}":
        return ""
    gains = mean_gains(keyed, task)
    if not gains or max(gains.values()) > 0:
        return ""
    best = 100 * max(gains.values())
    return f"no strategy learned {task}: no mean gain over the base model is above 0 (the best {best:+.1f} points)"


def chained_note(keyed: dict[str, list[RunResult]], strategies: list[str]) -> str:
    """Where a strategy ranked (winner or runner-up) trained after another (`start_from`: its parent trains
    first, on the same budget, and is not counted in the run's): that, in words, as its budget is twice the
    matched one (audit user16: dpo-after-sft won "Most accurate" with no word of its parent's 60 steps)."""
    said = []
    for strategy in strategies:
        runs = keyed.get(strategy, [])
        parent = next((run.spec.get("parent") for run in runs if run.spec.get("parent")), None)
        if parent:
            steps = runs[0].spec.get("budget", {}).get("steps")
            budget = f"{steps} steps" if steps else "its budget"
            said.append(f"{strategy} trained after {parent.get('label')} ({budget} of it first, not in its own budget)")
    return "; ".join(said)


def floored_tasks(keyed: dict[str, list[RunResult]]) -> tuple[list[str], list[str]]:
    """(the retained tasks, those every run scored 0 on before training: nothing there could be forgotten)."""
    runs = [run for side in keyed.values() for run in side]
    retained = retained_tasks(runs)
    return retained, [task for task in retained if all(run.value(f"accuracy_before.{task}") == 0 for run in runs)]


def forgetting_floor(keyed: dict[str, list[RunResult]], metric: str) -> str | None:
    """Why mean forgetting cannot be measured, where every retained task was at 0 before training in every run
    (a floor: nothing to forget, so "least forgetting" would name a winner by chance); else None."""
    if metric != "forgetting.mean" or not keyed:
        return None
    retained, floors = floored_tasks(keyed)
    if not retained or floors != retained:
        return None
    return (
        f"forgetting cannot be measured: every retained task ({', '.join(retained)}) scored 0 before training "
        "in every run, so there was nothing to forget (floor)"
    )


def floor_note(keyed: dict[str, list[RunResult]], metric: str) -> str:
    """Where some retained tasks were at 0 before training: mean forgetting averages them in at no risk."""
    floors = floored_tasks(keyed)[1] if metric == "forgetting.mean" and keyed else []
    return f"{', '.join(floors)}: 0 before training, nothing to forget there (floor)" if floors else ""


def merged_lower(keyed: dict[str, list[RunResult]], metric: str, best: pd.Series) -> str:
    """Where a strategy's merged model (its update folded into the weights: `latency.merged.*`) beats the
    unmerged winner of a latency question, which a deployment that merges would see: that, in words."""
    if not metric.startswith("latency.") or metric.startswith("latency.merged."):
        return ""
    merged = "latency.merged." + metric.removeprefix("latency.")
    means, unit = {}, ""
    for strategy, runs in keyed.items():
        clean = [run for run in clean_timing_runs(runs) if merged in run.metrics]
        values = [value for _, value in seed_values(clean, merged)]
        if values:
            means[strategy], unit = sum(values) / len(values), clean[0].metrics[merged].unit
    if not means or min(means.values()) >= float(best["mean"]):
        return ""
    lowest = min(means, key=lambda strategy: (means[strategy], strategy))
    return (
        f"merged, {lowest} is lower by means (untested): {fmt(means[lowest])} {unit} ({merged}: its update folded"
        " into the weights)"
    )


def seed_values(runs: list[RunResult], metric: str) -> list[tuple[int, float]]:
    """(seed, value) of each of a strategy's runs that measured the metric."""
    return [(run.seed, value) for run in runs if (value := run.finite(metric)) is not None]
