"""Model FLOPs utilisation (MFU): how much of a device's dense peak the training step's arithmetic uses.

    MFU = FLOPs per token x tokens per second / (dense peak of the device for the dtype x devices)

FLOPs per token of one training step (forward + backward), as in PaLM (Chowdhery et al. 2022,
appendix B; Kaplan et al. 2020, section 2.1, for the 6N):

    6 N + 12 L H Q T

N: the weights of the matrix multiplications a token goes through (every linear layer and the output
head; embedding lookups and norms do no matmul), 2 FLOPs per weight forward, 4 backward (the input's
gradient and the weight's). L layers, H query heads of width Q, T tokens of context: the score and
value products, 4 L H Q T forward, twice that backward (counted in full, as PaLM does, although a
causal kernel skips about half).

A frozen weight's gradient is never computed, so it costs 4 FLOPs per token, not 6 (forward 2,
the input's gradient 2):

    6 N_trainable + 4 N_frozen + 12 L H Q T

`train.mfu` uses this one (the work the method's step does: what keeps the device busy);
`train.mfu_6n` the convention that counts every weight as trained (comparable with published MFU,
and the same for every strategy at equal tokens/s). Both leave out: that backward stops below the
lowest trainable weight, DoRA's weight norms and QLoRA's dequantisation (per step, not per token),
and prompt or prefix tuning's virtual tokens (computed, not counted as tokens); prefix tuning's
projection MLP runs once per step, not per token, and is not counted as weights. docs/performance.md.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from bench.records.results import Metric

TERA = 1e12


@dataclass(frozen=True)
class Peak:
    """Dense (no structured sparsity) tensor throughput of one device kind, TFLOP/s per dtype."""

    name: str
    matches: tuple[str, ...]  # all of these words in torch.cuda.get_device_name(), case-insensitive
    tflops: Mapping[str, float]  # bfloat16, float16, float32 (no TF32), tfloat32
    source: str


# Checked in order: the more specific names first (an "H100 NVL" also contains "H100").
PEAKS: tuple[Peak, ...] = (
    Peak(
        "NVIDIA H200 NVL",
        ("h200", "nvl"),
        {"bfloat16": 835.5, "float16": 835.5, "float32": 60.0, "tfloat32": 417.5},
        "NVIDIA H200 datasheet (H200 NVL column; 1,671 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA H200 SXM",
        ("h200",),
        {"bfloat16": 989.4, "float16": 989.4, "float32": 66.9, "tfloat32": 494.7},
        "NVIDIA H200 datasheet (H200 SXM column; 1,979 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA H100 NVL",
        ("h100", "nvl"),
        {"bfloat16": 835.5, "float16": 835.5, "float32": 60.0, "tfloat32": 417.5},
        "NVIDIA H100 datasheet (H100 NVL column; 1,671 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA H100 PCIe",
        ("h100", "pcie"),
        {"bfloat16": 756.5, "float16": 756.5, "float32": 51.2, "tfloat32": 378.0},
        "NVIDIA H100 datasheet (H100 PCIe column; 1,513 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA H100 SXM",
        ("h100",),
        {"bfloat16": 989.4, "float16": 989.4, "float32": 66.9, "tfloat32": 494.7},
        "NVIDIA H100 datasheet (H100 SXM column; 1,979 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA A100",
        ("a100",),
        {"bfloat16": 312.0, "float16": 312.0, "float32": 19.5, "tfloat32": 156.0},
        "NVIDIA A100 datasheet (SXM and PCIe alike; 624 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA L40S",
        ("l40s",),
        {"bfloat16": 362.05, "float16": 362.05, "float32": 91.6, "tfloat32": 183.0},
        "NVIDIA L40S datasheet (733 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA L4",
        ("l4",),
        {"bfloat16": 121.0, "float16": 121.0, "float32": 30.3, "tfloat32": 60.0},
        "NVIDIA L4 datasheet (242 TFLOP/s bf16 is with sparsity)",
    ),
    Peak(
        "NVIDIA GeForce RTX 4090",
        ("rtx", "4090"),
        {"bfloat16": 165.2, "float16": 165.2, "float32": 82.6, "tfloat32": 82.6},
        "NVIDIA Ada Lovelace architecture whitepaper, appendix A (bf16/fp16 with FP32 accumulate, "
        "as PyTorch's matmuls accumulate; 330 TFLOP/s is with FP16 accumulate)",
    ),
)


def find_peak(device_name: str | None) -> Peak | None:
    if not device_name:
        return None
    words = set(re.findall(r"[a-z0-9]+", device_name.lower()))
    return next((peak for peak in PEAKS if set(peak.matches) <= words), None)


def peak_tflops(device_name: str | None, dtype: str, tf32: bool = False) -> tuple[float | None, Peak | None, str]:
    """(TFLOP/s, table row, reason when unknown) for one device of `device_name` computing in `dtype`."""
    if not device_name:
        return (
            None,
            None,
            "no GPU: the peak table holds accelerators only (a CPU's peak depends on cores, clock and ISA)",
        )
    peak = find_peak(device_name)
    if peak is None:
        return None, None, f"no dense peak known for {device_name!r} (bench/measure/flops.py PEAKS)"
    key = "tfloat32" if dtype == "float32" and tf32 else dtype
    if key not in peak.tflops:
        return None, peak, f"no {key} peak for {peak.name} in the table"
    return peak.tflops[key], peak, ""


def _linear_shape(module: Any) -> tuple[int, int] | None:
    """(in, out) of a matmul layer: torch's Linear and its subclasses (PEFT's lora_A/B, bitsandbytes'
    Linear4bit and Linear8bitLt) and GPT-2's Conv1D; None for everything else."""
    import torch

    if isinstance(module, torch.nn.Linear):
        return module.in_features, module.out_features
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf"):
        return module.weight.shape[0], module.nf
    return None


def _per_step_modules(model: Any) -> set[int]:
    """Modules that run once per step, not once per token: PEFT's prompt encoders (prefix tuning's
    projection MLP turns the virtual tokens into every layer's prefixes whatever the batch holds)."""
    encoder = getattr(model, "prompt_encoder", None)
    modules = getattr(encoder, "modules", None)
    return {id(module) for module in modules()} if callable(modules) else set()


def matmul_weights(model: Any) -> tuple[int, int]:
    """(trainable, frozen) weights of the matmuls a token goes through, from the module tree (meta
    tensors do: only shapes are read). A tied output head counts: the head is a matmul, its input an
    embedding lookup. A wrapper whose weight is its base layer's (PEFT's lora.Linear) is not a Linear.
    A prompt encoder's layers (`_per_step_modules`) are left out: no token goes through them."""
    trainable = frozen = 0
    per_step = _per_step_modules(model)
    for module in model.modules():
        shape = _linear_shape(module)
        if shape is None or id(module) in per_step:
            continue
        size = shape[0] * shape[1]
        if module.weight.requires_grad:
            trainable += size
        else:
            frozen += size
    return trainable, frozen


def attention_shape(config: Any) -> tuple[int, int, int]:
    """(layers, query heads, head width) from a transformers config."""
    text = getattr(config, "text_config", None) or config
    layers = getattr(text, "num_hidden_layers", None) or text.n_layer
    heads = getattr(text, "num_attention_heads", None) or text.n_head
    width = getattr(text, "head_dim", None) or text.hidden_size // heads
    return int(layers), int(heads), int(width)


@dataclass(frozen=True)
class FlopsPerToken:
    trainable_weights: int
    frozen_weights: int
    layers: int
    heads: int
    head_dim: int
    context: float  # T: mean tokens per sequence

    @property
    def attention(self) -> float:
        return 12 * self.layers * self.heads * self.head_dim * self.context

    @property
    def all_trained(self) -> float:
        """6 N + 12 L H Q T (PaLM appendix B)."""
        return 6 * (self.trainable_weights + self.frozen_weights) + self.attention

    @property
    def method(self) -> float:
        """6 N_trainable + 4 N_frozen + 12 L H Q T."""
        return 6 * self.trainable_weights + 4 * self.frozen_weights + self.attention


def flops_per_token(model: Any, context: float) -> FlopsPerToken:
    trainable, frozen = matmul_weights(model)
    layers, heads, head_dim = attention_shape(model.config)
    return FlopsPerToken(trainable, frozen, layers, heads, head_dim, context)


def mfu_metrics(
    flops: FlopsPerToken,
    tokens_per_s: float | None,
    device_name: str | None,
    dtype: str,
    devices: int = 1,
    tf32: bool = False,
) -> tuple[dict[str, Metric], dict[str, Any]]:
    """The metrics of one run (train.flops_per_token, train.model_tflops_per_s, train.mfu, train.mfu_6n)
    and what they were made of (for the record's `model["flops"]`)."""
    tflops, peak, reason = peak_tflops(device_name, dtype, tf32)
    metrics = {
        "train.flops_per_token": Metric(value=flops.method, unit="FLOP/token", higher_is_better=False),
        "train.flops_per_token_6n": Metric(value=flops.all_trained, unit="FLOP/token", higher_is_better=False),
    }
    if tokens_per_s is None:
        reason = "no tokens/s measured"
        metrics["train.model_tflops_per_s"] = Metric.missing("TFLOP/s", True, reason)
    else:
        achieved = flops.method * tokens_per_s / TERA
        metrics["train.model_tflops_per_s"] = Metric(value=achieved, unit="TFLOP/s", higher_is_better=True)
    for name, per_token in (("train.mfu", flops.method), ("train.mfu_6n", flops.all_trained)):
        if tflops is None or tokens_per_s is None:
            metrics[name] = Metric.missing("fraction", True, reason)
        else:
            value = per_token * tokens_per_s / (tflops * TERA * devices)
            metrics[name] = Metric(value=value, unit="fraction", higher_is_better=True)
    info = {
        **asdict(flops),
        "attention_per_token": flops.attention,
        "formula": "6 N_trainable + 4 N_frozen + 12 L H Q T (train.mfu); 6 N + 12 L H Q T (train.mfu_6n)",
        "device": device_name,
        "devices": devices,
        "dtype": "tfloat32" if dtype == "float32" and tf32 else dtype,
        "peak_tflops_per_device": tflops,
        "peak_source": peak.source if peak else None,
        "reason": reason or None,
    }
    return metrics, info


# every metric mfu_metrics gives: (unit, higher is better)
FLOPS_METRICS = {
    "train.flops_per_token": ("FLOP/token", False),
    "train.flops_per_token_6n": ("FLOP/token", False),
    "train.model_tflops_per_s": ("TFLOP/s", True),
    "train.mfu": ("fraction", True),
    "train.mfu_6n": ("fraction", True),
}


def _missing(reason: str) -> tuple[dict[str, Metric], dict[str, Any]]:
    """Every FLOPs metric recorded missing with the reason, none left out."""
    metrics = {name: Metric.missing(unit, better, reason) for name, (unit, better) in FLOPS_METRICS.items()}
    return metrics, {"reason": reason}


def record_flops(
    model: Any,
    device: str,
    dtype: str,
    tokens_per_s: float | None,
    tokens: int,
    samples: int,
    devices: int,
    objective: str = "sft",
) -> tuple[dict[str, Metric], dict[str, Any]]:
    """What the worker calls after training; T is the mean of the tokens per sequence trained on. A model
    whose shape cannot be read gives missing metrics with the reason, never a failed run."""
    import torch

    if objective != "sft":  # a DPO step also runs a reference model, RLHF generates: not 6N per token
        return _missing(f"counted for supervised (sft) steps only; a {objective} step does other work per token")
    name, tf32 = None, False
    if device.startswith("cuda") and torch.cuda.is_available():
        name = torch.cuda.get_device_name(torch.device(device))
        tf32 = bool(torch.backends.cuda.matmul.allow_tf32)
    try:
        flops = flops_per_token(model, tokens / samples if samples else 0.0)
    except (AttributeError, TypeError, ZeroDivisionError) as error:
        return _missing(f"FLOPs per token not countable for this model: {error}")
    metrics, info = mfu_metrics(flops, tokens_per_s, name, dtype, devices, tf32)
    info["attention"] = getattr(model.config, "_attn_implementation", None)  # sdpa, eager, flash_attention_2
    return metrics, info
