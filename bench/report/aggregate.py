"""Records -> per-strategy summaries (pandas): mean and spread over seeds, and the headline answers.

Generic over metric names: units and directions come from the records; only the QUESTIONS table
below names metric patterns, and a question whose metrics no record has is simply not shown.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from bench.analysis import stats
from bench.analysis.items import sentence
from bench.records.results import RunResult, learned_task, records_frame, retained_tasks
from bench.report.family import REPORT_ALPHA, Family, decide, table_pairs

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Question:
    """A question users ask, answered by the first pattern that matches a measured metric."""

    text: str
    patterns: tuple[str, ...]  # fnmatch patterns; {task} is the learned task's name


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
    Question("Best aligned", ("align.preference_accuracy", "align.*")),
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
    by_item: bool = False  # tested paired by item: decided with the report's other quality differences


def group_key(record: RunResult, machines: int) -> str:
    """Strategies are told apart by label; across machines the machine joins the label."""
    return record.label if machines <= 1 else f"{record.label} @ {record.environment.machine}"


def keyed_records(records: list[RunResult]) -> dict[str, list[RunResult]]:
    machines = len({record.environment.machine for record in records})
    grouped: dict[str, list[RunResult]] = {}
    for record in sorted(records, key=lambda r: (r.label, r.seed)):
        grouped.setdefault(group_key(record, machines), []).append(record)
    return grouped


def summarize(records: list[RunResult]) -> pd.DataFrame:
    """One row per (strategy, metric): mean, std over seeds, n measured, unit, direction, missing reasons."""
    import pandas as pd

    ok = [record for record in records if record.status == "ok"]
    columns = ["strategy", "metric", "mean", "std", "n", "runs", "unit", "higher_is_better", "reason", "values"]
    frame = records_frame(ok) if ok else None
    if frame is None or frame.empty:  # no ok run, or ok runs that recorded no metric
        return pd.DataFrame(columns=columns)
    machines = frame["machine"].nunique()
    frame["strategy"] = frame["label"] if machines <= 1 else frame["label"] + " @ " + frame["machine"]
    frame["value"] = pd.to_numeric(frame["value"], errors="coerce")
    grouped = frame.groupby(["strategy", "metric"], sort=True)
    summary = grouped.agg(
        mean=("value", "mean"),
        std=("value", "std"),
        n=("value", "count"),
        runs=("value", "size"),
        unit=("unit", "first"),
        higher_is_better=("higher_is_better", "first"),
        reason=("reason", lambda reasons: "; ".join(sorted({str(r) for r in reasons if r}))),
        values=("value", lambda values: [float(v) for v in values if pd.notna(v)]),  # per run: the unit of tests
    ).reset_index()
    return summary[columns]


def resolve(patterns: tuple[str, ...], summary: pd.DataFrame, task: str | None) -> str | None:
    """The first metric name (in pattern order) that some strategy measured."""
    measured = sorted(set(summary.loc[summary["n"] > 0, "metric"])) if len(summary) else []
    for pattern in patterns:
        if "{task}" in pattern:
            if task is None:
                continue
            pattern = pattern.replace("{task}", task)
        matches = fnmatch.filter(measured, pattern)
        if matches:
            return matches[0]
    return None


def answer(
    question: Question, summary: pd.DataFrame, task: str | None, records: list[RunResult] | None = None
) -> Answer | None:
    """Who wins this question, by how much, and whether the margin beats the seed-to-seed noise."""
    metric = resolve(question.patterns, summary, task)
    if metric is None:
        return None
    rows = summary[(summary["metric"] == metric) & (summary["n"] > 0)]
    higher = bool(rows["higher_is_better"].iloc[0])
    rows = rows.sort_values("mean", ascending=not higher)
    best = rows.iloc[0]
    base = Answer(question.text, metric, str(best["unit"]), higher, str(best["strategy"]), float(best["mean"]))
    if len(rows) < 2:
        return Answer(**{**base.__dict__, "note": "only one strategy measured this"})
    second = rows.iloc[1]
    margin = abs(float(best["mean"]) - float(second["mean"]))
    relative = margin / abs(float(second["mean"])) if float(second["mean"]) else None
    # the same tests as bench compare: paired by item where the records hold per-item outcomes
    # (bench/analysis/items.py), else an exact permutation over runs (seeds), see bench/analysis/stats.py
    paired = _paired(records, str(best["strategy"]), str(second["strategy"]), metric)
    if paired is not None:  # beyond noise or not: decided with the report's quality family, in answers()
        beyond = None
        note = (
            f"paired by item: {100 * paired.mean:+.1f} points, 95% CI {100 * paired.low:+.1f} to "
            f"{100 * paired.high:+.1f}; {sentence(paired)}"
        )
    else:
        beyond, p = stats.differs(list(best["values"]), list(second["values"]), REPORT_ALPHA)
        if beyond is None:
            note = f"{int(best['n'])} vs {int(second['n'])} seeds: too few to tell at p<={REPORT_ALPHA}"
        else:
            note = f"permutation test over seeds, p = {p:.3g}"
    if margin == 0:
        beyond, note = False, "tie"
    return Answer(
        question.text,
        metric,
        str(best["unit"]),
        higher,
        str(best["strategy"]),
        float(best["mean"]),
        str(second["strategy"]),
        float(second["mean"]),
        margin,
        relative,
        beyond,
        note,
        by_item=paired is not None,
    )


def _paired(records: list[RunResult] | None, first: str, second: str, metric: str):
    """The item-paired difference of two strategies on a quality metric, or None (no items)."""
    if not records:
        return None
    from bench.analysis.items import metric_difference

    keyed = keyed_records([r for r in records if r.status == "ok"])
    if first not in keyed or second not in keyed:
        return None
    return metric_difference(keyed[first], keyed[second], metric)


def answers(records: list[RunResult], summary: pd.DataFrame | None = None) -> list[Answer]:
    return answers_and_family(records, summary)[0]


def answers_and_family(records: list[RunResult], summary: pd.DataFrame | None = None) -> tuple[list[Answer], Family]:
    """The answer table, and the family its item-tested answers were decided in (the difference table's too)."""
    summary = summarize(records) if summary is None else summary
    task = learned_task(records)
    found = [item for item in (answer(question, summary, task, records) for question in QUESTIONS) if item]
    family = quality_family(records, found)
    return [_settled(item, family) for item in found], family


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
    the most accurate) and the answers' winner-against-runner-up pairs tested by item."""
    design = item_design(records)
    if design is None:
        return decide({}, [])
    keyed, task, retained = design
    _, _, pairs = table_pairs(keyed, task, retained)
    asked = [(item.winner, item.runner_up, item.metric) for item in found if item.by_item]
    return decide(keyed, [*pairs, *asked])  # type: ignore[list-item]


def _settled(item: Answer, family: Family) -> Answer:
    """An item-tested answer with the family's verdict, and q where the family holds more than one test."""
    verdict = family.verdict(str(item.winner), str(item.runner_up), str(item.metric)) if item.by_item else None
    if verdict is None or item.margin == 0:
        return item
    if verdict.q is None:
        return replace(item, beyond_noise=None, note=f"{item.note}; {verdict.why}, as bench compare says")
    if family.tests > 1:
        together = f"q = {verdict.q:.3g} over the report's {family.tests} quality differences (Benjamini-Hochberg)"
        return replace(item, beyond_noise=verdict.beyond, note=f"{item.note}; p = {verdict.p:.3g} alone, {together}")
    return replace(item, beyond_noise=verdict.beyond, note=f"{item.note}; p = {verdict.p:.3g}")


def cell(summary: pd.DataFrame, strategy: str, metric: str) -> dict[str, object] | None:
    rows = summary[(summary["strategy"] == strategy) & (summary["metric"] == metric)]
    if rows.empty:
        return None
    row = rows.iloc[0]
    return {
        "mean": None if int(row["n"]) == 0 else float(row["mean"]),
        "std": None if int(row["n"]) < 2 or math.isnan(float(row["std"])) else float(row["std"]),
        "n": int(row["n"]),
        "runs": int(row["runs"]),
        "reason": str(row["reason"]),
    }
