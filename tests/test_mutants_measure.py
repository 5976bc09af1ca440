"""What users read from bench.measure that the other tests let change unnoticed (a mutation audit: each test fails
on a mutant that the measurements' own tests passed): FLOPs of GPT-2's Conv1D layers, of configs that state their
head width, of TF32 and RLHF runs; the memory tracker's figures and reasons without a GPU or behind NVML. None
trains."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# FLOPs per token (bench.measure.flops)


def test_gpt2_conv1d_layers_are_matmuls_counted_in_by_out():
    """GPT-2's Conv1D holds its weight (in, out): c_attn 64 -> 192, c_proj 64 -> 64, c_fc 64 -> 256 and
    c_proj 256 -> 64 per layer, and the tied head 64 -> 256."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    from bench.measure.flops import matmul_weights

    config = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=64)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    per_layer = 64 * 192 + 64 * 64 + 64 * 256 + 256 * 64
    assert matmul_weights(model) == (2 * per_layer + 64 * 256, 0)


def test_attention_uses_the_head_width_a_config_states():
    from transformers import LlamaConfig

    from bench.measure.flops import attention_shape

    config = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32)
    assert attention_shape(config) == (2, 4, 32)  # not hidden_size / heads = 16
    multimodal = SimpleNamespace(text_config=SimpleNamespace(num_hidden_layers=3, num_attention_heads=2, head_dim=8))
    assert attention_shape(multimodal) == (3, 2, 8)


def test_tf32_matmuls_are_held_against_the_tf32_peak_and_named_so(monkeypatch):
    """A float32 run with TF32 matmuls on an H100: MFU against 494.7 TFLOP/s, and the record says tfloat32."""
    import torch

    from bench.measure.flops import FlopsPerToken, mfu_metrics, record_flops

    flops = FlopsPerToken(trainable_weights=10**6, frozen_weights=0, layers=1, heads=1, head_dim=1, context=1)
    _, info = mfu_metrics(flops, 1000.0, "NVIDIA H100 80GB HBM3", "float32", tf32=True)
    assert (info["dtype"], info["peak_tflops_per_device"]) == ("tfloat32", 494.7)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.backends.cuda, "matmul", SimpleNamespace(allow_tf32=True))
    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=2, head_dim=4)
    metrics, info = record_flops(model, "cuda", "float32", 1000.0, 640, 20, 1)
    assert (info["dtype"], info["peak_tflops_per_device"]) == ("tfloat32", 494.7)
    assert metrics["train.mfu"].value == pytest.approx(metrics["train.model_tflops_per_s"].value / 494.7)


def test_rlhf_steps_are_not_counted_as_6n_per_token():
    import torch

    from bench.measure.flops import record_flops

    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=2, head_dim=4)
    metrics, info = record_flops(model, "cpu", "float32", 1000.0, 640, 20, 1, objective="rlhf")
    assert metrics["train.flops_per_token"].value is None and "a rlhf step does other work" in info["reason"]


def test_a_model_whose_shape_cannot_be_read_records_flops_missing_not_a_failed_run():
    import torch

    from bench.measure.flops import record_flops

    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(hidden_size=8)  # no layer or head count under any name
    metrics, info = record_flops(model, "cpu", "float32", 1000.0, 640, 20, 1)
    assert all(metric.value is None for metric in metrics.values())
    assert info["reason"].startswith("FLOPs per token not countable for this model: ")


def test_no_samples_trained_means_no_context_tokens():
    import torch

    from bench.measure.flops import record_flops

    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=2, head_dim=4)
    _, info = record_flops(model, "cpu", "float32", None, 0, 0, 1)
    assert (info["context"], info["attention_per_token"]) == (0.0, 0.0)


# per-phase memory (bench.measure.memory)


def test_the_host_peak_is_vmhwm_in_mib(tmp_path: Path, monkeypatch):
    from bench.measure import memory

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  524288 kB\nVmRSS:\t  262144 kB\n")
    monkeypatch.setattr(memory, "_STATUS", status)
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "clear_refs")
    with memory.MemoryTracker("train") as phase:
        pass
    assert (phase.host_peak_mib, phase.host_reason) == (512.0, None)
    assert (tmp_path / "clear_refs").read_text() == "5"  # the high-water mark was reset at the phase's start


def test_a_machine_without_cuda_says_so_on_every_device_figure(monkeypatch):
    import torch

    from bench.measure.memory import MemoryTracker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with MemoryTracker("train") as phase:
        pass
    metrics = phase.metrics()
    for name in ("cuda_allocated_peak_mib", "cuda_reserved_peak_mib", "nvml_process_mib", "nvml_device_used_mib"):
        metric = metrics[f"memory.train.{name}"]
        assert (metric.value, metric.reason) == (None, "no CUDA device on this machine"), name
    assert metrics["memory.train.host_peak_mib"].reason is None


class _Nvml:
    """pynvml's calls bench.measure.memory makes, over GPUs given as (used bytes, [(pid, bytes), ...])."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[tuple[int, list[tuple[int, int]]]]) -> None:
        self.gpus = gpus

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.gpus[handle][1]]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=self.gpus[handle][0])


MIB = 2**20


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        # ours on GPU 1 only, another process on GPU 0: GPU 1's use, not both GPUs'
        ([(8 * MIB, [(1, 8 * MIB)]), (5 * MIB, [("me", 3 * MIB)])], (3.0, 5.0, None)),
        # ours on both GPUs: the sum of each
        ([(8 * MIB, [("me", 2 * MIB)]), (5 * MIB, [("me", 3 * MIB)])], (5.0, 13.0, None)),
        # one GPU that lists no process (a container hides pids): it must be ours, its use still tells
        ([(7 * MIB, [])], (None, 7.0, "NVML lists no memory for this process (a container may hide its pid)")),
        # two such GPUs: which one is ours is unknown
        (
            [(7 * MIB, []), (9 * MIB, [])],
            (None, None, "NVML lists no memory for this process (a container may hide its pid)"),
        ),
    ],
)
def test_nvml_figures_are_this_process_and_the_gpus_it_is_on(monkeypatch, gpus, expected):
    import os

    from bench.measure.memory import nvml_used_mib

    mine = os.getpid()
    gpus = [(used, [(mine if pid == "me" else pid, size) for pid, size in processes]) for used, processes in gpus]
    monkeypatch.setitem(sys.modules, "pynvml", _Nvml(gpus))
    assert nvml_used_mib() == expected


def test_a_figure_measured_carries_no_reason_and_one_missing_carries_its_own():
    from bench.measure.memory import PhaseMemory

    phase = PhaseMemory("train", cuda_allocated_peak_mib=3.0, cuda_reserved_peak_mib=4.0, nvml_device_used_mib=7.0)
    phase.nvml_reason = "NVML lists no memory for this process (a container may hide its pid)"
    metrics = phase.metrics()
    assert metrics["memory.train.nvml_device_used_mib"].reason is None
    assert metrics["memory.train.nvml_process_mib"].reason == phase.nvml_reason
    assert metrics["memory.train.cuda_allocated_peak_mib"].reason is None
