"""`bench report` on a sweep in one folder: 2,000 synthetic records, 100 strategies x 20 seeds: 10.6 s before
2026-12-08, 3.3 s after (AMD EPYC VM, back to back). Audit user21's 5,000 larger records of 250 strategies: 71 s
and 2.5 GB before, 27 s and 1.4 GB after.

Run with: pytest tests/benchmarks/test_report_speed.py --benchmark-enable --benchmark-only
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from bench.api import report
from bench.records.store import ResultStore
from tests.synthetic_records import make_set

STRATEGIES, SEEDS = 100, 20


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    """One folder of records, each strategy a LoRA of its own rank."""
    root = tmp_path_factory.mktemp("sweep")
    store = ResultStore(root)
    for index in range(STRATEGIES):
        for run in make_set(seeds=tuple(range(SEEDS)), labels=("lora",)):
            spec = {**run.spec, "label": f"lora-{index:03d}", "options": {**run.spec["options"], "r": index + 1}}
            run_id = hashlib.sha256(f"{run.run_id}-{index}".encode()).hexdigest()[:16]
            store.write(run.model_copy(update={"label": f"lora-{index:03d}", "spec": spec, "run_id": run_id}))
    folder = root / "smoke" / "x86_64-2c-cpu"
    assert len(list(folder.glob("*.json"))) == STRATEGIES * SEEDS
    return folder


@pytest.mark.benchmark(group="report")
def test_report_of_a_sweep_in_one_folder(benchmark, sweep: Path, tmp_path: Path):
    out = benchmark.pedantic(report, args=(sweep, tmp_path / "sweep.html"), rounds=1, iterations=1)
    page = out.read_text()
    assert page.count('class="legend">lora-') >= STRATEGIES  # every strategy in a chart's legend
    assert "<td>0-19</td>" in page
