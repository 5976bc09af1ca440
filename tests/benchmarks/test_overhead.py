"""Per-run fixed overhead: a fresh process that imports the training stack and loads the model.

Run with: pytest tests/benchmarks --benchmark-enable --benchmark-only
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

STARTUP = (
    "import torch, transformers, peft, trl\n"
    "from bench.models.load import load_model\n"
    "from bench.suite import ModelSpec\n"
    "load_model(ModelSpec(preset='tiny-llama'), 'cpu', report=lambda m: None)\n"
)


def _spawn(code: str) -> None:
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, capture_output=True)


@pytest.mark.benchmark(group="overhead")
def test_process_start_imports_and_model_load(benchmark, tiny_folder):
    benchmark.pedantic(_spawn, args=(STARTUP,), rounds=3, iterations=1, warmup_rounds=1)


@pytest.mark.benchmark(group="overhead")
def test_lm_eval_import(benchmark):
    benchmark.pedantic(_spawn, args=("import lm_eval.evaluator, lm_eval.models.huggingface",), rounds=3, iterations=1)
