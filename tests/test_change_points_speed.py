"""`pelt_l2` is ruptures' PELT with the l2 cost, computed from running sums (audit user21: ruptures' own took
O(n^3) on a series without a change, 77 s for `bench history` on 730 nights of one strategy). The same
breakpoints as ruptures on series of every shape the history meets: noise, steps, plateaus of repeated
values, integer counts, a single outlier, at penalties around the one `candidates` uses. Where integer data
gives two partitions of exactly the same cost (4 of 900 cases here, counts at a low penalty), rounding picks
one of them, differently in each: the test then holds the two equally optimal in exact arithmetic."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import ruptures

from bench.analysis.change_points import PENALTY_FACTOR, pelt_l2


def _ruptures(signal: np.ndarray, penalty: float) -> list[int]:
    return ruptures.Pelt(model="l2", min_size=1, jump=1).fit(signal.reshape(-1, 1)).predict(pen=penalty)


def _exact_cost(signal: np.ndarray, breakpoints: list[int], penalty: float) -> Fraction:
    """The penalised l2 cost of a partition in exact arithmetic."""
    total, start = Fraction(0), 0
    for end in breakpoints:
        segment = [Fraction(float(value)) for value in signal[start:end]]
        mean = sum(segment) / len(segment)
        total += sum((value - mean) ** 2 for value in segment) + Fraction(penalty)
        start = end
    return total


def _series(kind: str, rng: np.random.Generator) -> np.ndarray:
    n = int(rng.integers(2, 120))
    noise = rng.normal(0.0, 1.0, n)
    if kind == "noise":
        return 100 + noise
    if kind == "steps":
        levels = np.repeat(rng.normal(0, 4, 4), math.ceil(n / 4))[:n]
        return 50 + levels + noise
    if kind == "plateaus":  # quality metrics repeat exactly night after night
        return np.repeat(rng.integers(0, 5, math.ceil(n / 5)).astype(float), 5)[:n]
    if kind == "counts":
        return rng.poisson(3, n).astype(float)
    outlier = 100 + noise
    outlier[int(rng.integers(0, n))] += 25
    return outlier


@pytest.mark.parametrize("kind", ["noise", "steps", "plateaus", "counts", "outlier"])
def test_pelt_l2_finds_ruptures_breakpoints(kind: str) -> None:
    rng = np.random.default_rng(sum(map(ord, kind)))
    tied = 0
    for _ in range(60):
        signal = _series(kind, rng)
        for factor in (0.5, PENALTY_FACTOR, 10.0):
            penalty = factor * math.log(len(signal))
            ours, theirs = pelt_l2(signal, penalty), _ruptures(signal, penalty)
            if ours != theirs:
                assert _exact_cost(signal, ours, penalty) == _exact_cost(signal, theirs, penalty), (ours, theirs)
                tied += 1
    assert tied <= (5 if kind == "counts" else 0)


def test_pelt_l2_on_a_year_of_nights_without_a_change() -> None:
    """The shape that made ruptures cubic; the answer is still one segment."""
    signal = 100 + np.random.default_rng(0).normal(0.0, 1.0, 365)
    assert pelt_l2(signal, PENALTY_FACTOR * math.log(365)) == [365] == _ruptures(signal, PENALTY_FACTOR * math.log(365))
