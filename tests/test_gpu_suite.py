"""suites/gpu-1b.yaml (issue 28) on CPU: the suite as shipped, with only its model swapped for a tiny
config of the same architecture and the batch cut to 1 for 2 steps, runs every strategy through the same code path
the GPU run takes, at sequence 1,024 with no padding, and its records carry FLOPs per token, MFU
(null on CPU, with the reason) and the attention implementation."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import yaml

from bench.plan import plan
from bench.suite import parse_suite
from tests.conftest import REPO

SUITE = REPO / "suites/gpu-1b.yaml"


def _tiny_llama_3_config(folder: Path) -> Path:
    """Llama-3.2-1B's config.json with tiny widths (the vocabulary kept at the tokenizer's 49,152)."""
    config = json.loads((REPO / "suites/model-configs/llama-3.2-1b/config.json").read_text())
    config.update(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)
    config.update(num_key_value_heads=2, head_dim=16, vocab_size=49152)
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(REPO / "suites/model-configs/llama-3.2-1b" / name, folder / name)
    return folder


def test_the_gpu_1b_suite_runs_on_a_tiny_config_of_the_same_shape_on_cpu(tmp_path: Path):
    from bench.run.worker import run

    suite = yaml.safe_load(SUITE.read_text())
    suite["model"]["config"] = str(_tiny_llama_3_config(tmp_path / "tiny-llama-3"))
    suite["budget"].update(steps=2, batch_size=1)
    suite["measure"].update(throughput_warmup_steps=1, latency=False)  # latency: the same code as every suite
    suite["execution"].update(device="cpu", threads=1)
    specs = plan(parse_suite(suite))
    assert [spec.label for spec in specs] == ["full", "lora", "qlora", "dora"]
    for spec in specs:
        record = run(spec, "test-machine", tmp_path / spec.label)
        assert record.status == "ok", record.reason
        assert record.budget["tokens_seen"] == 2 * 1 * 1024, "every row fills 1,024 tokens: no padding"
        assert record.metrics["train.tokens_per_s"].value > 0
        assert record.model["flops"]["context"] == 1024 and record.model["flops"]["attention"] == "sdpa"
        assert record.model["flops"]["dtype"] == "bfloat16"
        assert record.metrics["train.flops_per_token"].value > 0
        assert record.metrics["train.mfu"].value is None and "no GPU" in record.metrics["train.mfu"].reason
        assert record.metrics["accuracy.long-text"].value is None
        assert record.model["weights"] == "random initialisation, seed 0"
        assert record.memory["estimate"] is not None, record.memory


def test_the_training_path_script_runs_the_1b_shape_on_a_tiny_config_and_reports_tokens_and_mfu(tmp_path: Path):
    """scripts/training_path.py as the GPU device script calls it, on CPU with a tiny config and batch
    (in this process: the script's main, as its command line would call it)."""
    spec = importlib.util.spec_from_file_location("training_path_script", REPO / "scripts/training_path.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "path.json"
    arguments = ["--shapes", "llama-1b-1024", "--strategies", "lora", "--variants", "bare", "harness"]
    arguments += ["--rounds", "1", "--device", "cpu", "--out", str(out), "--steps", "3", "--batch-size", "2"]
    arguments += ["--seq-len", "128", "--model-config", str(_tiny_llama_3_config(tmp_path / "tiny"))]
    assert script.main(arguments) == 0
    shape = json.loads(out.read_text())["shapes"]["llama-1b-1024 lora"]
    assert shape["steps"] == 3 and shape["tokens"] == 3 * 2 * 128  # long rows: every one truncated, no padding
    assert set(shape["median_seconds"]) == {"bare", "harness"} and list(shape["ratios"]) == ["bare / harness"]
    assert 0 < shape["ratios"]["bare / harness"] < 10
    assert shape["tokens_per_s"]["bare"] == shape["tokens"] / shape["median_seconds"]["bare"]
    assert shape["mfu"]["harness"] is None and "no GPU" in shape["mfu_reason"]
    assert 0 < shape["flops"]["trainable_weights"] < shape["flops"]["frozen_weights"]  # LoRA's adapters
