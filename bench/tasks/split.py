"""Train/test splitting shared by the data-backed task sources, and the overlap check.

A *declared* split puts an item on the test side when the sha256 of its normalised context falls
below `test_fraction`: deterministic, independent of file order and of the seed, and identical
texts always land on the same side. Eval items are then taken in a fixed hashed order, so the
first `eval_limit` of them are a stable random sample.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, TypeVar

from bench.tasks.base import ChoiceItem, Example, GenItem, context_text

Item = TypeVar("Item", ChoiceItem, GenItem)

_SCALE = float(1 << 64)


class OverlapError(ValueError):
    """A training prompt is also an evaluation context: the split would score memorised items."""


def normalise(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form used to compare texts."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


def _fraction(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / _SCALE


def hashed_order(items: list[Item], salt: str) -> list[Item]:
    return sorted(items, key=lambda item: hashlib.sha256(f"{salt}|{item.id}".encode()).hexdigest())


def held_out(item: ChoiceItem | GenItem, test_fraction: float, salt: str) -> bool:
    """Whether the declared split puts the item on the test side."""
    return _fraction(f"{salt}|{normalise(context_text(item.context))}") < test_fraction


def teaching_example(item: ChoiceItem | GenItem) -> Example:
    """The example that teaches an item's answer: the correct choice, or the generative answer (for
    message contexts a conversational prompt-completion row, as TRL reads it)."""
    if isinstance(item, ChoiceItem):
        return Example(item.context, item.choices[item.label])
    if isinstance(item.context, str):
        return Example(item.context, item.answer)
    row = {"prompt": item.context, "completion": [{"role": "assistant", "content": item.answer}]}
    return Example(item.text, item.answer, row)


def declared_split(items: list[Item], test_fraction: float, salt: str) -> tuple[list[Example], list[Item]]:
    """(training examples, test items): the test side holds items whose hashed normalised context is
    below `test_fraction`; the rest become examples that teach the correct answer."""
    train: list[Item] = []
    test: list[Item] = []
    for item in items:
        (test if held_out(item, test_fraction, salt) else train).append(item)
    examples = [teaching_example(item) for item in hashed_order(train, salt)]
    return examples, hashed_order(test, salt)


def check_overlap(name: str, train: Iterable[Example], test: Iterable[ChoiceItem | GenItem]) -> None:
    """Raise OverlapError when any training prompt equals an evaluation context after normalising."""
    contexts: dict[str, str] = {}
    for item in test:
        contexts.setdefault(normalise(context_text(item.context)), item.id)
    clashes = [(contexts[key], example.prompt) for example in train if (key := normalise(example.prompt)) in contexts]
    if clashes:
        shown = "; ".join(f"{item_id} <- {prompt[:60]!r}" for item_id, prompt in clashes[:3])
        raise OverlapError(
            f"task {name!r}: {len(clashes)} training example(s) repeat evaluation items (normalised text), "
            f"e.g. {shown}. Evaluation would score memorised items: remove them from the training data "
            "or use a declared split (test_fraction)."
        )


def hold_out(
    name: str, items: list[Item], train: list[Example] | None, test_fraction: float, given: str, of: str
) -> tuple[list[Example], list[Item], str]:
    """(training examples, test items, the split in words) of a data-backed task, overlap checked.
    Training rows given (`train` not None): every item is a test item, in hashed order; else a
    declared `test_fraction` of the items (`of` says which) is held out and the rest taught."""
    if train is not None:
        test, split = hashed_order(items, name), given
    else:
        train, test = declared_split(items, test_fraction, name)
        split = f"declared: {test_fraction:g} of {of} held out by sha256 of normalised context"
    check_overlap(name, train, test)
    return train, test, split


def split_info(split: str, train: list[Example], test: list[Any], eval_limit: int) -> dict[str, Any]:
    """The split's part of a task's `info` (what the record keeps of its data)."""
    return {"split": split, "train_available": len(train), "test_available": len(test), "eval_limit": eval_limit}
