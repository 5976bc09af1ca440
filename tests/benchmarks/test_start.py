"""Per-run fixed overhead, warm (forked from a pre-imported server) against cold (a fresh
interpreter per run): a suite of 5 runs that train one step and measure nothing else, so what is
timed is the harness: process start, imports, model load, data, trainer setup, record.

Run with: pytest tests/benchmarks/test_start.py --benchmark-enable --benchmark-only
Per-run overhead = the round's time / RUNS (the warm server's start is included, once per suite).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.conftest import bench_cli, fast_suite, write_suite

RUNS = 5
_rounds = itertools.count()


@pytest.mark.benchmark(group="start")
@pytest.mark.parametrize("backend", ["warm", "local"])
def test_suite_of_one_step_runs(benchmark, tmp_path: Path, backend: str, tiny_folder):
    suite = fast_suite(
        f"start-{backend}",
        ["full"],
        seeds=list(range(RUNS)),
        budget={"steps": 1, "batch_size": 4, "seq_len": 16},
        execution={"backend": backend, "timeout_s": 300},
    )
    path = write_suite(tmp_path, suite)

    def run_suite() -> None:
        done = bench_cli("run", str(path), "--results", str(tmp_path / f"r{next(_rounds)}"), "--quiet", "--no-report")
        assert done.returncode == 0, done.stderr

    benchmark.pedantic(run_suite, rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info["runs_per_round"] = RUNS
