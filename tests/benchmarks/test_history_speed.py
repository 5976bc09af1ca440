"""`bench history` on 10,000 records: 1,667 nights of the smoke suite's shape (2 strategies x 3 seeds).

Run with: pytest tests/benchmarks/test_history_speed.py --benchmark-enable --benchmark-only
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.analysis.history import build
from bench.records.store import atomic_write_text
from tests.synthetic_records import make_set

NIGHTS = 1667  # x 6 runs = 10,002 records


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("store")
    template = make_set()
    for night in range(NIGHTS):
        slow = 0.8 if night >= NIGHTS // 2 else 1.0
        for record in template:
            copy = record.model_copy(deep=True)
            copy.metrics["train.tokens_per_s"].value *= slow * (1 + 0.03 * ((night * 7919) % 11 - 5) / 5)
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
