"""What every task provides: supervised examples to learn from and multiple-choice items to score."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Example:
    """One supervised example: the model reads `prompt` and learns to write `completion`.

    `row`: the row as TRL's SFTTrainer reads it, for the formats other than prompt-completion strings
    ({"text"}, {"messages"}, conversational {"prompt", "completion"}; bench/tasks/rows.py); then
    `prompt` and `completion` are its texts joined, for overlap checks and length estimates."""

    prompt: str
    completion: str
    row: dict[str, Any] | None = None


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice evaluation item, scored by log-likelihood of each choice."""

    id: str
    context: str
    choices: list[str]
    label: int


@dataclass
class TaskData:
    name: str
    train: list[Example]
    eval: list[ChoiceItem]
    description: str = ""
    chance: float = field(default=0.0)  # accuracy of uniform guessing over the choices
    info: dict[str, Any] = field(default_factory=dict)  # provenance: source, split, eval item ids

    def record(self) -> dict[str, Any]:
        """What a run record keeps about this task's data (ids, not texts)."""
        return {
            **self.info,
            "train_examples": len(self.train),
            "eval_items": len(self.eval),
            "eval_ids": [item.id for item in self.eval],
        }

    def __post_init__(self) -> None:
        if self.eval and not self.chance:
            self.chance = sum(1 / len(item.choices) for item in self.eval) / len(self.eval)
