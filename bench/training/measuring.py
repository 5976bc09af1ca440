"""The one training tracker: every optimizer step of every strategy and objective is timed (end to end and
by part), its tokens counted, its loss logged, its memory components taken on the first step, and the
budget's caps enforced, by MeasuringCallback at the trainer's callback points. TrainOutcome holds what it saw."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback

from bench.measure.component_probe import ComponentProbe
from bench.measure.components import Components
from bench.measure.memory import PhaseMemory
from bench.measure.timing import clock
from bench.spec import Budget
from bench.training.batches import MadeAhead

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
            # rows a phase's trainer cut or dropped at seq_len (RLHF: the reward model's pairs; the policy's
            # prompts are generated from, not truncated), as one phase records it
            truncation=next((phase.truncation for phase in phases if phase.truncation), None),
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
# Making an epoch's batches ahead (bench/training/batches.py) is left out of every part and step, whichever
# step it falls in (the first, and the first of each later epoch): its time is `batches_ahead_seconds`.
STEP_PARTS = ("data", "compute", "optimizer", "harness")


def made_ahead_seconds(loader: Any) -> float:
    """Seconds the trainer's loader has spent making batches ahead of their steps so far (0: it makes none)."""
    return loader.seconds if isinstance(loader, MadeAhead) else 0.0


class MeasuringCallback(TrainerCallback):
    """Times every optimizer step end to end and by part, counts its tokens and memory components,
    logs loss, enforces the caps. A step's clock (`_clock`) stops while batches are made ahead; the
    training's `seconds` (and the max_seconds cap) are wall time."""

    def __init__(
        self,
        budget: Budget,
        samples_per_step: int,
        progress: Progress,
        held: Sequence[Any] = (),
        steps_begin: Callable[[], None] = lambda: None,
    ) -> None:
        self.budget = budget
        self.steps_begin = steps_begin  # told when the trainer, built and its data prepared, starts its steps
        self.held = held  # models the trainer holds beside the trained one (bench.measure.components)
        self.samples_per_step = samples_per_step
        self.progress = progress
        self.outcome = TrainOutcome()
        self._start = self._last = 0.0
        self._marks: dict[str, float] = {}
        self._tokens_seen = 0
        self._probe: ComponentProbe | None = None

    @staticmethod
    def _clock(kwargs: dict[str, Any]) -> float:
        """The step clock: wall time less the time spent making batches ahead."""
        return clock() - made_ahead_seconds(kwargs.get("train_dataloader"))

    def on_train_begin(self, args, state, control, **kwargs):
        self.steps_begin()
        self._start = clock()
        self._last = self._clock(kwargs)

    def on_step_begin(self, args, state, control, **kwargs):
        if state.global_step == 0 and kwargs.get("model") is not None:
            self._probe = ComponentProbe(self.held)
            self._probe.step_begin(kwargs["model"])
        self._marks = {"begin": self._clock(kwargs)}

    def on_pre_optimizer_step(self, args, state, control, **kwargs):
        self._marks["pre_optimizer"] = self._clock(kwargs)
        if self._probe is not None:
            self._probe.before_optimizer(kwargs["model"])

    def on_optimizer_step(self, args, state, control, **kwargs):
        self._marks["optimizer"] = self._clock(kwargs)

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
        now = self._clock(kwargs)
        self._split(now)
        if self._probe is not None:
            self._probe.step_end(kwargs.get("optimizer"))
            self.outcome.components, self._probe = self._probe.components, None
        self.outcome.step_seconds.append(now - self._last)
        self.outcome.step_tokens.append(int(state.num_input_tokens_seen) - self._tokens_seen)
        self.outcome.step_samples.append(self.samples_per_step)
        self._tokens_seen = int(state.num_input_tokens_seen)
        self._last = now
        self.outcome.seconds = clock() - self._start
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
