"""The training path against a bare PyTorch loop doing the same optimizer steps on the same batches
of the same model, and our trackers on against off. One process, one thread, all variants in the
same session. Two shapes of tiny-llama training, 60 steps each:
- `smoke`: the smoke suite's budget, 8 x 32 on cipher examples (about 40 real tokens a batch, so
  fixed per-step costs dominate);
- `full-64`: 8 x 64 on BoolQ passages truncated at 64 tokens (full sequences, issue 13's shape).

Run with: pytest tests/benchmarks/test_training_path.py --benchmark-enable --benchmark-only
Ratios (docs/performance.md): harness / bare and harness / harness-without-trackers, from the
medians of the rounds (each round trains a fresh copy of the model for STEPS steps). `bare` is handed
its batches ready-made; `bare-collating` makes each with the trainer's collator inside the loop, as a
hand-written loop over a DataLoader would.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

STEPS = 60
REPO = Path(__file__).resolve().parents[2]


SHAPES = {
    "smoke": {"task": {"name": "cipher", "source": "synthetic"}, "seq_len": 32},
    "full-64": {"task": {"name": "boolq", "source": "olmo"}, "seq_len": 64},
}
# For a GPU only (scripts/training_path.py --device cuda; issue 28): suites/gpu-1b.yaml's model, data,
# dtype and batch, random weights. Not in the pytest parameters: one step is ~8 GFLOP x 8,192 tokens.
LARGE_SHAPES = {
    "llama-1b-1024": {
        "task": {"name": "long-text", "source": "jsonl", "path": str(REPO / "suites/data/long-text.jsonl")},
        "seq_len": 1024,
        "batch_size": 8,
        "model_config": str(REPO / "suites/model-configs/llama-3.2-1b"),
        "dtype": "bfloat16",
        "steps": 20,
    },
}
ALL_SHAPES = {**SHAPES, **LARGE_SHAPES}


@pytest.fixture(scope="module", params=list(SHAPES))
def setting(request, tiny_folder: Path, tmp_path_factory):
    return make_setting(request.param, tiny_folder, tmp_path_factory.mktemp("train"))


def make_setting(
    shape_name: str,
    tiny_folder: Path,
    workdir: Path,
    device: str = "cpu",
    model_config: str | None = None,
    overrides: dict | None = None,
) -> dict:
    """The model, task, budget and batches of one shape (also used by scripts/training_path.py). A shape
    with a `model_config` (or `model_config` given) trains that config's model with random weights;
    `overrides` replaces the shape's steps, batch_size or seq_len."""
    import gc
    import itertools

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.models.load import _random_model
    from bench.suite import Budget, TaskSpec, Training
    from bench.tasks import load_task
    from bench.training.sft import sft_trainer
    from bench.training.train import trainer_arguments

    torch.set_num_threads(1)
    gc.freeze()  # as the worker does before training (bench/run/worker.py)
    shape = {**ALL_SHAPES[shape_name], **(overrides or {})}
    folder = model_config or shape.get("model_config")
    if folder:
        model = _random_model(folder, shape.get("dtype", "float32")).to(device)
        tokenizer = AutoTokenizer.from_pretrained(folder)
    else:
        model = AutoModelForCausalLM.from_pretrained(tiny_folder).to(device)
        tokenizer = AutoTokenizer.from_pretrained(tiny_folder)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    task = load_task(TaskSpec(**shape["task"], train_size=2000, eval_limit=100))
    steps = shape.get("steps", STEPS)
    budget = Budget(steps=steps, batch_size=shape.get("batch_size", 8), seq_len=shape["seq_len"])
    arguments = trainer_arguments(budget, Training(), 1e-3, 0, device, workdir)
    # the examples of each batch as the harness's trainer draws them (cycled as it does when an epoch
    # is shorter than STEPS, as BoolQ's training split is), and their batches made by its collator once
    trainer = sft_trainer(copy.deepcopy(model), tokenizer, task, arguments, budget)
    drawn = itertools.islice(itertools.cycle(list(trainer.get_train_dataloader().batch_sampler)), steps)
    examples = [[trainer.train_dataset[index] for index in indices] for indices in drawn]
    return {
        "shape": shape_name,
        "device": device,
        "model": model,
        "tokenizer": tokenizer,
        "task": task,
        "budget": budget,
        "workdir": workdir,
        "examples": examples,
        "collate": trainer.data_collator,
        "batches": [_model_inputs(trainer.data_collator(rows)) for rows in examples],
    }


def _model_inputs(batch: dict) -> dict:
    return {key: value for key, value in batch.items() if key in ("input_ids", "attention_mask", "labels")}


def _bare(model, batches, device: str = "cpu") -> None:
    import torch

    trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trained, lr=1e-3, weight_decay=0.0)
    model.train()
    for batch in batches:  # made before the clock starts (bare), or by the collator in the loop (bare-collating)
        batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}  # CPU: the same tensor
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trained, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)


def _trainer(model, setting, trackers: bool):
    """The harness's SFT trainer as bench/training/sft.py builds it, with or without our tracker."""
    from transformers.trainer_callback import PrinterCallback

    from bench.suite import Training
    from bench.training.measuring import MeasuringCallback
    from bench.training.sft import sft_trainer
    from bench.training.train import trainer_arguments

    budget = setting["budget"]
    arguments = trainer_arguments(budget, Training(), 1e-3, 0, setting.get("device", "cpu"), setting["workdir"])
    trainer = sft_trainer(model, setting["tokenizer"], setting["task"], arguments, budget)
    trainer.remove_callback(PrinterCallback)
    if trackers:
        trainer.add_callback(MeasuringCallback(budget, budget.batch_size, lambda event: None))
    return trainer


def _harness(trainer, trackers: bool) -> None:
    from bench.measure.contention import ContentionMonitor
    from bench.measure.memory import MemoryTracker

    if not trackers:
        _run(trainer)
        return
    with MemoryTracker("train"), ContentionMonitor(1):
        _run(trainer)


def _run(trainer) -> None:
    from bench.training.train import train_with_less_overhead

    train_with_less_overhead(trainer)  # as bench.training.train._run trains


VARIANTS = ["bare", "bare-collating", "harness", "harness-no-trackers"]


STRATEGIES = ["full", "lora"]


def subject_for(setting: dict, variant: str, strategy: str = "full"):
    """Not timed: a fresh copy of the model (with LoRA's adapters: the lora strategy's defaults), and
    for the harness its trainer."""
    model = copy.deepcopy(setting["model"])
    if strategy == "lora":
        from bench.strategies import STRATEGIES as REGISTRY
        from bench.strategies import PrepareContext

        lora = REGISTRY.get("lora")
        context = PrepareContext(setting["tokenizer"], setting["budget"], 0, setting.get("device", "cpu"))
        model = lora.prepare(model, lora.Options(learning_rate=1e-3), context)
    return model if variant.startswith("bare") else _trainer(model, setting, variant == "harness")


def train_once(setting: dict, variant: str, subject) -> None:
    """Timed: the shape's optimizer steps (STEPS unless it says) of `variant` on `subject` (from subject_for)."""
    device = setting.get("device", "cpu")
    if variant == "bare":
        _bare(subject, setting["batches"], device)
    elif variant == "bare-collating":
        _bare(subject, (_model_inputs(setting["collate"](rows)) for rows in setting["examples"]), device)
    else:
        _harness(subject, variant == "harness")


@pytest.mark.benchmark(group="training-path")
@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("variant", VARIANTS)
def test_training_path(benchmark, setting, variant: str, strategy: str):
    benchmark.group = f"training-path {setting['shape']} {strategy}"
    benchmark.pedantic(
        lambda subject: train_once(setting, variant, subject),
        setup=lambda: ((subject_for(setting, variant, strategy),), {}),
        rounds=7,
        iterations=1,
        warmup_rounds=1,
    )
    benchmark.extra_info["steps"] = STEPS
    benchmark.extra_info["shape"] = setting["shape"]
    benchmark.extra_info["strategy"] = strategy
