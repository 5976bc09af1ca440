"""The one training path: every strategy trains here, under the suite's budget, with one tracker.

A strategy names its objective; the objective picks the TRL trainer. Adding an objective is one
entry in OBJECTIVES, never a branch on the strategy. An entry returns one trainer, or is a generator
that yields `(phase, trainer, held models)` for a method with several phases (RLHF: reward, then policy);
each phase runs through the same MeasuringCallback, under its own MemoryTracker, with the full
budget of steps (see docs/alignment.md).
"""

from __future__ import annotations

import functools
import gc
import inspect
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import PrinterCallback

from bench.measure.component_probe import ComponentProbe
from bench.measure.components import Components
from bench.measure.memory import MemoryTracker, PhaseMemory
from bench.measure.timing import clock
from bench.registry import Registry
from bench.spec import Budget, Training
from bench.tasks.base import TaskData
from bench.training.module_walks import walks_listed_once

Progress = Callable[[dict[str, Any]], None]


@dataclass
class TrainOutcome:
    step_seconds: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)  # non-padding tokens per optimizer step
    step_samples: list[int] = field(default_factory=list)
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    stop_reason: str = "steps"
    phase: str = "train"
    generated_tokens: int = 0  # tokens the trainer generated itself (online RL), from its logs
    memory: PhaseMemory | None = None  # this phase's peak, for objectives with several phases
    phases: list[TrainOutcome] = field(default_factory=list)  # one per phase when there are several
    artefacts: dict[str, Any] = field(default_factory=dict)  # e.g. the trained reward model
    # per optimizer step, where its time went (seconds): see MeasuringCallback
    breakdown: dict[str, list[float]] = field(default_factory=dict)
    components: Components | None = None  # training memory by component, from the first step
    batches_ahead_seconds: float | None = None  # making batches before their steps (bench/training/batches.py)
    truncation: dict[str, int] | None = None  # training rows longer than seq_len: counted, not hidden

    @property
    def steps(self) -> int:
        return len(self.step_seconds)

    @property
    def tokens(self) -> int:
        return sum(self.step_tokens)

    @classmethod
    def combine(cls, phases: list[TrainOutcome], artefacts: dict[str, Any]) -> TrainOutcome:
        """Totals over the phases; the loss curve is the last phase's (the model that is kept)."""
        return cls(
            step_seconds=[s for phase in phases for s in phase.step_seconds],
            step_tokens=[t for phase in phases for t in phase.step_tokens],
            step_samples=[n for phase in phases for n in phase.step_samples],
            losses=phases[-1].losses,
            seconds=sum(phase.seconds for phase in phases),
            stop_reason=",".join(dict.fromkeys(phase.stop_reason for phase in phases)),
            generated_tokens=sum(phase.generated_tokens for phase in phases),
            phases=phases,
            artefacts=artefacts,
            breakdown={part: [v for phase in phases for v in phase.breakdown.get(part, [])] for part in STEP_PARTS},
            components=_largest(phases),
        )


def _largest(phases: list[TrainOutcome]) -> Components | None:
    """The components of the phase whose step held the most (the run's training peak), named."""
    counted = [phase for phase in phases if phase.components is not None]
    if not counted:
        return None
    largest = max(counted, key=lambda phase: phase.components.total() or 0)
    largest.components.phase = largest.phase
    return largest.components


# Where an optimizer step's time goes, from the trainer's callback points:
#   data       previous step's end -> this step's begin (the next batch: loading, collation, the loop)
#   compute    step begin -> before the optimizer (forward and backward of every micro-batch)
#   optimizer  the optimizer's step (with gradient clipping, which the trainer does just before it)
#   harness    after the optimizer -> step end (scheduler, zero_grad, logging, callbacks: ours included)
STEP_PARTS = ("data", "compute", "optimizer", "harness")


class MeasuringCallback(TrainerCallback):
    """Times every optimizer step end to end and by part, counts its tokens and memory components,
    logs loss, enforces the caps."""

    def __init__(self, budget: Budget, samples_per_step: int, progress: Progress, held: Sequence[Any] = ()) -> None:
        self.budget = budget
        self.held = held  # models the trainer holds beside the trained one (bench.measure.components)
        self.samples_per_step = samples_per_step
        self.progress = progress
        self.outcome = TrainOutcome()
        self._start = self._last = 0.0
        self._marks: dict[str, float] = {}
        self._tokens_seen = 0
        self._probe: ComponentProbe | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self._start = self._last = clock()

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 0 and kwargs.get("model") is not None:
            self._probe = ComponentProbe(self.held)
            self._probe.step_begin(kwargs["model"])
        self._marks = {"begin": clock()}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._marks["pre_optimizer"] = clock()
        if self._probe is not None:
            self._probe.before_optimizer(kwargs["model"])

    def on_optimizer_step(self, args, state, control, **kwargs):
        self._marks["optimizer"] = clock()

    def _split(self, now: float) -> None:
        marks = self._marks
        if not {"begin", "pre_optimizer", "optimizer"} <= set(marks):
            return  # a trainer that skips a callback point: no breakdown rather than a wrong one
        parts = (
            marks["begin"] - self._last,
            marks["pre_optimizer"] - marks["begin"],
            marks["optimizer"] - marks["pre_optimizer"],
            now - marks["optimizer"],
        )
        for name, seconds in zip(STEP_PARTS, parts):
            self.outcome.breakdown.setdefault(name, []).append(seconds)

    def on_step_end(self, args, state, control, **kwargs):
        now = clock()
        self._split(now)
        if self._probe is not None:
            self._probe.step_end(kwargs.get("optimizer"))
            self.outcome.components, self._probe = self._probe.components, None
        self.outcome.step_seconds.append(now - self._last)
        self.outcome.step_tokens.append(int(state.num_input_tokens_seen) - self._tokens_seen)
        self.outcome.step_samples.append(self.samples_per_step)
        self._tokens_seen = int(state.num_input_tokens_seen)
        self._last = now
        self.outcome.seconds = now - self._start
        if self.budget.max_tokens and self._tokens_seen >= self.budget.max_tokens:
            self.outcome.stop_reason = "max_tokens"
            control.should_training_stop = True
        if self.budget.max_seconds and self.outcome.seconds >= self.budget.max_seconds:
            self.outcome.stop_reason = "max_seconds"
            control.should_training_stop = True

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "completions/mean_length" in logs:  # online RL: mean length of this step's completions
            self.outcome.generated_tokens += round(float(logs["completions/mean_length"]) * self.samples_per_step)
        if logs and "loss" in logs:
            loss = float(logs["loss"])
            self.outcome.losses.append((state.global_step, loss))
            self.progress({"event": "step", "step": state.global_step, "total": state.max_steps, "loss": loss})


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


def _lean_sft_trainer_class() -> type:
    """TRL's SFTTrainer (its data handling: completion-only labels, truncation, collation) with the
    model's own loss instead of TRL's fused head, which also computes entropy and top-1 hits over the
    vocabulary and syncs three metrics to the host every step (TRL 1.16 cannot switch them off).
    The loss is the same sum over completion tokens divided by their count; it cost 0.3-0.5 ms a
    step on the smoke suite. Also: each epoch's batches made before its steps (bench/training/batches.py),
    clipping and the FLOP estimate without a walk of every module each step. Every change keeps the
    loss curve bit-identical (docs/performance.md)."""
    import torch
    from accelerate.utils import DistributedType
    from transformers import Trainer
    from trl import SFTTrainer

    from bench.training.batches import MadeAhead

    class LeanSFTTrainer(SFTTrainer):
        make_batches_ahead = True  # bench/training/batches.py; off: each batch made inside its step

        def get_train_dataloader(self):
            loader = super().get_train_dataloader()
            if not self.make_batches_ahead:
                return loader
            self.batches_made_ahead = MadeAhead(loader, self.args.max_steps * self.args.gradient_accumulation_steps)
            return self.batches_made_ahead

        def _prepare_dataset(self, dataset, processing_class, args, packing, *rest, **kwargs):
            """TRL's preparation, and beside it how many rows seq_len truncated and how many TRL then
            dropped (left with no token that carries the loss): prepared once more without the limit."""
            prepared = super()._prepare_dataset(dataset, processing_class, args, packing, *rest, **kwargs)
            if args.max_length is None or packing or "input_ids" in (getattr(dataset, "column_names", None) or []):
                return prepared
            limit, args.max_length = args.max_length, None
            try:
                full = super()._prepare_dataset(dataset, processing_class, args, packing, *rest, **kwargs)
            finally:
                args.max_length = limit
            lengths = [len(ids) for ids in full["input_ids"]]
            self.truncation = {
                "seq_len": limit,
                "rows": len(lengths),
                "truncated": sum(length > limit for length in lengths),
                "dropped": len(lengths) - len(prepared),
                "longest": max(lengths, default=0),
            }
            return prepared

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

        def floating_point_ops(self, inputs):
            """Trainer's estimate, 6 x input tokens x non-embedding parameters, with the parameters
            counted once: transformers walks every parameter for it in every step."""
            main = getattr(self.model, "main_input_name", "input_ids")
            if main not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            if getattr(self, "_non_embedding_parameters", None) is None:
                self._non_embedding_parameters = self.model.num_parameters(exclude_embeddings=True)
            return 6 * inputs[main].numel() * self._non_embedding_parameters

        def _clip_grad_norm(self, model):
            """One process, no loss scaler: torch's clipping itself, which accelerate ends in too after
            walking every parameter twice for DTensor meshes (0.3-0.5 ms a step on tiny-llama), over the
            trained parameters listed once rather than a walk of every module each step (LoRA adds many)."""
            if self.accelerator.distributed_type != DistributedType.NO or self.accelerator.scaler is not None:
                return super()._clip_grad_norm(model)
            if getattr(self, "_trained", None) is None:  # frozen weights have no gradient; model order kept
                self._trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
            return torch.nn.utils.clip_grad_norm_(self._trained, self.args.max_grad_norm)

    return LeanSFTTrainer


def sft_trainer(model: Any, tokenizer: Any, task: TaskData, arguments: dict[str, Any], budget: Budget, **_: Any):
    from datasets import Dataset
    from trl import SFTConfig

    rows = [example.row or {"prompt": example.prompt, "completion": " " + example.completion} for example in task.train]
    data_format, loss = task.info.get("format", "prompt-completion"), task.info.get("loss", "completion")
    if data_format.startswith("conversational") and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"model {getattr(tokenizer, 'name_or_path', '') or '?'!r} has no chat template, and task {task.name!r}"
            f" has {data_format} rows: give one with the suite's model.chat_template"
        )
    losses = {"completion_only_loss": loss == "completion"}
    if loss == "assistant":  # the tokens of the assistant turns (TRL renders the template's generation marks)
        losses["assistant_only_loss"] = True
    config = SFTConfig(**arguments, max_length=budget.seq_len, packing=False, **losses)
    trainer_class = _lean_sft_trainer_class()
    return trainer_class(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)


# objective -> its trainer builder: (model, tokenizer, task, arguments, budget, **inputs) -> a trainer, or a
# generator of phases; a new objective is one builder and one line here
OBJECTIVES: Registry[Callable[..., Any]] = Registry("objective")
OBJECTIVES.register("sft", "bench.training.train:sft_trainer")
OBJECTIVES.register("dpo", "bench.training.alignment:dpo_trainer")
OBJECTIVES.register("rlhf", "bench.training.alignment:rlhf_phases")


def _run(
    trainer: Any, budget: Budget, progress: Progress, phase: str = "train", held: Sequence[Any] = ()
) -> TrainOutcome:
    """`held`: models the phase keeps beside the trained one; the trainer's own reference copy
    (TRL's `ref_model`, None when the reference is the disabled adapter or precomputed) is added."""
    reference = getattr(trainer, "ref_model", None)
    held = [*held, *([reference] if reference is not None else [])]
    callback = MeasuringCallback(budget, budget.batch_size * budget.gradient_accumulation, progress, held)
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


def train(request: TrainRequest) -> TrainOutcome:
    """Train `request.model` through its objective's trainer, measured by one callback."""
    objective, budget, progress = request.objective, request.budget, request.progress
    if objective not in OBJECTIVES:
        raise ValueError(f"no trainer for objective {objective!r} (known: {', '.join(OBJECTIVES)})")
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
        return _run(built, budget, progress)
    phases: Iterator[tuple[str, Any, list[Any]]] = built
    outcomes = []
    for phase, trainer, held in phases:  # the generator builds a phase only after the previous one trained
        progress({"event": "phase", "phase": f"train {phase}"})
        with MemoryTracker(f"{phase}_train") as memory:
            outcome = _run(trainer, budget, progress, phase, held)
        outcome.memory = memory
        outcomes.append(outcome)
    return TrainOutcome.combine(outcomes, artefacts)
