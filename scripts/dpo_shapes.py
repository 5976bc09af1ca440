"""DPO's memory at real shapes, on this CPU or a GPU, against bench estimate (issue 27 item 4: every
model a preference method holds, and the peak of its step).

    python scripts/dpo_shapes.py --out DIR [--only smollm2-135m] [--tiny]

With `--tiny` (one layer, 64 tokens) it runs in seconds, which is how it is tested (tests/test_estimate_fused_head.py).
Each shape is built from its config in suites/model-configs with random weights (memory does not
depend on weight values), prepared by the harness's dpo strategy (LoRA, or full fine-tuning with its
reference copy), and trained for two steps through bench.training.train, TRL's DPOTrainer as every
run trains it, in bfloat16. The pairs are a prompt and two completions of one token a word (" the",
" a"), so every sequence is exactly the row's length. Per shape it records, as JSON: the peak over the
training (trainer set-up included: the reference copy is made there), the components counted on the
first step (bench.measure.components, as every run records them) and the estimate for the device.

The peak is measured as scripts/published_shapes_gpu.py measures it: on CUDA the allocator's peak; on
a CPU the process's resident peak less the resident memory before the model was built, with glibc's
mmap threshold lowered so that freed tensors leave the resident memory. A first training of a
one-layer model loads every library and cache before that baseline is read. A shape whose estimate
does not fit in 80% of the memory available here is recorded as skipped with the reason.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from published_shapes_gpu import (  # noqa: E402  (a sibling script)
    CONFIGS,
    fits_here,
    in_use_bytes,
    map_large_allocations,
    step_peak_bytes,
)

LORA = {"lora": {"r": 8, "alpha": 16}}
# (config folder, options, batch of pairs, tokens per sequence, where): CPU rows fit 23 GiB
SHAPES: list[tuple[str, dict[str, Any], int, int, str]] = [
    ("smollm2-135m", LORA, 2, 512, "any"),
    ("smollm2-135m", LORA, 4, 512, "any"),
    ("smollm2-135m", {}, 2, 512, "any"),
    ("llama-3.2-1b", LORA, 1, 256, "any"),
    ("llama-3.2-1b", LORA, 4, 1024, "cuda"),
    ("llama-3.2-1b", {}, 2, 1024, "cuda"),
]


def pairs(tokenizer: Any, count: int, tokens: int) -> Any:
    """`count` pairs whose prompt and completion make `tokens` tokens with TRL's end of sequence."""
    from bench.tasks.preference import PreferenceData, PreferencePair

    half = tokens // 2
    made = [PreferencePair(" the" * (half - 1), " the" * (tokens - half), " a" * (tokens - half)) for _ in range(count)]
    length = len(tokenizer(made[0].prompt + made[0].chosen, add_special_tokens=False).input_ids) + 1
    if length != tokens:
        raise ValueError(f"{tokenizer.name_or_path}: the pairs make {length} tokens, not {tokens}")
    return PreferenceData(made, made[:1], "synthetic")


def train_dpo(config: Any, tokenizer: Any, options: dict[str, Any], batch: int, tokens: int, device: str) -> Any:
    """Two DPO steps through bench.training.train; returns (the tracker's phase, the outcome)."""
    import torch
    from transformers import AutoModelForCausalLM

    from bench.measure.memory import MemoryTracker
    from bench.spec import Budget, Training
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.training.train import TrainRequest, train

    strategy = STRATEGIES.get("dpo")
    parsed = strategy.Options.model_validate({**options, "learning_rate": 1e-5})
    budget = Budget(steps=2, batch_size=batch, seq_len=tokens)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model = strategy.prepare(base.to(device), parsed, PrepareContext(tokenizer, budget, 0, device))
    del base
    data = pairs(tokenizer, 2 * batch, tokens)
    with tempfile.TemporaryDirectory() as workdir:
        request = TrainRequest(
            model, tokenizer, "dpo", None, budget, Training(), parsed, 0, device, Path(workdir), preference=data
        )
        with MemoryTracker("train") as phase:
            outcome = train(request)
    return phase, outcome


def measure(name: str, options: dict[str, Any], batch: int, tokens: int, device: str, tiny: bool) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from bench.estimate.model import config_from_file, estimate_run

    config = config_from_file(CONFIGS / name)
    if tiny:
        config.num_hidden_layers = 1
    tokenizer = AutoTokenizer.from_pretrained(CONFIGS / name)
    estimate = estimate_run(
        config, dtype="bfloat16", strategy="dpo", options=options, batch_size=batch, tokens=tokens, device=device
    ).components
    row: dict[str, Any] = {"config": name, "options": options, "batch": batch, "tokens": tokens, "device": device}
    skipped = None if device == "cuda" or tiny else fits_here(estimate)
    if skipped:
        return row | {"status": skipped}
    cuda = device == "cuda"
    gc.collect()
    before = 0 if cuda else in_use_bytes(cuda)
    phase, outcome = train_dpo(config, tokenizer, options, batch, tokens, device)
    peak = step_peak_bytes(phase, cuda, before)
    measured = outcome.components
    estimated_peak = estimate.peak() or 0
    return row | {
        "tokens_per_step": outcome.step_tokens,
        "peak_source": "cuda max_memory_allocated" if cuda else "host resident peak over the resident before the model",
        "peak_bytes": peak,
        "components_bytes": measured.total(),
        "components": {name: getattr(measured, name) for name in ("weights_trainable", "weights_frozen", "gradients")}
        | {"optimizer": measured.optimizer, "activations": measured.activations, "other_models": measured.other_models},
        "estimate_bytes": estimated_peak,
        "estimate_activations_bytes": estimate.activations,
        "estimate_fused_head_workspace_bytes": estimate.loss_gradients,
        "estimate_vs_peak_percent": round(100 * (estimated_peak / peak - 1), 2),
        "estimate_vs_components_percent": round(100 * ((estimate.total() or 0) / measured.total() - 1), 2),
    }


def run(out: Path, only: str | None, tiny: bool) -> list[dict[str, Any]]:
    """Every shape this device takes, in turn; dpo-shapes.json is rewritten after each row."""
    import torch
    from transformers import AutoTokenizer

    from bench.estimate.model import config_from_file

    device = "cuda" if torch.cuda.is_available() else "cpu"
    mapping = None if device == "cuda" else map_large_allocations()
    out.mkdir(parents=True, exist_ok=True)
    warm = copy.deepcopy(config_from_file(CONFIGS / "smollm2-135m"))
    warm.num_hidden_layers = 1
    train_dpo(warm, AutoTokenizer.from_pretrained(CONFIGS / "smollm2-135m"), LORA, 1, 64, device)  # loads everything
    rows = []
    for name, options, batch, tokens, where in SHAPES:
        if (only and name != only) or (where == "cuda" and device != "cuda"):
            continue
        tokens = min(tokens, 64) if tiny else tokens
        started = time.perf_counter()
        try:
            row = measure(name, options, batch, tokens, device, tiny)
        except torch.OutOfMemoryError as error:
            row = {"config": name, "options": options, "batch": batch, "tokens": tokens}
            row["status"] = f"out of memory: {error}"
        row |= {"tiny": tiny, "allocator_note": mapping, "seconds": round(time.perf_counter() - started, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        (out / "dpo-shapes.json").write_text(json.dumps(rows, indent=2) + "\n", "utf-8")
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for dpo-shapes.json")
    parser.add_argument("--only", help="one config folder name, e.g. smollm2-135m")
    parser.add_argument("--tiny", action="store_true", help="one-layer models, sequences of 64 tokens (a check)")
    args = parser.parse_args()
    run(args.out, args.only, args.tiny)


if __name__ == "__main__":
    main()
