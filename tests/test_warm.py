"""The warm backend: runs forked from a pre-imported server give the same records as fresh
processes, say which start they had, and a run that pollutes its process cannot touch the next."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.records.store import load_records
from tests.conftest import REPO, bench_cli, fast_suite, write_suite

POLLUTER = '''
import os, random
from typing import ClassVar
import torch
from bench.strategies import STRATEGIES
from bench.strategies.base import StrategyOptions

LEAK = []

class Polluter:
    """Changes everything a process shares with a later run, then fails."""
    objective: ClassVar = "sft"
    Options: ClassVar = StrategyOptions

    def prepare(self, model, options, context):
        torch.set_default_dtype(torch.float64)
        torch.manual_seed(1234)
        random.seed(1234)
        torch.set_num_threads(2)
        os.environ["BENCH_POLLUTED"] = "1"
        LEAK.append(bytearray(200 * 2**20))
        raise RuntimeError("planted: polluted the process")

    def save(self, model, directory):
        pass

STRATEGIES.add("polluter", Polluter())
'''


def _run(tmp_path: Path, name: str, strategies: list, backend: str, **extra) -> dict:
    suite = write_suite(tmp_path, fast_suite(name, strategies, execution={"backend": backend}, **extra))
    results = tmp_path / f"results-{name}"
    done = bench_cli("run", str(suite), "--results", str(results), "--quiet", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode in (0, 1), done.stderr
    return {(r.label, r.seed): r for r in load_records(results)}


def _same(a, b) -> None:
    assert [(p.step, p.loss) for p in a.loss_curve] == [(p.step, p.loss) for p in b.loss_curve]
    for name in ("train.final_loss", "params.trainable", "params.total", "storage.bytes"):
        assert a.metrics[name].value == b.metrics[name].value, name
    assert a.model["sha256"] == b.model["sha256"]


def test_warm_and_cold_runs_give_identical_records(tmp_path: Path):
    warm = _run(tmp_path, "warm", ["full", "lora"], "warm", seeds=[0, 1])
    cold = _run(tmp_path, "cold", ["full", "lora"], "local", seeds=[0, 1])
    assert set(warm) == set(cold) == {(label, seed) for label in ("full", "lora") for seed in (0, 1)}
    for key in warm:
        assert warm[key].status == cold[key].status == "ok"
        assert (warm[key].start, cold[key].start) == ("warm", "cold")
        _same(warm[key], cold[key])


def test_a_run_that_pollutes_its_warm_process_does_not_touch_the_next(tmp_path: Path):
    (tmp_path / "bench_polluter.py").write_text(POLLUTER)
    after = _run(tmp_path, "polluted", ["polluter", "full"], "warm", plugins=["bench_polluter"])
    alone = _run(tmp_path, "alone", ["full"], "local")
    assert after[("polluter", 0)].status == "failed" and "planted: polluted" in after[("polluter", 0)].reason
    assert after[("full", 0)].status == "ok" and after[("full", 0)].start == "warm"
    _same(after[("full", 0)], alone[("full", 0)])


def test_what_the_server_preloads_on_a_gpu_machine_leaves_bitsandbytes_out():
    """bitsandbytes initialises CUDA at import (seen on an H200: results/warm-gpu), and a child forked
    after that cannot use CUDA; so the GPU machine's preload must not reach it, through peft or otherwise."""
    probe = (
        "import importlib, sys\n"
        "from bench.backends.zygote import PRELOAD\n"
        "for name in PRELOAD: importlib.import_module(name)\n"
        "print(sorted(m for m in ('bitsandbytes', 'peft', 'trl') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
