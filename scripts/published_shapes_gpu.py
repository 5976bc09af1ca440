"""Ground truth for the published table (issue 27 item 2): transformers itself at the shapes of
scripts/estimate_published.py, on a GPU or on this CPU, against bench.estimate.model.

    python scripts/published_shapes_gpu.py --out results/published-shapes-gpu [--only phi-1.5] [--strategy lora]

Each shape is built from its config in suites/model-configs with random weights (memory does not
depend on weight values), prepared by the harness's own strategy (LoRA, QLoRA, full), and trained
for two AdamW steps on random token ids of the row's shape, in bfloat16 without autocast as
bench.training.train runs it. QLoRA's adapters are cast to bfloat16 as TRL's SFTTrainer casts them,
and the bf16 model it was quantised from is dropped before the steps (the peak is the trained model's).
Per shape it records, as JSON: the peak over the two steps, the components counted from the tensors
on the first step (bench.measure.components, as every run records them), and the estimate with both
errors (against the peak: the estimate's peak, Components.peak; against the components: its total,
which leaves out the loss's gradients no hook counts). The peak is, on CUDA, the allocator's
(`torch.cuda.max_memory_allocated`, reset before the first step); on a CPU, the process's resident
peak over the steps (/proc/self/status VmHWM, reset before the first step) less the resident memory
before the model was built. For that the script sets glibc's mmap threshold to 64 KiB first, so
that every tensor larger than that is mapped on its own and handed back when freed: the resident
peak then follows the live tensors, as the allocated peak does on CUDA. What stays resident from
building and preparing the model beyond its counted weights is recorded beside it
(`resident_leftover_bytes`), and the peak without it.

With `--tiny` (a 2-layer config of each family) it runs in seconds, which is how it is tested
(tests/test_estimate_architectures.py). On a CPU at full size a shape whose estimate does not fit
in the memory available is recorded as skipped with the reason, never run into the OOM killer; on
CUDA a shape that does not fit is recorded as "out of memory". CUDA figures on a CPU are null with
the reason, never 0.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path
from typing import Any

CONFIGS = Path(__file__).resolve().parents[1] / "suites" / "model-configs"
QV = {"r": 8, "alpha": 16, "dropout": 0.05}
QLORA = {"bits": 4, "quant_type": "nf4", "double_quant": False, "compute_dtype": "bfloat16"}
QLORA_DQ = {**QLORA, "double_quant": True}  # LitGPT's "nf4-dq" rows
# (config folder, strategy, options, batch sizes, tokens per sequence): the published rows' shapes
SHAPES: list[tuple[str, str, dict[str, Any], list[int], int]] = [
    ("phi-1.5", "lora", {**QV, "target_modules": ["q_proj", "v_proj"]}, [1, 2, 4], 1044),
    ("phi-1.5", "qlora", {**QV, **QLORA, "target_modules": ["q_proj", "v_proj"]}, [1, 2, 4], 1044),
    ("phi-1.5", "full", {}, [1, 2, 4], 1044),
    ("stablelm-base-alpha-3b", "lora", {**QV, "target_modules": ["query_key_value"]}, [1, 2, 4], 1034),
    ("stablelm-base-alpha-3b", "qlora", {**QV, **QLORA, "target_modules": ["query_key_value"]}, [1, 2, 4], 1034),
    ("llama-2-7b", "lora", {**QV, "target_modules": ["q_proj", "v_proj"]}, [1, 2], 1304),
    ("llama-2-7b", "qlora", {**QV, **QLORA, "target_modules": ["q_proj", "v_proj"]}, [1, 2, 4], 1304),
    ("phi-1.5", "qlora", {**QV, **QLORA_DQ, "target_modules": ["q_proj", "v_proj"]}, [1], 1044),
    ("stablelm-base-alpha-3b", "qlora", {**QV, **QLORA_DQ, "target_modules": ["query_key_value"]}, [1], 1034),
    ("llama-2-7b", "qlora", {**QV, **QLORA_DQ, "target_modules": ["q_proj", "v_proj"]}, [1], 1304),
    ("mistral-7b", "lora", {"r": 32, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}, [2], 512),
    ("gemma-2b", "lora", {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": "all-linear"}, [1, 2, 4], 512),
    # over this 24 GiB machine's memory at full size: on a CPU with --set num_hidden_layers=K (docs/memory.md)
    ("llama-2-13b", "lora", {**QV, "target_modules": ["q_proj", "v_proj"]}, [1], 1304),
    ("llama-2-13b", "qlora", {**QV, **QLORA, "target_modules": ["q_proj", "v_proj"]}, [1], 1304),
    ("llama-2-13b", "qlora", {**QV, **QLORA_DQ, "target_modules": ["q_proj", "v_proj"]}, [1], 1304),
    ("llama-3.2-3b", "full", {}, [2], 4096),  # torchtune's packed row
]
TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4}


def load_config(name: str, tiny: bool) -> Any:
    from bench.estimate.model import config_from_file

    config = config_from_file(CONFIGS / name)
    if tiny:
        for key, value in {**TINY, "vocab_size": 512}.items():
            setattr(config, key, value)
        if getattr(config, "head_dim", None):
            config.head_dim = TINY["hidden_size"] // TINY["num_attention_heads"]
        if getattr(config, "num_key_value_heads", None):
            config.num_key_value_heads = min(config.num_key_value_heads, TINY["num_attention_heads"])
    return config


GIB = 2**30
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)


def map_large_allocations() -> str | None:
    """glibc: every allocation over 64 KiB gets its own mapping, handed back when freed (module
    docstring). Returns the reason when this C library cannot be told so."""
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        if libc.mallopt(M_MMAP_THRESHOLD, 64 * 1024) != 1:
            return "mallopt(M_MMAP_THRESHOLD) refused"
    except (OSError, AttributeError) as error:
        return f"no glibc mallopt here ({error}): the resident peak keeps freed memory"
    return None


def in_use_bytes(cuda: bool) -> int:
    """CUDA's allocated bytes, or this process's resident memory (bench.measure.memory)."""
    import torch

    from bench.measure.memory import MIB, current_rss_mib

    if cuda:
        return torch.cuda.memory_allocated()
    rss = current_rss_mib()
    if rss is None:
        raise RuntimeError("VmRSS missing from /proc/self/status: no resident peak on this system")
    return round(rss * MIB)


def step_peak_bytes(phase: Any, cuda: bool, before_model: int) -> int:
    """The peak a bench.measure.memory.MemoryTracker saw over the steps: CUDA's allocated peak, or the
    resident peak less what was resident before the model was built (module docstring)."""
    from bench.measure.memory import MIB

    peak, reason = (
        (phase.cuda_allocated_peak_mib, phase.cuda_reason) if cuda else (phase.host_peak_mib, phase.host_reason)
    )
    if peak is None:
        raise RuntimeError(f"no peak over the steps: {reason}")
    return round(peak * MIB) - (0 if cuda else before_model)


def estimated(config: Any, strategy: str, options: dict[str, Any], batch: int, tokens: int) -> Any:
    """bench.estimate.model's Components for the shape, in bfloat16 as the steps run."""
    from bench.estimate.model import estimate_run

    return estimate_run(
        config, dtype="bfloat16", strategy=strategy, options=options, batch_size=batch, tokens=tokens
    ).components


def measure_shape(
    config: Any,
    strategy: str,
    options: dict[str, Any],
    batch: int,
    tokens: int,
    device: str,
    estimate: Any = None,
) -> dict[str, Any]:
    """Two training steps of the prepared model at `batch` x `tokens`; the first step's components,
    the peak over both (step_peak_bytes), and the estimate for the same shape (`estimate`, when
    already made)."""
    import torch
    from transformers import AutoModelForCausalLM

    from bench.estimate.model import _adapters_to_bfloat16
    from bench.measure.component_probe import ComponentProbe
    from bench.measure.memory import MemoryTracker
    from bench.spec import Budget
    from bench.strategies import STRATEGIES, PrepareContext

    estimate = estimated(config, strategy, options, batch, tokens) if estimate is None else estimate
    cuda = device.startswith("cuda")
    gc.collect()
    before_model = 0 if cuda else in_use_bytes(cuda)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    chosen = STRATEGIES.get(strategy)
    context = PrepareContext(None, Budget(batch_size=batch, seq_len=tokens), 0, device)
    model = chosen.prepare(base.to(device), chosen.Options.model_validate(options), context)
    del base  # QLoRA's model is a quantised copy: the bf16 model it came from is no part of the run
    if strategy == "qlora":
        _adapters_to_bfloat16(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, config.vocab_size, (batch, tokens), device=device)
    model.train()
    probe = ComponentProbe()
    gc.collect()
    at_steps = in_use_bytes(cuda) - before_model
    with MemoryTracker("train") as phase:  # resets the resident high-water mark and CUDA's peak
        for step in range(2):
            if step == 0:
                probe.step_begin(model)
            # no cache, as the harness trains (TRL and bench/training/sft.py pass use_cache=False): with one,
            # a fused query-key-value layer's keys and values are copied into it (GPT-NeoX: 14% more kept)
            model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
            if step == 0:
                probe.before_optimizer(model)
            optimizer.step()
            if step == 0:
                probe.step_end(optimizer)
            optimizer.zero_grad(set_to_none=True)
    peak_bytes = step_peak_bytes(phase, cuda, before_model)
    measured = probe.components
    # what is in use beyond the counted weights when the steps start: leftovers of building and
    # preparing the model (allocator caches, the random ids), not part of what the estimate covers
    leftover = max(at_steps - measured.weights_trainable - measured.weights_frozen, 0)
    steps_peak = peak_bytes - leftover
    return {
        "strategy": strategy,
        "batch": batch,
        "tokens": tokens,
        "peak_source": "cuda max_memory_allocated" if cuda else "host resident peak over the resident before the model",
        "peak_bytes": peak_bytes,
        "resident_leftover_bytes": leftover,
        "peak_without_leftover_bytes": steps_peak,
        "components_bytes": measured.total(),
        "components": {name: getattr(measured, name) for name in ("weights_trainable", "weights_frozen", "gradients")}
        | {"optimizer": measured.optimizer, "activations": measured.activations},
        "estimate_bytes": estimate.peak(),
        "estimate_loss_gradients_bytes": estimate.loss_gradients,
        "estimate_vs_peak_percent": round(100 * ((estimate.peak() or 0) / steps_peak - 1), 2),
        # like for like: what the saved-tensor hooks count, without the loss's gradients they cannot see
        "estimate_vs_components_percent": round(100 * ((estimate.total() or 0) / measured.total() - 1), 2),
    }


def fits_here(estimate: Any, fraction: float = 0.8) -> str | None:
    """On a CPU, the reason to skip a shape whose estimated peak is over `fraction` of the memory available."""
    import psutil

    peak = estimate.peak() or 0
    available = psutil.virtual_memory().available
    if peak > fraction * available:
        share = f"{100 * fraction:.0f}%"
        return f"skipped: estimate {peak / GIB:.1f} GiB > {share} of the {available / GIB:.1f} GiB available here"
    return None


def run(
    out: Path,
    only: str | None,
    tiny: bool,
    strategies: list[str] | None = None,
    overrides: dict[str, Any] | None = None,
    double_quant: bool | None = None,
    batch_sizes: list[int] | None = None,
    fit_fraction: float = 0.8,
) -> list[dict[str, Any]]:
    """Every selected shape in turn; published-shapes.json is rewritten after each row, so an
    interrupted run keeps the rows it finished."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    mapping = None if device == "cuda" else map_large_allocations()
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, strategy, options, batches, tokens in SHAPES:
        if (only and name != only) or (strategies and strategy not in strategies):
            continue
        if double_quant is not None and options.get("double_quant", False) != double_quant:
            continue
        config = load_config(name, tiny)
        for key, value in (overrides or {}).items():
            setattr(config, key, value)
        tokens = min(tokens, 64) if tiny else tokens
        for batch in [b for b in batches if not batch_sizes or b in batch_sizes]:
            started = time.perf_counter()
            estimate = estimated(config, strategy, options, batch, tokens)
            skipped = None if device == "cuda" or tiny else fits_here(estimate, fit_fraction)
            try:
                row = (
                    {"status": skipped}
                    if skipped
                    else measure_shape(config, strategy, options, batch, tokens, device, estimate)
                )
            except torch.OutOfMemoryError as error:
                row = {"status": f"out of memory: {error}"}
            row = {"config": name, "strategy": strategy, "options": options, "batch": batch, "tokens": tokens, **row}
            row |= {"overrides": overrides or {}, "device": device, "tiny": tiny, "allocator_note": mapping}
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
            (out / "published-shapes.json").write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for published-shapes.json")
    parser.add_argument("--only", help="one config folder name, e.g. phi-1.5")
    parser.add_argument(
        "--strategy", action="append", choices=["lora", "qlora", "full"], help="only these (repeatable)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field, e.g. hidden_act=gelu_pytorch_tanh (repeatable)",
    )
    parser.add_argument("--tiny", action="store_true", help="2-layer configs of each family (CPU check)")
    parser.add_argument(
        "--double-quant",
        choices=["yes", "no"],
        help="only the QLoRA shapes with (yes) or the shapes without (no) double quantisation",
    )
    parser.add_argument("--batch", type=int, action="append", help="only these micro-batch sizes (repeatable)")
    parser.add_argument(
        "--fit-fraction",
        type=float,
        default=0.8,
        help="on a CPU, run a shape only if its estimated peak is under this share of the memory available "
        "(default 0.8; above it the OOM killer, not the script, may end the run)",
    )
    args = parser.parse_args()
    if not 0 < args.fit_fraction <= 1:
        parser.error(f"--fit-fraction {args.fit_fraction}: give a share of the memory available, in (0, 1]")
    overrides = {}
    for item in args.set:
        key, separator, value = item.partition("=")
        if not separator or not key:
            parser.error(f"--set {item!r}: give KEY=VALUE")
        try:
            overrides[key] = json.loads(value)  # numbers and booleans as such: num_hidden_layers=4
        except json.JSONDecodeError:
            overrides[key] = value
    double_quant = None if args.double_quant is None else args.double_quant == "yes"
    run(args.out, args.only, args.tiny, args.strategy, overrides, double_quant, args.batch, args.fit_fraction)


if __name__ == "__main__":
    main()
