"""Hand-written inline SVG charts: scatter (with Pareto front), lines, grouped bars, stacked bars and trends
over nights (with change points). No network, no torch.

Every chart is an `<svg id="chart-...">` string; a chart with no data is a figure that says why. Numbers,
ticks and the range each metric can take are bench/report/scales.py's.
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

from bench.report.scales import NO_BOUNDS, Bounds, axis_ticks, clip, fmt, nice_ticks, span

WIDTH, HEIGHT = 560, 340
LEFT, RIGHT, TOP, BOTTOM = 70, 150, 20, 50  # plot margins; the legend lives in the right margin


@dataclass
class Axes:
    """Maps data coordinates to pixels for one plot area."""

    x_ticks: list[float]
    y_ticks: list[float]
    x_label: str
    y_label: str
    x_categories: list[str] = field(default_factory=list)

    def x(self, value: float) -> float:
        low, high = self.x_ticks[0], self.x_ticks[-1]
        return LEFT + (value - low) / ((high - low) or 1) * (WIDTH - LEFT - RIGHT)

    def y(self, value: float) -> float:
        low, high = self.y_ticks[0], self.y_ticks[-1]
        return HEIGHT - BOTTOM - (value - low) / ((high - low) or 1) * (HEIGHT - TOP - BOTTOM)

    def draw(self) -> list[str]:
        parts = [
            f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{HEIGHT - TOP - BOTTOM}" '
            'fill="#fff" stroke="#999"/>'
        ]
        for tick in self.y_ticks:
            y = self.y(tick)
            parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
            parts.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{fmt(tick)}</text>')
        if self.x_categories:
            band = (WIDTH - LEFT - RIGHT) / len(self.x_categories)
            crowded = band < 7 * max(len(name) for name in self.x_categories)  # ~7 px per character
            for index, name in enumerate(self.x_categories):
                x, y = LEFT + band * (index + 0.5), HEIGHT - BOTTOM + 16
                turn = f' transform="rotate(-30 {x:.1f} {y})"' if crowded else ""
                anchor = "end" if crowded else "middle"
                parts.append(
                    f'<text x="{x:.1f}" y="{y}" text-anchor="{anchor}"{turn} class="tick">{escape(name)}</text>'
                )
        else:
            for tick in self.x_ticks:
                x = self.x(tick)
                parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>')
                parts.append(
                    f'<text x="{x:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" class="tick">{fmt(tick)}</text>'
                )
        plot_middle = LEFT + (WIDTH - LEFT - RIGHT) / 2
        parts.append(
            f'<text x="{plot_middle:.1f}" y="{HEIGHT - 10}" text-anchor="middle" class="axis">'
            f"{escape(self.x_label)}</text>"
        )
        y_middle = TOP + (HEIGHT - TOP - BOTTOM) / 2
        parts.append(
            f'<text transform="translate(16,{y_middle:.1f}) rotate(-90)" text-anchor="middle" class="axis">'
            f"{escape(self.y_label)}</text>"
        )
        return parts


LEGEND_ROW = 18  # px between legend lines
NOTE_CHARACTERS = 22  # a legend note's line fits the right margin (~6 px a character at 11 px)


def _svg(chart_id: str, title: str, body: list[str], height: float = HEIGHT) -> str:
    return (
        f'<svg id="chart-{chart_id}" class="chart" role="img" viewBox="0 0 {WIDTH} {height:g}" '
        f'width="{WIDTH}" height="{height:g}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def _with_legend(
    chart_id: str, title: str, body: list[str], entries: Sequence[tuple[str, str]], extra: Sequence[str] = ()
) -> str:
    """The chart with its legend in the right margin, one line per entry and the notes wrapped to fit; a
    legend longer than the plot makes the chart taller (a sweep of 50 strategies showed 17 of them)."""
    notes = [line for note in extra for line in textwrap.wrap(note, NOTE_CHARACTERS)]
    parts = []
    for index, (name, color) in enumerate(entries):
        y = TOP + 8 + index * LEGEND_ROW
        parts.append(f'<rect x="{WIDTH - RIGHT + 12}" y="{y - 8}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 27}" y="{y + 1}" class="legend">{escape(name)}</text>')
    for index, line in enumerate(notes):
        y = TOP + 8 + (len(entries) + index) * LEGEND_ROW
        parts.append(f'<text x="{WIDTH - RIGHT + 12}" y="{y + 1}" class="legend note">{escape(line)}</text>')
    bottom = TOP + 8 + (len(entries) + len(notes)) * LEGEND_ROW
    return _svg(chart_id, title, body + parts, max(HEIGHT, bottom))


def empty(chart_id: str, title: str, reason: str) -> str:
    """A placeholder chart that says why there is nothing to draw."""
    body = [
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#fafafa" stroke="#ccc"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="axis">No data: {escape(reason)}</text>',
    ]
    return _svg(chart_id, title, body)


def pareto_front(points: Sequence[tuple[str, float, float]], x_lower_better: bool, y_higher_better: bool) -> list[str]:
    """Names of the points no other point beats on both axes."""

    def beats(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
        ax, ay = (a[1] if x_lower_better else -a[1]), (-a[2] if y_higher_better else a[2])
        bx, by = (b[1] if x_lower_better else -b[1]), (-b[2] if y_higher_better else b[2])
        return ax <= bx and ay <= by and (ax < bx or ay < by)

    return [p[0] for p in points if not any(beats(q, p) for q in points if q is not p)]


def scatter(
    chart_id: str,
    title: str,
    points: Sequence[tuple[str, float, float, float, float]],
    x_label: str,
    y_label: str,
    palette: dict[str, str],
    x_lower_better: bool,
    y_higher_better: bool,
    x_bounds: Bounds = NO_BOUNDS,
    y_bounds: Bounds = NO_BOUNDS,
) -> str:
    """Points (name, x, y, x_spread, y_spread) with spread whiskers and the Pareto front as a dashed line;
    the axes stay within each quantity's bounds, and whiskers are clipped to them."""
    if not points:
        return empty(chart_id, title, "no strategy has both metrics")
    xs = [p[1] - p[3] for p in points] + [p[1] + p[3] for p in points]
    ys = [p[2] - p[4] for p in points] + [p[2] + p[4] for p in points]
    axes = Axes(axis_ticks(xs, x_bounds), axis_ticks(ys, y_bounds), x_label, y_label)
    body = axes.draw()
    front = pareto_front([(p[0], p[1], p[2]) for p in points], x_lower_better, y_higher_better)
    ordered = sorted((p for p in points if p[0] in front), key=lambda p: p[1])
    if len(ordered) > 1:
        path = " ".join(f"{axes.x(p[1]):.1f},{axes.y(p[2]):.1f}" for p in ordered)
        body.append(f'<polyline class="pareto" points="{path}" fill="none" stroke="#555" stroke-dasharray="5,4"/>')
    for name, x, y, x_spread, y_spread in points:
        color, cx, cy = palette.get(name, "#333"), axes.x(x), axes.y(y)
        if x_spread:
            body.append(
                f'<line x1="{axes.x(clip(x - x_spread, axes.x_ticks)):.1f}" '
                f'x2="{axes.x(clip(x + x_spread, axes.x_ticks)):.1f}" y1="{cy:.1f}" '
                f'y2="{cy:.1f}" stroke="{color}"/>'
            )
        if y_spread:
            body.append(
                f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{axes.y(clip(y - y_spread, axes.y_ticks)):.1f}" '
                f'y2="{axes.y(clip(y + y_spread, axes.y_ticks)):.1f}" stroke="{color}"/>'
            )
        ring = ' stroke="#000" stroke-width="2"' if name in front else ""
        body.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="6" fill="{color}"{ring}>'
            f"<title>{escape(name)}: {fmt(x)}, {fmt(y)}</title></circle>"
        )
    legend = [(name, palette.get(name, "#333")) for name, *_ in points]
    return _with_legend(chart_id, title, body, legend, ["ringed, dashed:", "Pareto front"])


def non_finite_from(points: Sequence[tuple[float, float]]) -> float | None:
    """The x of the first point whose y is not finite (a loss that became NaN or inf), else None."""
    return next((x for x, y in points if not math.isfinite(y)), None)


def _finite_runs(points: Sequence[tuple[float, float]]) -> list[list[tuple[float, float]]]:
    """The runs of consecutive finite points: a line breaks where y is NaN or inf."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, y in points:
        if math.isfinite(y):
            runs[-1].append((x, y))
        elif runs[-1]:
            runs.append([])
    return [run for run in runs if run]


def lines(
    chart_id: str,
    title: str,
    series: dict[str, list[tuple[float, float]]],
    x_label: str,
    y_label: str,
    palette: dict[str, str],
    integer_x: bool = False,
) -> str:
    """One polyline per named series of (x, y) points, all on one axis. A series breaks where y is not
    finite, a dashed line marks the first such x, and the legend says from which x."""
    series = {name: points for name, points in series.items() if points}
    ys = [y for points in series.values() for _, y in points if math.isfinite(y)]
    if not ys:
        return empty(chart_id, title, "no finite value recorded" if series else "no series recorded")
    xs = [x for points in series.values() for x, _ in points]
    low, high = span(ys, 0.02)
    low = max(low, 0.0) if min(ys) >= 0 else low  # a loss is never below zero: no negative axis for it
    axes = Axes(nice_ticks(min(xs), max(xs), integer=integer_x), nice_ticks(low, high), x_label, y_label)
    body, notes = axes.draw(), []
    for name, points in series.items():
        color = palette.get(name, "#333")
        for run in _finite_runs(points):
            if len(run) == 1:  # a lone finite point between non-finite ones: a dot
                body.append(
                    f'<circle cx="{axes.x(run[0][0]):.1f}" cy="{axes.y(run[0][1]):.1f}" r="2" fill="{color}">'
                    f"<title>{escape(name)}</title></circle>"
                )
                continue
            path = " ".join(f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y in run)
            body.append(
                f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.6">'
                f"<title>{escape(name)}</title></polyline>"
            )
        broke = non_finite_from(points)
        if broke is not None:
            x, said = axes.x(broke), f"{name}: {y_label} not finite from {x_label} {fmt(broke)}"
            body.append(
                f'<line class="non-finite" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                f'stroke="{color}" stroke-dasharray="2,3"><title>{escape(said)}</title></line>'
            )
            notes += [f"{name}: {y_label} not finite", f"from {x_label} {fmt(broke)}"]
    return _with_legend(chart_id, title, body, [(name, palette.get(name, "#333")) for name in series], notes)


def bars(
    chart_id: str,
    title: str,
    groups: list[str],
    values: dict[str, list[float | None]],
    y_label: str,
    palette: dict[str, str],
    spreads: dict[str, list[float]] | None = None,
    limits: Bounds = NO_BOUNDS,
) -> str:
    """Grouped bars: one group per category, one bar per series (None = not measured, drawn as a gap), with
    whiskers of ± `spreads`, clipped to the quantity's `limits` (no whisker below a zero latency)."""
    numbers = [v for row in values.values() for v in row if v is not None]
    if not groups or not numbers:
        return empty(chart_id, title, "nothing measured")
    spreads = spreads or {}
    values = {name: row for name, row in values.items() if any(v is not None for v in row)}  # legend = bars drawn
    extent = [
        clip(v + sign * s, limits)
        for name, row in values.items()
        for v, s in zip(row, spreads.get(name) or [0.0] * len(row))
        if v is not None
        for sign in (-1, 1)
    ]
    low, high = span(numbers + extent + [0.0])
    low, high = (0.0 if min(numbers + extent) >= 0 else low), (0.0 if max(numbers + extent) <= 0 else high)
    axes = Axes([0.0, 1.0], nice_ticks(clip(low, limits), clip(high, limits)), "", y_label, x_categories=groups)
    body = axes.draw()
    band = (WIDTH - LEFT - RIGHT) / len(groups)
    width = band * 0.8 / max(len(values), 1)
    zero = axes.y(0.0)
    for series_index, (name, row) in enumerate(values.items()):
        color = palette.get(name, "#333")
        for group_index, value in enumerate(row):
            if value is None:
                continue
            x = LEFT + band * group_index + band * 0.1 + width * series_index
            top, bottom = sorted((axes.y(value), zero))
            body.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{max(bottom - top, 0.5):.1f}" '
                f'fill="{color}"><title>{escape(name)} {escape(groups[group_index])}: '
                f"{fmt(value)}</title></rect>"
            )
            spread = (spreads.get(name) or [0.0] * len(row))[group_index]
            if spread:
                middle = x + width / 2
                body.append(
                    f'<line class="whisker" x1="{middle:.1f}" x2="{middle:.1f}" '
                    f'y1="{axes.y(clip(value - spread, axes.y_ticks)):.1f}" '
                    f'y2="{axes.y(clip(value + spread, axes.y_ticks)):.1f}" stroke="#000"/>'
                )
    body.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{zero:.1f}" y2="{zero:.1f}" stroke="#333"/>')
    return _with_legend(chart_id, title, body, [(name, palette.get(name, "#333")) for name in values])


def stacked(
    chart_id: str,
    title: str,
    groups: list[str],
    parts: dict[str, list[float | None]],
    y_label: str,
    part_colors: dict[str, str],
    markers: dict[str, list[float | None]] | None = None,
) -> str:
    """One stacked bar per group (strategy), one segment per part (component); `markers` draws a
    diamond per group (e.g. an estimate of the stack's total). None parts are drawn as nothing."""
    totals = [sum(v or 0.0 for v in column) for column in zip(*parts.values())] if parts else []
    marks = [v for row in (markers or {}).values() for v in row if v is not None]
    if not groups or not any(totals):
        return empty(chart_id, title, "nothing measured")
    axes = Axes([0.0, 1.0], nice_ticks(0.0, max(totals + marks) * 1.08), "", y_label, x_categories=groups)
    body = axes.draw()
    band = (WIDTH - LEFT - RIGHT) / len(groups)
    width = band * 0.6
    for index, group in enumerate(groups):
        x, base = LEFT + band * index + band * 0.2, 0.0
        for part, row in parts.items():
            value = row[index] or 0.0
            if value <= 0:
                continue
            top, bottom = axes.y(base + value), axes.y(base)
            body.append(
                f'<rect x="{x:.1f}" y="{top:.1f}" width="{width:.1f}" height="{max(bottom - top, 0.5):.1f}" '
                f'fill="{part_colors.get(part, "#333")}"><title>{escape(group)} {escape(part)}: {fmt(value)} '
                f"{escape(y_label)}</title></rect>"
            )
            base += value
        for name, row in (markers or {}).items():
            value = row[index]
            if value is not None:
                cx, cy = x + width / 2, axes.y(value)
                body.append(
                    f'<path d="M{cx:.1f},{cy - 6:.1f} L{cx + 6:.1f},{cy:.1f} L{cx:.1f},{cy + 6:.1f} '
                    f'L{cx - 6:.1f},{cy:.1f} Z" fill="none" stroke="#000" stroke-width="1.5">'
                    f"<title>{escape(group)} {escape(name)}: {fmt(value)} {escape(y_label)}</title></path>"
                )
    legend = [(part, part_colors.get(part, "#333")) for part in parts]
    extra = [f"◇ {name}" for name in (markers or {})]
    return _with_legend(chart_id, title, body, legend, extra)


def trend(
    chart_id: str,
    title: str,
    series: dict[str, list[tuple[float, float, float, str]]],
    changes: dict[str, list[int]],
    y_label: str,
    palette: dict[str, str],
    limits: Bounds = NO_BOUNDS,
) -> str:
    """History of one metric: per series, points (x, mean, spread, hover text) joined by a line, with
    whiskers for the spread over seeds and each change point marked by a dashed line at its x; the axis
    and the whiskers stay within the metric's `limits` (bounds(): no accuracy above 1)."""
    series = {name: points for name, points in series.items() if points}
    if not series:
        return empty(chart_id, title, "no history recorded")
    xs = [x for points in series.values() for x, *_ in points]
    ys = [v for points in series.values() for _, y, s, _ in points for v in (y - s, y + s)]
    last = max(max(xs), min(xs) + 1)
    step = max(1, math.ceil((last - min(xs)) / 6))  # nights are whole numbers: integer ticks
    x_ticks = [float(x) for x in range(int(min(xs)), int(last) + step, step)]
    axes = Axes(x_ticks, axis_ticks(ys, limits), "night", y_label)
    body = axes.draw()
    for name, points in series.items():
        color = palette.get(name, "#333")
        for index in changes.get(name, []):
            x = axes.x(points[index][0])
            body.append(
                f'<line class="change-point" x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{HEIGHT - BOTTOM}" '
                f'stroke="{color}" stroke-dasharray="4,3" stroke-width="1.5"><title>{escape(name)}: change point '
                f"at night {fmt(points[index][0])}</title></line>"
            )
        path = " ".join(f"{axes.x(x):.1f},{axes.y(y):.1f}" for x, y, _, _ in points)
        body.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="1.2"/>')
        for x, y, spread, hover in points:
            cx, cy = axes.x(x), axes.y(y)
            if spread:
                body.append(
                    f'<line x1="{cx:.1f}" x2="{cx:.1f}" y1="{axes.y(clip(y - spread, axes.y_ticks)):.1f}" '
                    f'y2="{axes.y(clip(y + spread, axes.y_ticks)):.1f}" stroke="{color}"/>'
                )
            body.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="3.5" fill="{color}"><title>{escape(hover)}</title></circle>'
            )
    legend = [(name, palette.get(name, "#333")) for name in series]
    return _with_legend(chart_id, title, body, legend, ["dashed: change point", "whiskers: ± half the seeds' range"])
