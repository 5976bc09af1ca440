"""Ground truth for the published table (issue 27 item 2): transformers itself at the shapes of
scripts/estimate_published.py, on a GPU, against bench.estimate.model.

    python scripts/published_shapes_gpu.py --out results/published-shapes-gpu [--only phi-1.5]

Each shape is built from its config in suites/model-configs with random weights (memory does not
depend on weight values), prepared by the harness's own strategy (LoRA, QLoRA, full), and trained
for two AdamW steps on random token ids of the row's shape, in bfloat16 without autocast as
bench.training.train runs it. Per shape it records, as JSON: CUDA's allocated peak over the two steps
(`torch.cuda.max_memory_allocated`, reset before the first), the components counted from the
tensors on the first step (bench.measure.components, as every run records them), and the estimate
with both errors. QLoRA's adapters are cast to bfloat16 as TRL's SFTTrainer casts them.

Without CUDA it runs on CPU with `--tiny` (a 2-layer config of each family) so the script is tested
(tests/test_estimate_architectures.py); CUDA figures are then null with the reason, never 0.
A shape that does not fit the GPU is recorded as "out of memory", not skipped.
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
# (config folder, strategy, options, batch sizes, tokens per sequence): the published rows' shapes
SHAPES: list[tuple[str, str, dict[str, Any], list[int], int]] = [
    ("phi-1.5", "lora", {**QV, "target_modules": ["q_proj", "v_proj"]}, [1, 2, 4], 1044),
    ("phi-1.5", "qlora", {**QV, **QLORA, "target_modules": ["q_proj", "v_proj"]}, [1, 2, 4], 1044),
    ("phi-1.5", "full", {}, [1, 2, 4], 1044),
    ("stablelm-base-alpha-3b", "lora", {**QV, "target_modules": ["query_key_value"]}, [1, 2, 4], 1034),
    ("stablelm-base-alpha-3b", "qlora", {**QV, **QLORA, "target_modules": ["query_key_value"]}, [1, 2, 4], 1034),
    ("llama-2-7b", "lora", {**QV, "target_modules": ["q_proj", "v_proj"]}, [1, 2], 1304),
    ("llama-2-7b", "qlora", {**QV, **QLORA, "target_modules": ["q_proj", "v_proj"]}, [1, 2, 4], 1304),
    ("mistral-7b", "lora", {"r": 32, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]}, [2], 512),
    ("gemma-2b", "lora", {"r": 8, "alpha": 16, "dropout": 0.1, "target_modules": "all-linear"}, [1, 2, 4], 512),
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


def measure_shape(
    config: Any, strategy: str, options: dict[str, Any], batch: int, tokens: int, device: str
) -> dict[str, Any]:
    """Two training steps of the prepared model at `batch` x `tokens`; the first step's components,
    the allocator's peak over both, and the estimate for the same shape."""
    import torch
    from transformers import AutoModelForCausalLM

    from bench.estimate.model import _adapters_to_bfloat16, estimate_run
    from bench.measure.component_probe import ComponentProbe
    from bench.spec import Budget
    from bench.strategies import STRATEGIES, PrepareContext

    cuda = device.startswith("cuda")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    chosen = STRATEGIES.get(strategy)
    context = PrepareContext(None, Budget(batch_size=batch, seq_len=tokens), 0, device)
    model = chosen.prepare(base.to(device), chosen.Options.model_validate(options), context)
    if strategy == "qlora":
        _adapters_to_bfloat16(model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    ids = torch.randint(0, config.vocab_size, (batch, tokens), device=device)
    model.train()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    probe = ComponentProbe()
    for step in range(2):
        if step == 0:
            probe.step_begin(model)
        model(input_ids=ids, labels=ids).loss.backward()
        if step == 0:
            probe.before_optimizer(model)
        optimizer.step()
        if step == 0:
            probe.step_end(optimizer)
        optimizer.zero_grad(set_to_none=True)
    peak = torch.cuda.max_memory_allocated() if cuda else None
    measured = probe.components
    estimate = estimate_run(
        config, dtype="bfloat16", strategy=strategy, options=options, batch_size=batch, tokens=tokens
    )
    total = estimate.components.total() or 0
    return {
        "strategy": strategy,
        "batch": batch,
        "tokens": tokens,
        "cuda_allocated_peak_bytes": peak,
        "cuda_reason": None if cuda else "no CUDA device: components only",
        "components_bytes": measured.total(),
        "components": {name: getattr(measured, name) for name in ("weights_trainable", "weights_frozen", "gradients")}
        | {"optimizer": measured.optimizer, "activations": measured.activations},
        "estimate_bytes": total,
        "estimate_vs_peak_percent": None if not peak else round(100 * (total / peak - 1), 2),
        "estimate_vs_components_percent": round(100 * (total / measured.total() - 1), 2),
    }


def run(out: Path, only: str | None, tiny: bool) -> list[dict[str, Any]]:
    import torch

    device = "cuda" if torch.cuda.is_available() else "cpu"
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name, strategy, options, batches, tokens in SHAPES:
        if only and name != only:
            continue
        config = load_config(name, tiny)
        for batch in batches:
            started = time.perf_counter()
            try:
                row = measure_shape(config, strategy, options, batch, min(tokens, 64) if tiny else tokens, device)
            except torch.OutOfMemoryError as error:
                row = {"strategy": strategy, "batch": batch, "tokens": tokens, "status": f"out of memory: {error}"}
            row |= {"config": name, "device": device, "tiny": tiny, "seconds": round(time.perf_counter() - started, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
    (out / "published-shapes.json").write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for published-shapes.json")
    parser.add_argument("--only", help="one config folder name, e.g. phi-1.5")
    parser.add_argument("--tiny", action="store_true", help="2-layer configs of each family (CPU check)")
    args = parser.parse_args()
    run(args.out, args.only, args.tiny)


if __name__ == "__main__":
    main()
