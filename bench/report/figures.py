"""The report's figures: which charts a set of records gets, with their data, titles and bounds
(bench/report/charts.py draws them), and the History section's trend charts."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench.analysis import selection
from bench.records.results import RunResult, learned_task, retained_tasks
from bench.report import aggregate, charts, colors, scales

if TYPE_CHECKING:
    import pandas as pd

    from bench.analysis.history import History

LATENCY = re.compile(r"^(?P<family>latency\..+)\.p(?P<q>\d+)$")


def _question(text: str) -> tuple[str, ...]:
    """The metric patterns of the report's question that starts with `text` (aggregate.QUESTIONS)."""
    return next(q.patterns for q in aggregate.QUESTIONS if q.text.startswith(text))


def _points(summary: pd.DataFrame, x_metric: str | None, y_metric: str | None) -> list[tuple]:
    if x_metric is None or y_metric is None:
        return []
    points, table = [], aggregate.cells(summary)
    for strategy in sorted(set(summary["strategy"])):
        x, y = table.get((strategy, x_metric)), table.get((strategy, y_metric))
        if x and y and x["mean"] is not None and y["mean"] is not None:
            points.append((strategy, x["mean"], y["mean"], x["std"] or 0.0, y["std"] or 0.0))
    return points


def _left_out(summary: pd.DataFrame, patterns: Sequence[str]) -> str | None:
    """Why the metrics matching `patterns` (stats.matches) that runs recorded have no value to draw: every run's
    timing was left out as contaminated (the table says so cell by cell); None otherwise."""
    from bench.analysis.stats import matches

    rows = summary[summary["metric"].map(lambda metric: matches(metric, patterns))]
    contaminated = rows["reason"].str.contains(aggregate.CONTAMINATED, regex=False)
    if len(rows) and (rows["n"] == 0).all() and contaminated.all():
        return "every run's timing was left out as contaminated (see Timing quality)"
    return None


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


def _limits(summary: pd.DataFrame, metric: str | None) -> scales.Bounds:
    """The range a metric's values can take (scales.bounds), from its unit in the summary."""
    units = summary.loc[summary["metric"] == metric, "unit"]
    return scales.bounds(metric, str(units.iloc[0])) if metric and len(units) else scales.NO_BOUNDS


def _accuracy_off(records: list[RunResult]) -> bool:
    """Every run was told not to measure accuracy (measure.accuracy: false)."""
    return bool(records) and all((r.spec.get("measure") or {}).get("accuracy") is False for r in records)


def _accuracy_charts(records: list[RunResult], summary: pd.DataFrame, palette: dict[str, str]) -> list[Chart]:
    """Accuracy against memory and against throughput (Pareto front marked), and forgetting per retained task."""
    task = learned_task(records)
    accuracy = aggregate.resolve(("accuracy.{task}",), summary, task)
    found = []
    for chart_id, patterns, name, lower in (
        ("accuracy-memory", _question("Least memory"), "peak memory", True),
        ("accuracy-throughput", _question("Fastest to train"), "training throughput", False),
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
        empty = _left_out(summary, patterns) or "no strategy has both metrics"
        found.append(_chart(chart_id, title, svg, None if points else empty))

    retained = [t for t in retained_tasks(records) if f"forgetting.{t}" in set(summary["metric"])]
    values: dict[str, list[float | None]] = {}
    spreads: dict[str, list[float]] = {}
    table = aggregate.cells(summary)
    for strategy in sorted(set(summary["strategy"])):
        cells = [table.get((strategy, f"forgetting.{t}")) for t in retained]
        values[strategy] = [c["mean"] if c else None for c in cells]
        spreads[strategy] = [(c["std"] or 0.0) if c else 0.0 for c in cells]
    title = "Forgetting per retained task (accuracy after minus before; below zero = forgotten)"
    limits = _limits(summary, f"forgetting.{retained[0]}") if retained else scales.NO_BOUNDS
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
    found, table = [], aggregate.cells(summary)
    for family, quantiles in families.items():
        names = sorted(quantiles, key=lambda q: int(q[1:]))
        series, spreads = {}, {}
        for strategy in sorted(set(summary["strategy"])):
            cells = [table.get((strategy, quantiles[q])) for q in names]
            series[strategy] = [c["mean"] if c else None for c in cells]
            spreads[strategy] = [(c["std"] or 0.0) if c else 0.0 for c in cells]  # seed spread of each quantile
        unit = str(summary.loc[summary["metric"] == quantiles[names[0]], "unit"].iloc[0])
        chart_id = "latency-" + re.sub(r"[^a-z0-9]+", "-", family.removeprefix("latency.").lower()).strip("-")
        title = f"{family} distribution ({unit}, lower is better)"
        svg = charts.bars(chart_id, title, names, series, unit, palette, spreads, _limits(summary, quantiles[names[0]]))
        drawn = any(value is not None for row in series.values() for value in row)
        found.append(_chart(chart_id, title, svg, None if drawn else _left_out(summary, list(quantiles.values()))))
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
    said = "".join(f"; {name}'s loss is not finite from step {scales.fmt(step)}" for name, step in broken.items())
    title = f"Training loss (mean over seeds{said})"
    svg = charts.lines("loss", title, curves, "step", "loss", palette, integer_x=True)
    finite = any(math.isfinite(y) for points in curves.values() for _, y in points)
    reason = None if finite else ("the loss was never finite" if any(curves.values()) else "no loss curve recorded")
    found.append(_chart("loss", title, svg, reason))
    found += _latency_charts(summary, palette)
    return [c for c in found if "svg" in c], [c["note"] for c in found if "note" in c]


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
                    f"{one.strategy}, night {point.night or index + 1}: {scales.fmt(point.mean)} {one.unit} "
                    f"(seeds {scales.fmt(min(point.runs))}..{scales.fmt(max(point.runs))}), "
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
                "svg": charts.trend(
                    chart_id, title, lines, changes, members[0].unit, palette, scales.bounds(metric, members[0].unit)
                ),
                "changes": [(one.strategy, c) for one in members for c in one.change_points],
            }
        )
    return found
