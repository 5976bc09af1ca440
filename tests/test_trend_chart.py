"""The history section's trend chart keeps its axis and whiskers within what the metric can reach, as the
bars and scatter charts do (bench/report/charts.py)."""

from __future__ import annotations

import re

from bench.report import charts, scales

Y_TICK = re.compile(r'text-anchor="end" class="tick">([^<]+)</text>')
COLOR = "#123456"
WHISKER = re.compile(rf'<line x1="([\d.]+)" x2="\1" y1="([-\d.]+)" y2="([-\d.]+)" stroke="{COLOR}"/>')


def _accuracy_trend(limits: scales.Bounds) -> str:
    points = [(1.0, 0.97, 0.03, "night 1"), (2.0, 0.99, 0.03, "night 2")]  # whiskers reach 1.00 and 1.02
    return charts.trend("trend-acc", "accuracy", {"full": points}, {}, "acc", {"full": COLOR}, limits)


def test_an_accuracy_trend_has_no_tick_above_one():
    ticks = [float(tick) for tick in Y_TICK.findall(_accuracy_trend(scales.bounds("accuracy.cipher", "acc")))]
    assert ticks and max(ticks) == 1.0


def test_a_trend_whisker_stops_at_the_axis():
    whiskers = WHISKER.findall(_accuracy_trend(scales.bounds("accuracy.cipher", "acc")))
    assert len(whiskers) == 2
    ends = [float(y) for _, *ys in whiskers for y in ys]
    assert min(ends) >= charts.TOP and max(ends) <= charts.HEIGHT - charts.BOTTOM


def test_an_unbounded_trend_keeps_its_margin():
    ticks = [float(tick) for tick in Y_TICK.findall(_accuracy_trend(scales.NO_BOUNDS))]
    assert max(ticks) > 1.0
