"""MFU (bench/measure/flops.py) against counts made by hand: the matmul weights of Llama-3.2-1B's shape,
the frozen-weight saving of LoRA, the device peak table, and a run's record on CPU (MFU null, with why)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.measure.flops import (
    FlopsPerToken,
    attention_shape,
    flops_per_token,
    matmul_weights,
    mfu_metrics,
    peak_tflops,
)
from bench.plan import plan
from bench.suite import parse_suite
from tests.conftest import REPO, fast_suite

LLAMA_1B = REPO / "suites/model-configs/llama-3.2-1b"


def _meta_model(folder: Path):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.bfloat16)


def test_llama_1b_flops_per_token_is_6n_plus_attention_counted_by_hand():
    model = _meta_model(LLAMA_1B)
    d, ff, layers, heads, kv_heads, head_dim, vocab = 2048, 8192, 16, 32, 8, 64, 128256
    per_layer = d * heads * head_dim * 2 + d * kv_heads * head_dim * 2 + 3 * d * ff  # q, o; k, v; gate, up, down
    n = layers * per_layer + d * vocab  # the tied output head is a matmul; the embedding lookup is not
    assert matmul_weights(model) == (n, 0)
    assert attention_shape(model.config) == (layers, heads, head_dim)
    flops = flops_per_token(model, 1024)
    assert flops.all_trained == flops.method == 6 * n + 12 * layers * heads * head_dim * 1024
    # about 7.9 GFLOP a token: 6 x 1.24e9 weights + 0.4e9 of attention at T = 1,024
    assert 7.8e9 < flops.all_trained < 8.0e9


def test_lora_frozen_weights_cost_4_flops_not_6(tiny_folder: Path):
    from transformers import AutoModelForCausalLM

    from bench.strategies import STRATEGIES, PrepareContext
    from bench.suite import Budget

    base = AutoModelForCausalLM.from_pretrained(tiny_folder)
    dense = matmul_weights(base)
    lora = STRATEGIES.get("lora")
    context = PrepareContext(tokenizer=None, budget=Budget(), seed=0, device="cpu")
    model = lora.prepare(base, lora.Options(r=4), context)
    trainable, frozen = matmul_weights(model)
    adapters = sum(p.numel() for name, p in model.named_parameters() if "lora_" in name)
    assert frozen == dense[0] + dense[1]  # every base matmul weight, now frozen
    assert trainable == adapters > 0
    flops = flops_per_token(model, 32)
    assert flops.all_trained - flops.method == 2 * frozen


@pytest.mark.parametrize(
    ("name", "dtype", "expected"),
    [
        ("NVIDIA H100 80GB HBM3", "bfloat16", 989.4),  # the SXM part's name
        ("NVIDIA H200", "bfloat16", 989.4),
        ("NVIDIA H200 NVL", "bfloat16", 835.5),
        ("NVIDIA H100 PCIe", "bfloat16", 756.5),
        ("NVIDIA H100 NVL", "float16", 835.5),
        ("NVIDIA A100-SXM4-80GB", "bfloat16", 312.0),
        ("NVIDIA A100 80GB PCIe", "float32", 19.5),
        ("NVIDIA L40S", "bfloat16", 362.05),
        ("NVIDIA L4", "bfloat16", 121.0),  # not the L40S
        ("NVIDIA GeForce RTX 4090", "bfloat16", 165.2),
    ],
)
def test_device_peaks_are_found_by_name(name: str, dtype: str, expected: float):
    tflops, peak, reason = peak_tflops(name, dtype)
    assert (tflops, reason) == (expected, "") and peak is not None and peak.source


def test_unknown_devices_and_cpus_have_no_peak_and_say_why():
    assert peak_tflops("Tesla T4", "float16")[0] is None and "Tesla T4" in peak_tflops("Tesla T4", "float16")[2]
    assert peak_tflops(None, "float32")[0] is None and "no GPU" in peak_tflops(None, "float32")[2]
    assert peak_tflops("NVIDIA H100 80GB HBM3", "float32", tf32=True)[0] == 494.7


def test_mfu_is_flops_times_tokens_over_peak_and_missing_with_a_reason():
    flops = FlopsPerToken(trainable_weights=10**6, frozen_weights=10**9, layers=16, heads=32, head_dim=64, context=1024)
    metrics, info = mfu_metrics(flops, 20_000.0, "NVIDIA H100 80GB HBM3", "bfloat16", devices=2)
    method = 6e6 + 4e9 + 12 * 16 * 32 * 64 * 1024
    assert metrics["train.mfu"].value == pytest.approx(method * 20_000 / (989.4e12 * 2))
    assert metrics["train.mfu_6n"].value == pytest.approx((method + 2e9) * 20_000 / (989.4e12 * 2))
    assert metrics["train.model_tflops_per_s"].value == pytest.approx(method * 20_000 / 1e12)
    assert info["peak_tflops_per_device"] == 989.4 and "H100" in info["peak_source"]
    unknown, info = mfu_metrics(flops, 20_000.0, "Tesla T4", "float16")
    assert unknown["train.mfu"].value is None and "Tesla T4" in unknown["train.mfu"].reason
    assert unknown["train.flops_per_token"].value == method and info["reason"]


def test_a_run_records_flops_per_token_and_says_why_mfu_is_missing_on_cpu(tmp_path: Path):
    from bench.run.worker import run

    suite = fast_suite("flops", ["full", {"lora": {"r": 4}}], execution={"threads": 1, "device": "cpu"})
    records = {spec.label: run(spec, "test-machine", tmp_path / spec.label) for spec in plan(parse_suite(suite))}
    for record in records.values():
        assert record.status == "ok", record.reason
        assert record.metrics["train.flops_per_token"].value > 0
        assert record.metrics["train.mfu"].value is None and "no GPU" in record.metrics["train.mfu"].reason
        flops = record.model["flops"]
        assert flops["context"] == record.budget["tokens_seen"] / record.budget["samples_seen"]
        json.dumps(flops)  # the record stays JSON
    full, lora = records["full"].model["flops"], records["lora"].model["flops"]
    assert full["frozen_weights"] == 0 and lora["trainable_weights"] < lora["frozen_weights"]
    assert (
        records["lora"].metrics["train.flops_per_token"].value < records["full"].metrics["train.flops_per_token"].value
    )


def test_mfu_is_a_timing_metric_and_flops_per_token_is_not():
    """MFU and TFLOP/s are tokens/s times a constant: compared only on the same hardware, never from a
    contaminated run (bench/analysis/stats.py TIMING); FLOPs per token depends on the model alone."""
    from bench.analysis import stats

    for name in ("train.mfu", "train.mfu_6n", "train.model_tflops_per_s"):
        assert stats.matches(name, stats.TIMING), name
    assert not stats.matches("train.flops_per_token", stats.HARDWARE_BOUND)


def test_preference_objectives_say_why_they_have_no_mfu(tiny_folder: Path):
    from transformers import AutoModelForCausalLM

    from bench.measure.flops import record_flops

    model = AutoModelForCausalLM.from_pretrained(tiny_folder)
    metrics, info = record_flops(model, "cpu", "float32", 1000.0, 640, 20, 1, objective="dpo")
    assert metrics["train.mfu"].value is None and "dpo" in metrics["train.mfu"].reason
    assert metrics["train.flops_per_token"].value is None and info["reason"]
    sft, _ = record_flops(model, "cpu", "float32", 1000.0, 640, 20, 1)
    assert sft["train.flops_per_token"].value > 0


def test_mfu_counts_as_the_same_hypothesis_as_tokens_per_s():
    """MFU is tokens/s times a constant of the run: one test in a family, not three more."""
    from bench.analysis import stats

    for name in ("train.mfu", "train.mfu_6n", "train.model_tflops_per_s"):
        assert stats.hypothesis(name) == "train.tokens_per_s", name
