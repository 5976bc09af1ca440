"""stats.benjamini_hochberg against scipy's implementation of the same procedure."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import false_discovery_control

from bench.analysis.stats import benjamini_hochberg


@pytest.mark.parametrize("seed", range(20))
def test_agrees_with_scipy_on_random_p_values(seed: int) -> None:
    rng = np.random.default_rng(seed)
    p = rng.random(int(rng.integers(1, 40)))
    if seed % 2:  # ties, zeros and ones, as discrete tests give them
        p = np.round(p, 1)
    assert benjamini_hochberg(list(p)) == pytest.approx(list(false_discovery_control(p, method="bh")), abs=1e-12)


def test_edges_scipy_also_gives() -> None:
    assert benjamini_hochberg([]) == []
    assert benjamini_hochberg([1.0, 1.0]) == [1.0, 1.0]
    assert benjamini_hochberg([0.0, 1.0]) == [0.0, 1.0]


def test_a_nan_p_is_no_test_and_no_discovery():
    """[0.01, nan, 0.03] gave [0.03, 0.03, 0.03]: the NaN took its neighbours' q and read as a discovery."""
    adjusted = benjamini_hochberg([0.01, float("nan"), 0.03])
    assert adjusted == pytest.approx([0.02, 1.0, 0.03])  # a family of two, the NaN left out
