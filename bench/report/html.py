"""Render one self-contained HTML report (inline CSS and SVG, no network) from stored records.

Reads records only and never imports torch, so a report rebuilds anywhere.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.analysis import selection
from bench.records.results import RunResult, learned_task, retained_tasks
from bench.records.store import atomic_write_text, load_records
from bench.report import aggregate, charts, colors
from bench.report.front import fold
from bench.report.planning import memory_section, recommendation_section
from bench.report.quality import quality_section

if TYPE_CHECKING:
    import pandas as pd

    from bench.analysis.history import History
    from bench.analysis.verdicts import Comparison
    from bench.report.aggregate import Answer

TEMPLATES = Path(__file__).parent / "templates"
FAMILY_ORDER = ("accuracy", "gain", "forgetting", "align", "train", "memory", "latency", "params", "storage")
LATENCY = re.compile(r"^(?P<family>latency\..+)\.p(?P<q>\d+)$")


def _family_rank(metric: str) -> tuple[int, str]:
    family = metric.split(".", 1)[0]
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), metric)


def table_columns(summary: pd.DataFrame) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Metrics measured somewhere become columns; metrics never measured are listed with their reasons."""
    columns, unmeasured = [], []
    for metric in sorted(set(summary["metric"]), key=_family_rank):
        rows = summary[summary["metric"] == metric]
        entry = {
            "name": metric,
            "family": metric.split(".", 1)[0],
            "unit": str(rows["unit"].iloc[0]),
            "higher_is_better": bool(rows["higher_is_better"].iloc[0]),
        }
        if int(rows["n"].sum()) == 0:
            unmeasured.append({**entry, "reason": "; ".join(sorted({r for r in rows["reason"] if r}))})
            continue
        measured = rows[rows["n"] > 0]
        best = measured["mean"].max() if entry["higher_is_better"] else measured["mean"].min()
        entry["best"] = sorted(measured.loc[measured["mean"] == best, "strategy"])
        columns.append(entry)
    return columns, unmeasured


def _points(summary: pd.DataFrame, x_metric: str | None, y_metric: str | None) -> list[tuple]:
    if x_metric is None or y_metric is None:
        return []
    points = []
    for strategy in sorted(set(summary["strategy"])):
        x, y = aggregate.cell(summary, strategy, x_metric), aggregate.cell(summary, strategy, y_metric)
        if x and y and x["mean"] is not None and y["mean"] is not None:
            points.append((strategy, x["mean"], y["mean"], x["std"] or 0.0, y["std"] or 0.0))
    return points


def _direction(summary: pd.DataFrame, metric: str | None) -> bool:
    rows = summary[summary["metric"] == metric]
    return bool(rows["higher_is_better"].iloc[0]) if len(rows) else True


def _loss_curves(records: list[RunResult]) -> dict[str, list[tuple[float, float]]]:
    """Each strategy's training loss per step, the mean over its seeds."""
    curves: dict[str, list[tuple[float, float]]] = {}
    for key, runs in selection.keyed_records([r for r in records if r.status == "ok"]).items():
        steps: dict[int, list[float]] = {}
        for run in runs:
            for point in run.loss_curve:
                steps.setdefault(point.step, []).append(point.loss)
        curves[key] = [(step, sum(v) / len(v)) for step, v in sorted(steps.items())]
    return curves


Chart = dict[str, str]  # {id, title, svg}, or {note} for a chart left out for want of data


def _chart(chart_id: str, title: str, svg: str, reason: str | None = None) -> Chart:
    """A chart, or where `reason` says it has no data, the line that says so instead of an empty panel."""
    return {"note": f"No chart of {title}: {reason}."} if reason else {"id": chart_id, "title": title, "svg": svg}


def _limits(summary: pd.DataFrame, metric: str | None) -> charts.Bounds:
    """The range a metric's values can take (charts.bounds), from its unit in the summary."""
    units = summary.loc[summary["metric"] == metric, "unit"]
    return charts.bounds(metric, str(units.iloc[0])) if metric and len(units) else charts.NO_BOUNDS


def _accuracy_off(records: list[RunResult]) -> bool:
    """Every run was told not to measure accuracy (measure.accuracy: false)."""
    return bool(records) and all((r.spec.get("measure") or {}).get("accuracy") is False for r in records)


def _accuracy_charts(records: list[RunResult], summary: pd.DataFrame, palette: dict[str, str]) -> list[Chart]:
    """Accuracy against memory and against throughput (Pareto front marked), and forgetting per retained task."""
    task = learned_task(records)
    accuracy = aggregate.resolve(("accuracy.{task}",), summary, task)
    found = []
    for chart_id, patterns, name, lower in (
        ("accuracy-memory", aggregate.QUESTIONS[2].patterns, "peak memory", True),
        ("accuracy-throughput", aggregate.QUESTIONS[3].patterns, "training throughput", False),
    ):
        metric = aggregate.resolve(patterns, summary, task)
        title = f"{accuracy or 'accuracy'} vs {metric or name}" + " (Pareto front marked)" * lower
        points = _points(summary, metric, accuracy)
        svg = charts.scatter(
            chart_id,
            title,
            points,
            f"{metric} ({'lower' if lower else 'higher'} is better)",
            f"{accuracy} (higher is better)",
            palette,
            not _direction(summary, metric),
            _direction(summary, accuracy),
            _limits(summary, metric),
            _limits(summary, accuracy),
        )
        found.append(_chart(chart_id, title, svg, None if points else "no strategy has both metrics"))

    retained = [t for t in retained_tasks(records) if f"forgetting.{t}" in set(summary["metric"])]
    values: dict[str, list[float | None]] = {}
    spreads: dict[str, list[float]] = {}
    for strategy in sorted(set(summary["strategy"])):
        cells = [aggregate.cell(summary, strategy, f"forgetting.{t}") for t in retained]
        values[strategy] = [c["mean"] if c else None for c in cells]
        spreads[strategy] = [(c["std"] or 0.0) if c else 0.0 for c in cells]
    title = "Forgetting per retained task (accuracy after minus before; below zero = forgotten)"
    limits = _limits(summary, f"forgetting.{retained[0]}") if retained else charts.NO_BOUNDS
    svg = charts.bars("forgetting", title, retained, values, "accuracy change", palette, spreads, limits)
    measured = any(v is not None for row in values.values() for v in row)
    return [*found, _chart("forgetting", title, svg, None if measured else "no retained task measured")]


def _latency_charts(summary: pd.DataFrame, palette: dict[str, str]) -> list[Chart]:
    """One grouped bar chart per latency family (p50/p90/p99), whiskers ± one standard deviation over seeds."""
    families: dict[str, dict[str, str]] = {}
    for metric in sorted(set(summary["metric"])):
        match = LATENCY.match(metric)
        if match:
            families.setdefault(match["family"], {})[f"p{match['q']}"] = metric
    if not families:
        return [_chart("latency", "latency", "", "no latency metrics recorded")]
    found = []
    for family, quantiles in families.items():
        names = sorted(quantiles, key=lambda q: int(q[1:]))
        series, spreads = {}, {}
        for strategy in sorted(set(summary["strategy"])):
            cells = [aggregate.cell(summary, strategy, quantiles[q]) for q in names]
            series[strategy] = [c["mean"] if c else None for c in cells]
            spreads[strategy] = [(c["std"] or 0.0) if c else 0.0 for c in cells]  # seed spread of each quantile
        unit = str(summary.loc[summary["metric"] == quantiles[names[0]], "unit"].iloc[0])
        chart_id = "latency-" + re.sub(r"[^a-z0-9]+", "-", family.removeprefix("latency.").lower()).strip("-")
        title = f"{family} distribution ({unit}, lower is better)"
        svg = charts.bars(chart_id, title, names, series, unit, palette, spreads, _limits(summary, quantiles[names[0]]))
        found.append(_chart(chart_id, title, svg))
    return found


def build_charts(
    records: list[RunResult], summary: pd.DataFrame, palette: dict[str, str]
) -> tuple[list[Chart], list[str]]:
    """The report's charts with data, as {id, title, svg}, and one line per chart left out (why): no
    panel says only "no data"."""
    found = []
    if _accuracy_off(records):
        found.append({"note": "Accuracy was not measured (measure.accuracy: false): no accuracy or forgetting charts."})
    else:
        found += _accuracy_charts(records, summary, palette)
    curves = _loss_curves(records)
    broken = {name: step for name, points in curves.items() if (step := charts.non_finite_from(points)) is not None}
    said = "".join(f"; {name}'s loss is not finite from step {charts.fmt(step)}" for name, step in broken.items())
    title = f"Training loss (mean over seeds{said})"
    svg = charts.lines("loss", title, curves, "step", "loss", palette, integer_x=True)
    finite = any(math.isfinite(y) for points in curves.values() for _, y in points)
    reason = None if finite else ("the loss was never finite" if any(curves.values()) else "no loss curve recorded")
    found.append(_chart("loss", title, svg, reason))
    found += _latency_charts(summary, palette)
    return [c for c in found if "svg" in c], [c["note"] for c in found if "note" in c]


def model_name(model: dict[str, Any] | str | None) -> str | None:
    """The model as the header names it: its preset, hub id, path, package or GGUF file, or for a
    config folder (the shape with random weights) the folder and that it is a config."""
    if not isinstance(model, dict):
        return model
    source = next((model[k] for k in ("preset", "hub", "path", "packaged", "gguf") if model.get(k)), None)
    return source or (f"{model['config']} (config, random weights)" if model.get("config") else None)


def _cell_text(value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {"missing": True, "text": "—", "reason": "not recorded by this strategy"}
    if value["mean"] is None:
        return {"missing": True, "text": "missing", "reason": value["reason"] or "no value"}
    text = charts.fmt(value["mean"])
    if value["std"] is not None and math.isfinite(value["mean"]):  # no spread around inf or NaN
        text += f" ± {charts.fmt(value['std'])}"
    partial = f"{value['n']} of {value['runs']} runs measured: {value['reason']}" if value["n"] < value["runs"] else ""
    return {"missing": False, "text": text, "n": value["n"], "reason": partial}


# Metrics that get a trend chart in the history section (plus every metric with a change point)
TREND_METRICS = (
    "train.tokens_per_s",
    "accuracy.*",
    "forgetting.mean",
    "latency.ttft_ms.p50",
    "memory.train.host_peak_mib",
    "memory.train.cuda_allocated_peak_mib",
)


def history_charts(history: History | None) -> list[dict[str, str]]:
    """One trend chart per (metric, hardware fingerprint) with more than one night, a line per strategy."""
    if history is None or not any(len(s.points) > 1 for s in history.series):
        return []
    from bench.analysis.stats import IDENTITY, matches

    groups: dict[tuple[str, str], list] = {}
    for one in history.series:
        wanted = matches(one.metric, TREND_METRICS) and not matches(one.metric, IDENTITY)
        if len(one.points) > 1 and (wanted or one.change_points):
            groups.setdefault((one.metric, one.fingerprint), []).append(one)
    fingerprints = {one.fingerprint for one in history.series}
    palette = colors.colors(sorted({one.strategy for one in history.series}))
    found = []
    for (metric, fingerprint), members in sorted(groups.items()):
        lines, changes = {}, {}
        for one in members:
            lines[one.strategy] = [
                (
                    point.night or index + 1,  # a series with gaps (a strategy absent some nights) skips nights
                    point.mean,
                    (max(point.runs) - min(point.runs)) / 2,
                    f"{one.strategy}, night {point.night or index + 1}: {charts.fmt(point.mean)} {one.unit} "
                    f"(seeds {charts.fmt(min(point.runs))}..{charts.fmt(max(point.runs))}), "
                    f"commit {(point.commit or 'unknown')[:10]}, {point.started_at[:16]}",
                )
                for index, point in enumerate(one.points)
            ]
            changes[one.strategy] = [c.index for c in one.change_points]
        title = metric + (f" on {fingerprint}" if len(fingerprints) > 1 else "")
        chart_id = "trend-" + re.sub(r"[^a-z0-9]+", "-", f"{metric}-{fingerprint}".lower()).strip("-")
        found.append(
            {
                "id": chart_id,
                "title": title,
                "svg": charts.trend(chart_id, title, lines, changes, members[0].unit, palette),
                "changes": [(one.strategy, c) for one in members for c in one.change_points],
            }
        )
    return found


def contradictions(records: list[RunResult]) -> list[str]:
    """Records whose headline quality figure disagrees with their own item outcomes (hand-edited or corrupt:
    the table would show the headline beside intervals from the items), one line each."""
    from bench.analysis.items import headline_gap
    from bench.analysis.stats import is_quality

    found = []
    for record in records:
        for metric in sorted(name for name in record.metrics if is_quality(name)):
            if gap := headline_gap(record, metric):
                headline, from_items, count = gap
                found.append(
                    f"{record.label} seed {record.seed}: {metric} {headline:.4g}, its {count} items {from_items:.4g}"
                )
    return found


def context(
    records: list[RunResult],
    suite_text: str | None = None,
    comparison: Comparison | None = None,
    title: str | None = None,
    history: History | None = None,
    notes: str | None = None,
    unreadable: list[str] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, computed from the records; `notes`: the author's findings
    (plain text, paragraphs separated by blank lines), shown first; `unreadable`: files that may have been
    records and could not be read (their runs are missing), said beside the failed runs. The runs compared are chosen by
    selection.comparable (the newest spec, one run per seed), which says what it left out."""
    chosen = selection.comparable(records)
    records = chosen.records
    summary = aggregate.summarize(records)
    strategies = sorted(set(summary["strategy"])) if len(summary) else []
    palette = colors.colors(strategies)
    columns, unmeasured = table_columns(summary) if len(summary) else ([], [])
    answers, qualities = _answers_and_quality(records, summary)
    keyed = selection.keyed_records([r for r in records if r.status == "ok"])
    rows = [
        {
            "strategy": strategy,
            "color": palette[strategy],
            "seeds": sorted({r.seed for r in keyed.get(strategy, [])}),
            "contaminated": sum(r.timing_contaminated for r in keyed.get(strategy, [])),
            "cells": [
                _cell_text(aggregate.cell(summary, strategy, c["name"])) | {"best": strategy in c["best"]}
                for c in columns
            ],
        }
        for strategy in strategies
    ]
    suites = sorted({r.suite for r in records})
    environments = {r.environment.machine: r.environment for r in records}
    budgets = {
        repr(r.budget.get("resolved") or r.spec.get("budget")): r.budget.get("resolved") or r.spec.get("budget")
        for r in records
    }
    figures, chart_notes = build_charts(records, summary, palette) if len(summary) else ([], [])
    commits = sorted({(r.environment.git_commit or "unknown", r.environment.git_dirty) for r in records}, key=str)
    return {
        "title": title or f"Fine-tuning comparison: {', '.join(suites) or 'no records'}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suites": suites,
        "task": learned_task(records) if len(suites) == 1 else None,  # several suites: each names its own
        "retained": retained_tasks(records),
        "model": model_name(records[0].spec.get("model")) if len(suites) == 1 else None,
        "budgets": list(budgets.values()),
        "environments": list(environments.values()),
        "commits": commits,
        "answers": answers,
        "selection": chosen.notes,
        "columns": columns,
        "families": [(f, sum(c["family"] == f for c in columns)) for f in dict.fromkeys(c["family"] for c in columns)],
        "unmeasured": unmeasured,
        "rows": rows,
        "problems": [r for r in records if r.status != "ok"],
        "unreadable": unreadable or [],
        "inconsistent": contradictions(records),
        "contaminated": [r for r in records if r.status == "ok" and r.timing_contaminated],
        "unfinished": unfinished_answers(records),
        "counts": {s: sum(r.status == s for r in records) for s in ("ok", "failed", "skipped")},
        "charts": figures,
        "chart_notes": chart_notes,  # charts left out for want of data, and why
        "suite_text": suite_text,
        "comparison": comparison,
        "history": history_charts(history),
        "memory": memory_section(records),
        "qualities": qualities,
        "notes": [fold(block) for block in (notes or "").split("\n\n") if block.strip()],  # list items keep their lines
        "recommendations": _recommendations(records),
        "fmt": charts.fmt,
    }


def unfinished_answers(records: list[RunResult]) -> list[str]:
    """Per generative task whose answers ran to max_new_tokens unfinished in some run: how many, at most,
    of how many (they are scored as they stand; a larger generation.max_new_tokens would finish them)."""
    found: dict[str, tuple[int, int, int, int]] = {}  # task -> (limit, items, most after, most before)
    for record in records:
        for task, info in ((record.model or {}).get("tasks") or {}).items():
            generation = info.get("generation") or {}
            reached = generation.get("reached_limit") or {}
            after, before = reached.get("after") or 0, reached.get("before") or 0
            limit, items, most, base = found.get(task, (generation.get("max_new_tokens"), info.get("eval_items"), 0, 0))
            found[task] = (limit, items, max(most, after), max(base, before))
    return [
        f"{task}: up to {most} of {items} answers of a run reached max_new_tokens ({limit}) unfinished, and "
        f"{base} of the base model's; they are scored as they stand (raise the task's generation.max_new_tokens)"
        for task, (limit, items, most, base) in sorted(found.items())
        if most or base
    ]


def _answers_and_quality(records: list[RunResult], summary: Any) -> tuple[list[Answer], list[dict[str, Any]]]:
    """The answer table and the item-level quality sections, per suite where there are several (each
    suite's verdicts one family, as in a report of that suite alone)."""
    answers, qualities = [], []
    for suite, subset in aggregate.by_suite(records):
        own = summary if suite is None else aggregate.summarize(subset)
        found, family = aggregate.answers_and_family(subset, own) if len(own) else ([], None)
        answers += [replace(item, suite=suite) for item in found]
        section = quality_section(subset, family)
        qualities += [{**section, "suite": suite}] if section else []
    return answers, qualities


def _recommendations(records: list[RunResult]) -> list[dict[str, Any]]:
    """`bench recommend` per device size; per suite where there are several (aggregate.by_suite), each row
    naming its suite."""
    rows = []
    for suite, subset in aggregate.by_suite(records):
        for row in recommendation_section(subset):
            named = {"suite": suite, "notes": [f"{suite}: {note}" for note in row["notes"]]}
            rows.append(row if suite is None else {**row, **named})
    return rows


def render(
    records: Iterable[RunResult],
    suite_text: str | None = None,
    comparison: Comparison | None = None,
    title: str | None = None,
    history: History | None = None,
    notes: str | None = None,
    unreadable: list[str] | None = None,
) -> str:
    """The report as one HTML string."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))
    return env.get_template("report.html.j2").render(
        **context(list(records), suite_text, comparison, title, history, notes, unreadable)
    )


def write_report(
    records: Iterable[RunResult],
    out: Path | str,
    suite_text: str | None = None,
    comparison: Comparison | None = None,
    title: str | None = None,
    history: History | None = None,
    notes: str | None = None,
    unreadable: list[str] | None = None,
) -> Path:
    """Render and write atomically; returns the path."""
    out = Path(out)
    atomic_write_text(out, render(records, suite_text, comparison, title, history, notes, unreadable))
    out.chmod(0o644)  # a report is for sharing (the atomic temp file starts private)
    return out


def report_from_dir(results: Path | str, out: Path | str, suite_text: str | None = None) -> Path:
    """Render every record below a results folder (with history when it holds several nights)."""
    from bench.analysis.history import build

    return write_report(list(load_records(results)), out, suite_text, history=build(results))
