"""Shared test helpers: small suites built in code, a CLI runner in a subprocess, and a small LoRA
training through the harness's training path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist each worker's torch gets its share of the cores. By default every worker takes
    every core, and two workers on two cores oversubscribe OpenMP: in-process torch work ran 1.5x slower
    (tests/test_architectures.py on two workers, 2026-12-07: 105 s, 71 s with one thread each). The
    subprocesses the tests start (bench run's workers) choose their own threads, as for users; the
    serial tests, run without workers, keep torch's default."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and os.environ.get("PYTEST_XDIST_WORKER"):
        import torch

        from bench.measure.env import available_cores

        torch.set_num_threads(max(1, available_cores() // workers))


def fast_suite(name: str, strategies: list[Any], **overrides: Any) -> dict[str, Any]:
    """A suite dict on the tiny preset that trains a few steps and skips evaluation and latency."""
    suite: dict[str, Any] = {
        "name": name,
        "model": {"preset": "tiny-llama"},
        "task": {"name": "cipher", "train_size": 64, "eval_limit": 20},
        "retain": [{"name": "next-letter", "eval_limit": 20}],
        "budget": {"steps": 4, "batch_size": 4, "seq_len": 16},
        "seeds": [0],
        "measure": {"accuracy": False, "latency": False, "throughput_warmup_steps": 1},
        "execution": {"timeout_s": 300},
        "strategies": strategies,
    }
    suite.update(overrides)
    return suite


def write_suite(folder: Path, suite: dict[str, Any]) -> Path:
    path = folder / f"{suite['name']}.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


def bench_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the CLI; a PYTHONPATH in `env` is put in front of the caller's (which may hold our packages)."""
    env = dict(env or {})
    if "PYTHONPATH" in env and os.environ.get("PYTHONPATH"):
        env["PYTHONPATH"] += os.pathsep + os.environ["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **env},
    )


@pytest.fixture(scope="session")
def tiny_folder() -> Path:
    """The cached pretrained tiny preset (built once, ~30 s, on a fresh machine)."""
    from bench.models.tiny import ensure_preset

    return ensure_preset("tiny-llama", report=lambda message: None)


def train_tiny_lora(folder: Path, steps: int, **request: Any) -> Any:
    """LoRA (with dropout, which draws from the generator every step) on tiny-llama through
    bench.training.train.train, as the worker trains: seeded first, 4 x 16 batches, gradient accumulation 2,
    24 cipher examples (several epochs); `request`: more TrainRequest fields. Returns the TrainOutcome."""
    import transformers

    import bench.training.train
    from bench.models.load import load_model
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.suite import Budget, ModelSpec, TaskSpec, Training
    from bench.tasks import load_task

    transformers.set_seed(0)  # as the worker does before preparing a strategy (LoRA's A is random)
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda m: None)
    budget = Budget(steps=steps, batch_size=4, seq_len=16, gradient_accumulation=2)
    lora = STRATEGIES.get("lora")
    options = lora.Options(learning_rate=1e-2, dropout=0.1)
    model = lora.prepare(loaded.model, options, PrepareContext(loaded.tokenizer, budget, 0, "cpu"))
    task = load_task(TaskSpec(name="cipher", train_size=24, eval_limit=4))
    request = bench.training.train.TrainRequest(
        model, loaded.tokenizer, "sft", task, budget, Training(), options, 0, "cpu", folder, **request
    )
    return bench.training.train.train(request)
