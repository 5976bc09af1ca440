"""`bench history` on 10,000 records: 1,667 nights of the smoke suite's shape (2 strategies x 3 seeds).

Run with: pytest tests/benchmarks/test_history_speed.py --benchmark-enable --benchmark-only

The throughput's noise is random (3% a run): a sawtooth of period 11 before 2026-12-08 made PELT propose
a change at nearly every other night (its robust sigma, from night-to-night differences, sees a regular
pattern as signal) and the confirmed one landed two nights late."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.analysis.history import build
from bench.records.store import atomic_write_text
from tests.synthetic_records import make_set

NIGHTS = 1667  # x 6 runs = 10,002 records


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    template = make_set()
    noise = np.random.default_rng(0).normal(0.0, 0.03, (NIGHTS, len(template)))  # 3% a run, independent
    for night in range(NIGHTS):
        slow = 0.8 if night >= NIGHTS // 2 else 1.0
        for run, record in enumerate(template):
            copy = record.model_copy(deep=True)
            copy.metrics["train.tokens_per_s"].value *= slow * (1 + noise[night, run])
            copy.run_id = f"{record.run_id}-{night}"
            copy.started_at = f"2027-01-01T00:00:00+00:00|{night:05d}"  # orders the nights
            atomic_write_text(root / f"night-{night:05d}" / f"{copy.run_id}.json", copy.model_dump_json())
    return root


@pytest.mark.benchmark(group="history")
def test_history_of_10000_records(benchmark, store: Path):
    history = benchmark.pedantic(build, args=(store,), rounds=1, iterations=1)
    tokens = [s for s in history.series if s.metric == "train.tokens_per_s"]
    assert all(len(s.points) == NIGHTS for s in tokens)
    assert all(any(abs(c.index - NIGHTS // 2) <= 1 for c in s.change_points) for s in tokens)
