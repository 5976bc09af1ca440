"""The Strategy protocol. A strategy only prepares the model and names its objective; training,
measuring and evaluating are shared by all strategies (bench.train, bench.measure, bench.evaluate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from bench.suite import Budget, PositiveFloat

Objective = Literal["sft", "dpo", "rlhf"]


class StrategyOptions(BaseModel):
    """Options every strategy accepts; each strategy subclasses this with its own fields and defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str | None = None  # name in reports; lets one suite compare two settings of a strategy
    learning_rate: PositiveFloat = 1e-4


class NotApplicable(Exception):
    """Raised by `prepare` when the strategy cannot apply to this model; the run is recorded as skipped."""


@dataclass
class PrepareContext:
    tokenizer: Any
    budget: Budget
    seed: int
    device: str


class Strategy(Protocol):
    objective: ClassVar[Objective]  # which trainer in bench.train runs it
    Options: ClassVar[type[StrategyOptions]]

    def prepare(self, model: Any, options: StrategyOptions, context: PrepareContext) -> Any:
        """Return the model to train, with exactly the intended parameters trainable."""
        ...

    def save(self, model: Any, directory: Path) -> None:
        """Write what must be stored per task (an adapter, or the whole model)."""
        ...


def save_whole_model(model: Any, directory: Path) -> None:
    model.save_pretrained(directory)


def save_adapter(model: Any, directory: Path) -> None:
    """A PEFT model saves only its adapter weights and config."""
    model.save_pretrained(directory)


def freeze_all(model: Any) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)
