"""What every task provides: supervised examples to learn from, and evaluation items to score: multiple
choice (log-likelihood of each choice) or generative (greedy generation, exact match after extraction)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def completion_join(prompt: str, completion: str) -> str:
    """What goes between a prompt and its completion text: one space, unless either side already has
    whitespace at the join (a row written TRL's way, `{"prompt": "The sky is", "completion": " blue."}`)."""
    if prompt and completion and not prompt[-1].isspace() and not completion[0].isspace():
        return " "
    return ""


@dataclass(frozen=True)
class Example:
    """One supervised example: the model reads `prompt` and learns to write `completion`.

    `row`: the row as TRL's SFTTrainer reads it, for the formats other than prompt-completion strings
    ({"text"}, {"messages"}, conversational {"prompt", "completion"}; bench/tasks/rows.py); then
    `prompt` and `completion` are its texts joined, for overlap checks and length estimates."""

    prompt: str
    completion: str
    row: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """Prompt and completion as one text, joined as training joins them (`completion_join`)."""
        return self.prompt + completion_join(self.prompt, self.completion) + self.completion


@dataclass(frozen=True)
class ChoiceItem:
    """One multiple-choice evaluation item, scored by log-likelihood of each choice."""

    id: str
    context: str
    choices: list[str]
    label: int


Message = dict[str, str]


@dataclass(frozen=True)
class GenItem:
    """One generative evaluation item: the model continues `context` (a string, or messages rendered with
    the chat template) greedily; correct when the extracted answer equals `answer` or one of `aliases`."""

    id: str
    context: str | list[Message]
    answer: str
    aliases: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        """The context as plain text (messages' contents joined), for splits, overlap checks and latency."""
        return context_text(self.context)


def context_text(context: str | list[Message]) -> str:
    return context if isinstance(context, str) else "\n".join(message["content"] for message in context)


@dataclass(frozen=True)
class Generation:
    """How a generative task is scored: greedy generation of at most `max_new_tokens`, cut at the first
    of `until` (and the end-of-sequence token), the answer extracted by `answer_kind` (bench/evaluate/
    answers.py); `chat_template`: contexts rendered with the tokenizer's chat template."""

    max_new_tokens: int
    until: tuple[str, ...]
    answer_kind: str = "text"  # "number"; "text": a short string; "phrase": text as lm-eval's nq_open compares it
    # (case, punctuation, articles ignored); "math": a LaTeX final answer
    chat_template: bool = False

    def record(self) -> dict[str, Any]:
        return {
            "max_new_tokens": self.max_new_tokens,
            "until": list(self.until),
            "answer_kind": self.answer_kind,
            "chat_template": self.chat_template,
            "metric": "exact_match",
        }


@dataclass
class TaskData:
    name: str
    train: list[Example]
    eval: list[ChoiceItem] | list[GenItem]
    description: str = ""
    chance: float = field(default=0.0)  # accuracy of uniform guessing over the choices (0 for generative)
    info: dict[str, Any] = field(default_factory=dict)  # provenance: source, split, eval item ids
    generation: Generation | None = None  # set for generative tasks

    @property
    def generative(self) -> bool:
        return self.generation is not None

    def first_prompt(self) -> str:
        """A prompt of the task as text (latency is measured on it)."""
        if self.eval:
            return context_text(self.eval[0].context)
        return self.train[0].prompt

    def record(self) -> dict[str, Any]:
        """What a run record keeps about this task's data (ids, not texts)."""
        generation = {"generation": self.generation.record()} if self.generation else {}
        return {
            **self.info,
            **generation,
            "train_examples": len(self.train),
            "eval_items": len(self.eval),
            "eval_ids": [item.id for item in self.eval],
        }

    def __post_init__(self) -> None:
        if self.eval and not self.chance and isinstance(self.eval[0], ChoiceItem):
            self.chance = sum(1 / len(item.choices) for item in self.eval) / len(self.eval)
