"""DPO's and RLHF's memory at real shapes, on this CPU or a GPU, against bench estimate (issue 27
item 4: every model a preference method holds, and the peak of its step).

    python scripts/preference_shapes.py --out DIR [--objective dpo|rlhf] [--only smollm2-135m] [--tiny]

Each shape is built from its config in suites/model-configs with random weights (memory does not
depend on weight values), prepared by the harness's strategy (LoRA, or full fine-tuning with its
reference copy) and trained for two steps, each phase's, through bench.training.train as every run
trains it, in bfloat16: DPO with TRL's DPOTrainer; RLHF with its two phases, the reward model with
RewardTrainer (chosen and rejected, twice the batch), then the policy with RLOO on its own
generations (`max_new_tokens` each). The pairs are a prompt and two completions of one token a word
(" the", " a"): a DPO sequence is exactly the row's length, an RLHF one at most that. Per shape it
records, as JSON in `<objective>-shapes.json`: the peak over the training (trainer set-up included:
the reference copy and the reward model are made there) and, for RLHF, each phase's; the components
counted on the first step of the phase that held the most (bench.measure.components, as every run
records them); the estimate for the device.

The peak is measured as scripts/published_shapes_gpu.py measures it: on CUDA the allocator's peak; on
a CPU the process's resident peak less the resident memory before the model was built, with glibc's
mmap threshold lowered so that freed tensors leave the resident memory. A first training of a
one-layer model loads every library and cache before that baseline is read. A shape whose estimate
does not fit in 80% of the memory available here is recorded as skipped with the reason.

With `--tiny` (one layer, 64 tokens) it runs in seconds, which is how it is tested
(tests/test_estimate_fused_head.py).
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
GENERATIONS = {"num_generations": 4, "max_new_tokens": 4}
# (objective, config folder, options, batch, tokens per sequence, where). DPO's batch is pairs (twice
# the sequences); RLHF's is the policy's sequences (2 prompts x 4 generations), the reward model's
# pairs. The rows marked "any" fit this 23 GiB CPU.
SHAPES: list[tuple[str, str, dict[str, Any], int, int, str]] = [
    ("dpo", "smollm2-135m", LORA, 2, 512, "any"),
    ("dpo", "smollm2-135m", LORA, 4, 512, "any"),
    ("dpo", "smollm2-135m", {}, 2, 512, "any"),
    ("dpo", "llama-3.2-1b", LORA, 1, 256, "any"),
    ("dpo", "llama-3.2-1b", LORA, 4, 1024, "cuda"),
    ("dpo", "llama-3.2-1b", {}, 2, 1024, "cuda"),
    ("rlhf", "smollm2-135m", {**LORA, **GENERATIONS}, 8, 512, "any"),
    ("rlhf", "smollm2-135m", GENERATIONS, 8, 512, "any"),
    ("rlhf", "llama-3.2-1b", {**LORA, **GENERATIONS}, 8, 1024, "cuda"),
]


def pairs(tokenizer: Any, count: int, tokens: int, completion: int) -> Any:
    """`count` pairs: a prompt and completions of `completion` tokens, `tokens` in all with TRL's end
    of sequence."""
    from bench.tasks.preference import PreferenceData, PreferencePair

    prompt = tokens - completion - 1
    made = [PreferencePair(" the" * prompt, " the" * completion, " a" * completion) for _ in range(count)]
    length = len(tokenizer(made[0].prompt + made[0].chosen, add_special_tokens=False).input_ids) + 1
    if length != tokens:
        raise ValueError(f"{tokenizer.name_or_path}: the pairs make {length} tokens, not {tokens}")
    return PreferenceData(made, made[:1], "synthetic")


def train_preference(
    objective: str, config: Any, tokenizer: Any, options: dict[str, Any], batch: int, tokens: int, device: str
) -> Any:
    """Two steps (each phase's) through bench.training.train; returns (the tracker's phase, the outcome)."""
    import torch
    from transformers import AutoModelForCausalLM

    from bench.measure.memory import MemoryTracker
    from bench.spec import Budget, Training
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.training.train import TrainRequest, train

    strategy = STRATEGIES.get(objective)
    parsed = strategy.Options.model_validate({**options, "learning_rate": 1e-5})
    budget = Budget(steps=2, batch_size=batch, seq_len=tokens)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model = strategy.prepare(base.to(device), parsed, PrepareContext(tokenizer, budget, 0, device))
    del base
    completion = getattr(parsed, "max_new_tokens", None) or tokens - tokens // 2
    data = pairs(tokenizer, 2 * batch, tokens, completion)
    with tempfile.TemporaryDirectory() as workdir:
        request = TrainRequest(
            model, tokenizer, objective, None, budget, Training(), parsed, 0, device, Path(workdir), preference=data
        )
        with MemoryTracker("train") as phase:
            outcome = train(request)
    return phase, outcome


def measure(
    objective: str, name: str, options: dict[str, Any], batch: int, tokens: int, device: str, tiny: bool
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    from bench.estimate.model import config_from_file, estimate_run
    from bench.measure.components import COMPONENTS

    config = config_from_file(CONFIGS / name)
    if tiny:
        config.num_hidden_layers = 1
    tokenizer = AutoTokenizer.from_pretrained(CONFIGS / name)
    estimate = estimate_run(
        config, dtype="bfloat16", strategy=objective, options=options, batch_size=batch, tokens=tokens, device=device
    )
    estimated = estimate.components
    row: dict[str, Any] = {"objective": objective, "config": name, "options": options, "batch": batch}
    row |= {"tokens": tokens, "device": device}
    skipped = None if device == "cuda" or tiny else fits_here(estimated)
    if skipped:
        return row | {"status": skipped}
    cuda = device == "cuda"
    gc.collect()
    before = 0 if cuda else in_use_bytes(cuda)
    phase, outcome = train_preference(objective, config, tokenizer, options, batch, tokens, device)
    peak = step_peak_bytes(phase, cuda, before)
    measured = outcome.components
    estimated_peak = estimated.peak() or 0
    row |= {
        "tokens_per_step": outcome.step_tokens,
        "peak_source": "cuda max_memory_allocated" if cuda else "host resident peak over the resident before the model",
        "peak_bytes": peak,
        "components_phase": measured.phase,
        "components_bytes": measured.total(),
        "components": {part: getattr(measured, part) for part in COMPONENTS},
        "estimate_phase": estimated.phase,
        "estimate_bytes": estimated_peak,
        "estimate_activations_bytes": estimated.activations,
        "estimate_fused_head_workspace_bytes": estimated.loss_gradients,
        "estimate_vs_peak_percent": round(100 * (estimated_peak / peak - 1), 2),
    }
    same = estimate.phases.get(measured.phase, estimated) if measured.phase else estimated
    row["estimate_vs_components_percent"] = round(100 * ((same.total() or 0) / measured.total() - 1), 2)
    for part in outcome.phases:  # RLHF: each phase's peak against its own estimate
        part_peak = step_peak_bytes(part.memory, cuda, before)
        part_estimate = estimate.phases[part.phase].peak() or 0
        row[f"{part.phase}_peak_bytes"] = part_peak
        row[f"{part.phase}_estimate_bytes"] = part_estimate
        row[f"{part.phase}_estimate_vs_peak_percent"] = round(100 * (part_estimate / part_peak - 1), 2)
    return row


def run(out: Path, objectives: list[str], only: str | None, tiny: bool) -> list[dict[str, Any]]:
    """Every shape this device takes, in turn; `<objective>-shapes.json` is rewritten after each row."""
    import torch
    from transformers import AutoTokenizer

    from bench.estimate.model import config_from_file

    device = "cuda" if torch.cuda.is_available() else "cpu"
    mapping = None if device == "cuda" else map_large_allocations()
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for objective in objectives:
        warm = copy.deepcopy(config_from_file(CONFIGS / "smollm2-135m"))
        warm.num_hidden_layers = 1
        tokenizer = AutoTokenizer.from_pretrained(CONFIGS / "smollm2-135m")
        options = {**LORA, **(GENERATIONS if objective == "rlhf" else {})}
        train_preference(objective, warm, tokenizer, options, 4, 64, device)  # loads every library first
        written = []
        for shape_objective, name, options, batch, tokens, where in SHAPES:
            if shape_objective != objective or (only and name != only) or (where == "cuda" and device != "cuda"):
                continue
            tokens = min(tokens, 64) if tiny else tokens
            started = time.perf_counter()
            try:
                row = measure(objective, name, options, batch, tokens, device, tiny)
            except torch.OutOfMemoryError as error:
                row = {"objective": objective, "config": name, "options": options, "batch": batch, "tokens": tokens}
                row["status"] = f"out of memory: {error}"
            row |= {"tiny": tiny, "allocator_note": mapping, "seconds": round(time.perf_counter() - started, 1)}
            written.append(row)
            print(json.dumps(row), flush=True)
            (out / f"{objective}-shapes.json").write_text(json.dumps(written, indent=2) + "\n", "utf-8")
            gc.collect()
            if device == "cuda":
                torch.cuda.empty_cache()
        rows += written
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for <objective>-shapes.json")
    parser.add_argument("--objective", action="append", choices=["dpo", "rlhf"], help="only these (repeatable)")
    parser.add_argument("--only", help="one config folder name, e.g. smollm2-135m")
    parser.add_argument("--tiny", action="store_true", help="one-layer models, sequences of 64 tokens (a check)")
    args = parser.parse_args()
    run(args.out, args.objective or ["dpo", "rlhf"], args.only, args.tiny)


if __name__ == "__main__":
    main()
