"""The one training path: every strategy trains here, under the suite's budget, with one tracker.

A strategy names its objective; the objective picks the TRL trainer. Adding an objective is one
entry in OBJECTIVES, never a branch on the strategy. An entry returns one trainer, or is a generator
that yields `(phase, trainer, held models)` for a method with several phases (RLHF: reward, then policy);
each phase runs through the same MeasuringCallback (bench/training/measuring.py), under its own
MemoryTracker, with the full budget of steps (see docs/alignment.md). SFT's trainer: bench/training/sft.py.
"""

from __future__ import annotations

import functools
import gc
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers.trainer_callback import PrinterCallback

from bench.measure.memory import MemoryTracker
from bench.registry import Registry
from bench.spec import Budget, Training
from bench.tasks.base import TaskData
from bench.training.measuring import MeasuringCallback, Progress, TrainOutcome
from bench.training.module_walks import walks_listed_once


def trainer_arguments(
    budget: Budget,
    training: Training,
    learning_rate: float,
    seed: int,
    device: str,
    workdir: Path,
    parallel: str = "ddp",
) -> dict[str, Any]:
    """Arguments shared by every TRL config: the matched budget and the shared optimisation."""
    from bench.training.distributed import world_size

    processes = world_size()  # budget.batch_size is global: each process takes its share
    return {
        "output_dir": str(workdir / "trainer"),
        "max_steps": budget.steps,
        "per_device_train_batch_size": budget.batch_size // processes,
        "gradient_accumulation_steps": budget.gradient_accumulation,
        "learning_rate": learning_rate,
        "lr_scheduler_type": training.lr_scheduler,
        "warmup_steps": training.warmup_ratio,  # a float below 1 is a ratio of max_steps
        "weight_decay": training.weight_decay,
        "max_grad_norm": training.max_grad_norm,
        "optim": training.optimizer,
        "seed": seed,
        "data_seed": seed,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "use_cpu": device == "cpu",
        "bf16": False,  # TRL defaults to bf16 and gradient checkpointing; the model's dtype rules here
        "fp16": False,
        "gradient_checkpointing": training.gradient_checkpointing,
        "gradient_checkpointing_kwargs": {"use_reentrant": False},
        "include_num_input_tokens_seen": "non_padding",
        "dataloader_drop_last": True,  # every step sees a full batch
        "disable_tqdm": True,
        **(_parallel_arguments(parallel, device) if processes > 1 else {}),
    }


def _parallel_arguments(parallel: str, device: str) -> dict[str, Any]:
    """Several processes: DDP (the Trainer's default), or FSDP sharding every decoder layer."""
    arguments: dict[str, Any] = {"ddp_backend": "gloo" if device == "cpu" else "nccl"}
    if parallel == "fsdp":
        arguments["fsdp"] = "full_shard auto_wrap"
        arguments["fsdp_config"] = {"use_orig_params": True}
    return arguments


# objective -> its trainer builder: (model, tokenizer, task, arguments, budget, **inputs) -> a trainer, or a
# generator of phases; a new objective is one builder and one line here
OBJECTIVES: Registry[Callable[..., Any]] = Registry("objective")
OBJECTIVES.register("sft", "bench.training.sft:sft_trainer")
OBJECTIVES.register("dpo", "bench.training.alignment:dpo_trainer")
OBJECTIVES.register("rlhf", "bench.training.alignment:rlhf_phases")


def _run(
    trainer: Any,
    budget: Budget,
    progress: Progress,
    phase: str = "train",
    held: Sequence[Any] = (),
    steps_begin: Callable[[], None] = lambda: None,
) -> TrainOutcome:
    """`held`: models the phase keeps beside the trained one; the trainer's own reference copy
    (TRL's `ref_model`, None when the reference is the disabled adapter or precomputed) is added."""
    reference = getattr(trainer, "ref_model", None)
    held = [*held, *([reference] if reference is not None else [])]
    callback = MeasuringCallback(budget, budget.batch_size * budget.gradient_accumulation, progress, held, steps_begin)
    callback.outcome.phase = phase
    trainer.remove_callback(PrinterCallback)  # our tracker reports progress; no raw dicts on stdout
    trainer.add_callback(callback)
    train_with_less_overhead(trainer)
    made = getattr(trainer, "batches_made_ahead", None)
    callback.outcome.truncation = getattr(trainer, "truncation", None)
    callback.outcome.batches_ahead_seconds = made.seconds if made is not None else None
    return callback.outcome


def train_with_less_overhead(trainer: Any) -> None:
    """`trainer.train()` without three per-step costs that leave the results unchanged
    (docs/performance.md). The trainer, its data and model wrappers are long-lived: moving them out
    of the collector's reach keeps the collections during training and accelerate's gc.collect() at
    its end short (smoke shape: 0.64x -> 0.73x of a bare loop). Each run is its own process."""
    gc.freeze()
    cache_package_probes()
    with walks_listed_once(trainer.model):
        trainer.train()


def cache_package_probes() -> None:
    """accelerate asks the file system whether `lomo_optim` is installed twice in every optimizer step
    (`is_lomo_available`, uncached in accelerate 1.x: 0.1-0.3 ms a step); the answer cannot change
    while a run trains, so ask once. Idempotent."""
    import accelerate.optimizer

    probe = accelerate.optimizer.is_lomo_available
    if not hasattr(probe, "cache_info"):
        accelerate.optimizer.is_lomo_available = functools.cache(probe)


@dataclass(frozen=True)
class TrainRequest:
    """One training, handed over whole: the prepared model, what it learns, under which budget and
    optimisation, and the strategy's typed options (their learning_rate is the training's; dpo and
    rlhf read their own fields from them)."""

    model: Any
    tokenizer: Any
    objective: str
    task: TaskData
    budget: Budget
    training: Training
    options: Any  # the strategy's Options (bench.strategies.StrategyOptions or a subclass)
    seed: int
    device: str
    workdir: Path
    progress: Progress = lambda event: None
    preference: Any = None  # PreferenceData, for dpo and rlhf
    parallel: str = "ddp"
    steps_begin: Callable[[], None] = lambda: None  # each phase's trainer calls it as its steps begin


def train(request: TrainRequest) -> TrainOutcome:
    """Train `request.model` through its objective's trainer, measured by one callback."""
    objective, budget, progress = request.objective, request.budget, request.progress
    if objective not in OBJECTIVES:
        raise ValueError(f"no trainer for objective {objective!r} (known: {', '.join(OBJECTIVES)})")
    from bench.strategies.base import refuse_checkpointing

    refuse_checkpointing(request.model, request.training.gradient_checkpointing)
    arguments = trainer_arguments(
        budget, request.training, request.options.learning_rate, request.seed, request.device, request.workdir,
        request.parallel,
    )  # fmt: skip
    artefacts: dict[str, Any] = {}
    built = OBJECTIVES.get(objective)(
        request.model, request.tokenizer, request.task, arguments, budget,
        artefacts=artefacts, preference=request.preference, options=request.options,
    )  # fmt: skip
    if not inspect.isgenerator(built):
        return _run(built, budget, progress, steps_begin=request.steps_begin)
    phases: Iterator[tuple[str, Any, list[Any]]] = built
    outcomes = []
    for phase, trainer, held in phases:  # the generator builds a phase only after the previous one trained
        progress({"event": "phase", "phase": f"train {phase}"})
        with MemoryTracker(f"{phase}_train") as memory:
            outcome = _run(trainer, budget, progress, phase, held, request.steps_begin)
        outcome.memory = memory
        outcomes.append(outcome)
    return TrainOutcome.combine(outcomes, artefacts)
