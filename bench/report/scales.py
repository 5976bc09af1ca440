"""Numbers on a report's axes and in its tables: short human formatting (`fmt`), round ticks, and the range
each metric can take (`bounds`: shares within [0, 1], their differences within [-1, 1], times and sizes at
least 0), so no axis, whisker or interval shown passes what the metric can reach. Shared by the charts
(bench/report/charts.py), the terminal table and the CLI's compare table."""

from __future__ import annotations

import math


def fmt(value: float | None) -> str:
    """Short human number: 3 significant digits, thousands as k/M/G; "inf", "-inf" and "NaN" as such."""
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("inf" if value > 0 else "-inf")  # never a suffix on it
    magnitude = abs(value)
    for limit, divisor, suffix in ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k")):
        if magnitude >= limit:
            return f"{value / divisor:.3g}{suffix}"
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude < 1e-12:
        return "0"
    if magnitude >= 1e-4:
        return f"{value:.3g}"
    return f"{value:.2e}"


def nice_ticks(low: float, high: float, count: int = 5, integer: bool = False) -> list[float]:
    """Round tick values covering [low, high]; `integer`: whole numbers only (steps, counts)."""
    if not math.isfinite(low) or not math.isfinite(high):
        return [0.0]
    if high == low:
        high, low = high + (abs(high) or 1) * 0.5, low - (abs(low) or 1) * 0.5
    raw = (high - low) / count
    step = 10 ** math.floor(math.log10(raw))
    step *= next(m for m in (1, 2, 2.5, 5, 10) if raw <= step * m)
    if integer and step != int(step):
        step = float(max(1, math.ceil(step)))  # 0.5 -> 1, 2.5 -> 3: no "12.5" step
    start = math.floor(low / step) * step
    ticks = [round(start, 12)]
    while ticks[-1] < high - step * 1e-9:  # the last tick covers `high`
        ticks.append(round(ticks[-1] + step, 12))
    return ticks


def span(values: list[float], pad: float = 0.08) -> tuple[float, float]:
    low, high = min(values), max(values)
    margin = (high - low) * pad or (abs(high) or 1) * pad
    return low - margin, high + margin


Bounds = tuple[float | None, float | None]  # the values a quantity can take (None: unbounded on that side)
NO_BOUNDS: Bounds = (None, None)
SHARE_UNITS = ("acc", "rate", "fraction")  # accuracy-like: a share of items, 0 to 1
SIGNED_FAMILIES = ("forgetting", "gain")  # differences of shares: -1 to 1
SIGNED_UNITS = ("nats", "reward")  # log-ratios and rewards may be negative


def bounds(metric: str, unit: str) -> Bounds:
    """The range a metric can take, from its family and unit: shares within [0, 1], their differences
    within [-1, 1], everything else (rates, memory, times, counts, loss) at least 0, rewards unbounded."""
    share = unit in SHARE_UNITS
    if metric.split(".", 1)[0] in SIGNED_FAMILIES:
        return (-1.0, 1.0) if share else NO_BOUNDS
    if share:
        return (0.0, 1.0)
    return NO_BOUNDS if unit in SIGNED_UNITS else (0.0, None)


def clip(value: float, limits: Bounds | list[float]) -> float:
    """`value` within `limits` (a Bounds pair or an axis's ticks, first and last)."""
    low, high = (limits[0], limits[-1]) if limits else NO_BOUNDS
    value = value if low is None else max(value, low)
    return value if high is None else min(value, high)


def axis_ticks(values: list[float], limits: Bounds = NO_BOUNDS, pad: float = 0.08) -> list[float]:
    """Ticks covering `values` (clipped to `limits`) with a margin that never crosses a limit: no
    negative throughput, no accuracy above 1."""
    low, high = span([clip(v, limits) for v in values], pad)
    return nice_ticks(clip(low, limits), clip(high, limits))


def runs_of(numbers: list[int]) -> str:
    """Seeds with each run of four or more consecutive numbers as a range: `0-19` for twenty seeds, `0, 1, 2`
    for three, `0-3, 7`; a sweep's 100 seeds in a Settings cell were 100 numbers."""
    ordered, parts = sorted(set(numbers)), []
    for number in ordered:
        if parts and number == parts[-1][1] + 1:
            parts[-1][1] = number
        else:
            parts.append([number, number])
    shown = [f"{low}-{high}" if high - low >= 3 else ", ".join(map(str, range(low, high + 1))) for low, high in parts]
    return ", ".join(shown)
