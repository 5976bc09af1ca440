"""Records -> per-strategy summaries (pandas): mean and spread over seeds, and the headline answers.

Generic over metric names: units and directions come from the records; only the QUESTIONS table
below names metric patterns, and a question whose metrics no record has is simply not shown.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from bench.analysis import stats
from bench.analysis.selection import hardware_names, hardware_of, keyed_records, strategy_keys, suites_of
from bench.analysis.timing import clean_timing_runs, timing_counts, timing_unrecorded
from bench.analysis.variance import sentence
from bench.records.results import RunResult, learned_task, records_frame, retained_tasks
from bench.report.answer_rows import (
    chained_note,
    clean_timing,
    floor_note,
    forgetting_floor,
    gains_text,
    merged_lower,
    nothing_learned,
    over_runs,
    seed_values,
    uncompared,
    unlearned,
)
from bench.report.family import REPORT_ALPHA, Family, SeedTest, decide, table_pairs

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Question:
    """A question users ask, answered by the first pattern that matches a measured metric."""

    text: str
    patterns: tuple[str, ...]  # fnmatch patterns; {task} is the learned task's name
    # ask the first pattern every strategy that measured one of them measured, before the first any measured: a
    # metric new records have and reused older ones lack (align.reward_accuracy) would rank the new ones alone
    every_strategy: bool = False


QUESTIONS: tuple[Question, ...] = (
    Question("Most accurate", ("accuracy.{task}",)),
    Question("Least forgetting", ("forgetting.mean",)),
    Question(
        "Least memory (training peak)",
        ("memory.train.cuda_allocated_peak_mib", "memory.train.components_mib", "memory.train.host_peak_mib"),
    ),
    Question("Fastest to train", ("train.tokens_per_s", "train.samples_per_s", "train.steps_per_s")),
    Question("Lowest latency", ("latency.decode_ms_per_token.p50", "latency.ttft_ms.p50", "latency.*.p50")),
    Question("Smallest to store", ("storage.bytes",)),
    Question("Best aligned", ("align.reward_accuracy", "align.preference_accuracy", "align.*"), every_strategy=True),
)


@dataclass(frozen=True)
class Answer:
    question: str
    metric: str | None
    unit: str = ""
    higher_is_better: bool = True
    winner: str | None = None
    winner_mean: float | None = None
    runner_up: str | None = None
    runner_up_mean: float | None = None
    margin: float | None = None  # absolute, in the metric's unit
    margin_relative: float | None = None
    beyond_noise: bool | None = None  # None: fewer than two seeds, noise unknown
    note: str = ""
    by_item: bool = False  # tested paired by item, and decided with the report's other differences
    p_value: float | None = None  # tested over seeds (two-sided), and decided with the report's other differences
    suite: str | None = None  # set where the report holds several suites: each is asked on its own
    timing_unrecorded: int = 0  # ok runs of its set (suite) that recorded no timing quality: contamination unknown
    hardware: str | None = None  # asked over the runs of this hardware only (selection.hardware_of)

    @property
    def tested(self) -> str:
        """What its test is named by in its family: the metric, and the hardware where asked per hardware."""
        return str(self.metric) if self.hardware is None else f"{self.metric} on {self.hardware}"


CONTAMINATED = "left out: timing contaminated (another process, CPU steal or scattered steps; see Timing quality)"


def summarize(records: list[RunResult], clean_timing: bool = False) -> pd.DataFrame:
    """One row per (strategy, metric): mean, std over seeds, n measured, unit, direction, missing reasons.
    `clean_timing`: timing metrics over the runs whose timing was not contaminated, as the answers rank
    them (the others count as not measured, with CONTAMINATED as their reason): the tables and charts."""
    import pandas as pd

    ok = [record for record in records if record.status == "ok"]
    columns = ["strategy", "metric", "mean", "std", "n", "runs", "unit", "higher_is_better", "reason", "values"]
    frame = records_frame(ok) if ok else None
    if frame is None or frame.empty:  # no ok run, or ok runs that recorded no metric
        return pd.DataFrame(columns=columns)
    frame["strategy"] = [key for key, record in zip(strategy_keys(ok), ok, strict=True) for _ in record.metrics]
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    if clean_timing:
        counts = pd.Series([timing_counts(record) for record in ok for _ in record.metrics], frame.index)
        left_out = frame["metric"].map(lambda metric: stats.matches(metric, stats.TIMING)) & ~counts
        frame.loc[left_out, "value"], frame.loc[left_out, "reason"] = math.nan, CONTAMINATED
    grouped = frame.groupby(["strategy", "metric"], sort=True)
    summary = grouped.agg(
        mean=("value", "mean"),
        std=("value", "std"),
        n=("value", "count"),
        runs=("value", "size"),
        unit=("unit", "first"),
        higher_is_better=("higher_is_better", "first"),
        reason=("reason", lambda reasons: "; ".join(sorted({r for r in reasons if isinstance(r, str) and r}))),
        values=("value", lambda values: [float(v) for v in values if pd.notna(v)]),  # per run: the unit of tests
    ).reset_index()
    return summary[columns]


def resolve(patterns: tuple[str, ...], summary: pd.DataFrame, task: str | None, every: bool = False) -> str | None:
    """The first metric name (in pattern order) that some strategy measured; with `every`, the first that every
    strategy measuring one of the patterns measured, where there is one."""
    taken = summary[summary["n"] > 0] if len(summary) else summary
    measured = sorted(set(taken["metric"])) if len(summary) else []
    named = [p.replace("{task}", task) if task else p for p in patterns if task or "{task}" not in p]
    if every and measured:
        asked = taken[taken["metric"].map(lambda m: any(fnmatch.fnmatch(m, p) for p in named))]
        strategies = set(asked["strategy"])
        by_all = [m for m in measured if set(asked.loc[asked["metric"] == m, "strategy"]) == strategies]
        for pattern in named:
            if matches := fnmatch.filter(by_all, pattern):
                return matches[0]
    for pattern in named:
        if matches := fnmatch.filter(measured, pattern):
            return matches[0]
    return None


def by_suite(records: list[RunResult]) -> list[tuple[str | None, list[RunResult]]]:
    """The records as one set (suite None), or per suite where there are several: strategies of
    different models and tasks are not one choice, so each suite's questions are asked on its own."""
    found = suites_of(records)
    return list(found.items()) if len(found) > 1 else [(None, records)]


def asked(question: Question, summary: pd.DataFrame, task: str | None, records: list[RunResult]) -> list[Answer]:
    """The question's answer; for timing and measured memory (hardware-bound) where the runs that measured it
    ran on several hardware (selection.hardware_of), one answer per hardware over its runs ("Fastest to train
    (on M)"): a GPU's speed is no rival of a CPU's, nor one CPU model's of another's behind one machine id."""
    metric = resolve(question.patterns, summary, task, question.every_strategy)
    measured = [r for r in records if r.status == "ok" and metric is not None and r.value(metric) is not None]
    names = hardware_names(measured)
    if metric is None or not stats.hardware_bound(metric) or len(names) < 2:
        found = answer(question, summary, task, records)
        return [found] if found else []
    per_hardware = ((name, answer(question, summary, task, records, hardware)) for hardware, name in names.items())
    return [replace(item, question=f"{item.question} (on {name})") for name, item in sorted(per_hardware) if item]


def answer(
    question: Question,
    summary: pd.DataFrame,
    task: str | None,
    records: list[RunResult] | None = None,
    hardware: str | None = None,
) -> Answer | None:
    """Who wins this question, by how much, and whether the margin beats the seed-to-seed noise. A timing
    question ranks the runs whose timing was not contaminated only (as bench compare leaves them out).
    `hardware`: over the runs of that hardware only (selection.hardware_of), else all."""
    keyed = keyed_records([record for record in records or [] if record.status == "ok"])
    if hardware is not None:
        keyed = {key: kept for key, runs in keyed.items() if (kept := [r for r in runs if hardware_of(r) == hardware])}
        summary = summary[summary["strategy"].isin(keyed)]
    metric = resolve(question.patterns, summary, task, question.every_strategy)
    if metric is None:
        return None
    rows = summary[(summary["metric"] == metric) & (summary["n"] > 0)]
    higher, unit = bool(rows["higher_is_better"].iloc[0]), str(rows["unit"].iloc[0])
    left_out = ""
    if keyed and stats.matches(metric, stats.TIMING):
        rows, left_out = clean_timing(rows, keyed, metric)
    elif hardware is not None:  # the means of this hardware's runs, not of every run of the strategy
        rows = over_runs(rows, keyed, metric)
    unanswered = forgetting_floor(keyed, metric) or (uncompared(keyed, metric) if rows.empty else None)
    dropped = unlearned(rows, keyed, metric, task)
    rows = rows[~rows["strategy"].isin(dropped)]
    if rows.empty and dropped and not unanswered:
        unanswered = f"not ranked: no strategy learned {task} (mean gain {gains_text(dropped)}), and one that changed"
        unanswered += " nothing forgets nothing"
    if unanswered:
        return Answer(question.text, metric, unit, higher, note=unanswered, hardware=hardware)
    rows = rows.sort_values(["mean", "strategy"], ascending=[not higher, True], kind="mergesort")
    best = rows.iloc[0]
    base = Answer(question.text, metric, unit, higher, str(best["strategy"]), float(best["mean"]), hardware=hardware)
    if dropped:
        left_out = "; ".join(filter(None, [left_out, f"did not learn {task}, not ranked: {gains_text(dropped)} gain"]))
    harmed = nothing_learned(keyed, metric, task)
    if len(rows) < 2:
        only = f"only one strategy learned {task}" if dropped else "only one strategy measured this"
        return replace(base, note="; ".join(filter(None, [harmed, only + (f" ({left_out})" if left_out else "")])))
    second = rows.iloc[1]
    margin = abs(float(best["mean"]) - float(second["mean"]))
    # a share of the runner-up's value, except for differences (forgetting, gain: points), whose base can be ~0
    difference = metric.startswith(("forgetting.", "gain."))
    relative = margin / abs(float(second["mean"])) if float(second["mean"]) and not difference else None
    runs = [keyed.get(str(row["strategy"]), []) for row in (best, second)]
    beyond, p, note, by_item = _tested(best, second, runs, metric, bool(keyed))
    if _tied(float(best["mean"]), float(second["mean"])):  # within noise, unless a side's noise is unknown
        single = min(int(best["n"]), int(second["n"])) < 2
        beyond, p, note = (None, None, "tie; one seed on a side: noise unknown") if single else (False, None, "tie")
    note = f"{note} ({left_out})" if left_out else note
    chained = chained_note(keyed, [str(best["strategy"]), str(second["strategy"])])
    note = "; ".join(
        filter(None, [harmed, note, chained, floor_note(keyed, metric), merged_lower(keyed, metric, best)])
    )
    return replace(
        base,
        runner_up=str(second["strategy"]),
        runner_up_mean=float(second["mean"]),
        margin=margin,
        margin_relative=relative,
        beyond_noise=beyond,
        note=note,
        by_item=by_item,
        p_value=p,
    )


def _tested(
    best: pd.Series, second: pd.Series, runs: list[list[RunResult]], metric: str, keyed: bool
) -> tuple[bool | None, float | None, str, bool]:
    """(beyond noise, p, note, paired by item) of the winner against the runner-up: paired by item where the
    records hold per-item outcomes (bench/analysis/items.py), else an exact permutation over runs (seeds),
    two-sided as the winner is the data's choice (bench/analysis/stats.py); beyond noise or not is decided
    with the report's other differences at once, in answers()."""
    paired = _paired(*runs, metric)
    if paired is not None:
        note = (
            f"paired by item: {100 * paired.mean:+.1f} points, 95% CI {100 * paired.low:+.1f} to "
            f"{100 * paired.high:+.1f}; {sentence(paired)}"
        )
        return None, None, note, True
    if _exact(metric, list(best["values"]), list(second["values"])):
        sides = f"{int(best['n'])} vs {int(second['n'])}"
        return True, None, f"the same on every seed of either ({sides}): no seed noise, exact", False
    if keyed:
        timing = stats.matches(metric, stats.TIMING)
        first, other = (seed_values(clean_timing_runs(side) if timing else side, metric) for side in runs)
    else:  # no records given: the summary's values, unpaired
        first, other = list(enumerate(best["values"])), list(enumerate(second["values"], len(best["values"])))
    p, design = stats.seed_test(first, other, REPORT_ALPHA)
    return None, p, design if p is None else f"permutation test over seeds, {design}", False


def _tied(a: float, b: float) -> bool:
    """Equal but for floating-point rounding (the means of the same values summed in another order)."""
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _exact(metric: str, first: list[float], second: list[float]) -> bool:
    """A measurement (not a quality metric) that took one value on every seed of either side, two seeds
    or more a side (storage bytes, counted memory): there is no seed noise to test against."""
    return (
        not stats.is_quality(metric) and min(len(first), len(second)) >= 2 and len(set(first)) == len(set(second)) == 1
    )


def _paired(first: list[RunResult], second: list[RunResult], metric: str):
    """The item-paired difference of two strategies' ok runs on a quality metric, or None (no items)."""
    if not first or not second:
        return None
    from bench.analysis.items import metric_difference

    return metric_difference(first, second, metric)


def answers(records: list[RunResult], summary: pd.DataFrame | None = None) -> list[Answer]:
    return answers_and_family(records, summary)[0]


def answers_and_family(records: list[RunResult], summary: pd.DataFrame | None = None) -> tuple[list[Answer], Family]:
    """The answer table, and the quality family its quality answers were decided in (the difference
    table's too). Costs (time, memory, latency, size) are a family of their own: how fast a strategy ran
    must not make its accuracy deficit easier to call, as one Benjamini-Hochberg family over both would."""
    summary = summarize(records) if summary is None else summary
    task = learned_task(records)
    found = [item for question in QUESTIONS for item in asked(question, summary, task, records)]
    quality = quality_family(records, [item for item in found if stats.is_quality(str(item.metric))])
    cost = decide({}, [], _seed_tests([item for item in found if not stats.is_quality(str(item.metric))]))
    unrecorded = timing_unrecorded(records, None)  # of every ok run: the Timing quality section counts against them
    settled = [
        _settled(item, quality, "quality") if stats.is_quality(str(item.metric)) else _settled(item, cost, "cost")
        for item in found
    ]
    return [replace(item, timing_unrecorded=unrecorded) for item in settled], quality


def item_design(records: list[RunResult]) -> tuple[dict[str, list[RunResult]], str, list[str]] | None:
    """(each strategy's ok runs with per-item outcomes, the learned task, the retained tasks they were
    scored on), or None without items or a learned task."""
    keyed = keyed_records([r for r in records if r.status == "ok" and r.items])
    task = learned_task(records)
    if not keyed or task is None:
        return None
    return keyed, task, [t for t in retained_tasks(records) if any(t in (r.items or {}) for r in records)]


def quality_family(records: list[RunResult], found: list[Answer]) -> Family:
    """The report's quality verdicts, decided at once: the difference table's pairs (each strategy against
    the most accurate) and the quality answers' winner-against-runner-up pairs, tested by item or over seeds."""
    design = item_design(records)
    if design is None:
        return decide({}, [], _seed_tests(found))
    keyed, task, retained = design
    _, _, pairs = table_pairs(keyed, task, retained)
    asked = [(item.winner, item.runner_up, item.metric) for item in found if item.by_item]
    return decide(keyed, [*pairs, *asked], _seed_tests(found))  # type: ignore[list-item]


def _seed_tests(found: list[Answer]) -> list[SeedTest]:
    return [(str(a.winner), str(a.runner_up), a.tested, a.p_value) for a in found if a.p_value is not None]


def _settled(item: Answer, family: Family, kind: str) -> Answer:
    """A tested answer with the family's verdict, and q where the family holds more than one test."""
    tested = item.by_item or item.p_value is not None
    verdict = family.verdict(str(item.winner), str(item.runner_up), item.tested) if tested else None
    if verdict is None or _tied(float(item.winner_mean), float(item.runner_up_mean)):  # type: ignore[arg-type]
        return item
    if verdict.q is None:
        return replace(item, beyond_noise=None, note=f"{item.note}; {verdict.why}, as bench compare says")
    if family.tests > 1:
        together = f"q = {verdict.q:.3g} over the report's {family.tests} {kind} differences (Benjamini-Hochberg)"
        return replace(item, beyond_noise=verdict.beyond, note=f"{item.note}; p = {verdict.p:.3g} alone, {together}")
    return replace(item, beyond_noise=verdict.beyond, note=f"{item.note}; p = {verdict.p:.3g}")


def cell(summary: pd.DataFrame, strategy: str, metric: str) -> dict[str, object] | None:
    """One strategy's figures for one metric (summarize's row), or None."""
    return cells(summary).get((strategy, metric))


def cells(summary: pd.DataFrame) -> dict[tuple[str, str], dict[str, object]]:
    """Every (strategy, metric) cell of a summary in one pass, for a table or chart of every strategy: one
    scan of the summary per cell took 14 s of a 5,000-record report (250 strategies, 16,250 cells)."""
    found: dict[tuple[str, str], dict[str, object]] = {}
    for row in summary.to_dict("records"):
        found.setdefault((row["strategy"], row["metric"]), _cell(row))
    return found


def _cell(row: dict[str, Any]) -> dict[str, object]:
    return {
        "mean": None if int(row["n"]) == 0 else float(row["mean"]),
        "std": None if int(row["n"]) < 2 or math.isnan(float(row["std"])) else float(row["std"]),
        "n": int(row["n"]),
        "runs": int(row["runs"]),
        "reason": str(row["reason"]),
    }
