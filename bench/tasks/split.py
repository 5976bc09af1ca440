"""Train/test splitting shared by the data-backed task sources, and the overlap check.

A *declared* split puts an item on the test side when the sha256 of its normalised context falls
below `test_fraction`: deterministic, independent of file order and of the seed, and identical
texts always land on the same side. Eval items are then taken in a fixed hashed order, so the
first `eval_limit` of them are a stable random sample.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import re
import unicodedata
from collections.abc import Iterable
from typing import Any, TypeVar

from bench.tasks.base import ChoiceItem, Example, GenItem, Message, context_text

Item = TypeVar("Item", ChoiceItem, GenItem)

_SCALE = float(1 << 64)


class OverlapError(ValueError):
    """A training prompt is also an evaluation context: the split would score memorised items."""


def normalise(text: str) -> str:
    """Case-, punctuation- and whitespace-insensitive form that the declared split hashes."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


# symbols that change what a text asks (`1 + 2` is not `1 - 2`): kept by the overlap check, each its own word
_MEANING = "+\\-*/=<>%^\u00b1\u00d7\u00f7\u2212\u2200-\u22ff"
_SYMBOL = re.compile(f"[{_MEANING}]")
# other punctuation, where it does not join two word characters (`3.5`, `don't` keep theirs)
_LOOSE_PUNCTUATION = re.compile(f"(?<!\\w)[^\\w\\s{_MEANING}]|[^\\w\\s{_MEANING}](?!\\w)")


def overlap_key(text: str) -> str:
    """The form the overlap check compares: case and whitespace folded, punctuation around words folded
    (`Question: x?` is `question x`), symbols that change meaning kept (`calc 1 + 2 =` is not `calc 1 - 2 =`).
    Finer than `normalise`, so texts with one key share a side of the declared split."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _SYMBOL.sub(lambda found: f" {found.group(0)} ", _LOOSE_PUNCTUATION.sub(" ", text))
    return " ".join(text.split())


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


def context_keys(context: str | list[Message]) -> set[str]:
    """The overlap keys of an evaluation context: its text; for messages also the text without system turns."""
    keys = {overlap_key(context_text(context))}
    rest = [turn for turn in context if turn["role"] != "system"] if isinstance(context, list) else []
    return keys | {overlap_key(context_text(rest))} if rest else keys


def training_keys(example: Example) -> set[str]:
    """The overlap keys of a training example: its prompt; for a conversation also, before each assistant
    turn, the turns so far (with and without system turns) and the last user turn alone."""
    keys = {overlap_key(example.prompt)}
    row = example.row or {}
    turns = row.get("messages") or (row["prompt"] + row["completion"] if isinstance(row.get("prompt"), list) else [])
    for index, turn in enumerate(turns):
        if turn["role"] != "assistant" or not index:
            continue
        before = turns[:index]
        keys |= context_keys(before)
        users = [earlier["content"] for earlier in before if earlier["role"] == "user"]
        keys |= {overlap_key(users[-1])} if users else set()
    return keys


def starting_key(text: str, keys: list[str]) -> str | None:
    """The longest of the sorted non-empty `keys` that `text` starts with, ending at a word's end; None if none.
    Each step keeps only keys that can still be a prefix of `text`, so a lookup is a few bisections."""
    bound = text
    while bound:
        index = bisect.bisect_right(keys, bound)
        if not index:
            return None
        key = keys[index - 1]
        if text.startswith(key) and text[len(key) : len(key) + 1] in ("", " "):
            return key
        if text.startswith(key):  # a prefix, but inside a word: a shorter key may still fit
            bound = key[:-1]
        else:  # a prefix of `text` below `bound` is also a prefix of `key`
            bound = bound[: len(os.path.commonprefix([key, bound]))]
    return None


def _repeated(example: Example, contexts: dict[str, str], sorted_keys: list[str]) -> str | None:
    """The id of an evaluation item the example repeats: a language-modeling text that starts with the
    item's context, or any other example whose prompt (or a user turn) equals it."""
    if example.row is not None and "text" in example.row:
        key = starting_key(overlap_key(example.row["text"]), sorted_keys)
        return None if key is None else contexts[key]
    return next((contexts[key] for key in training_keys(example) if key in contexts), None)


def repeats(train: Iterable[Example], test: Iterable[ChoiceItem | GenItem]) -> list[tuple[int, str]]:
    """(index in `train`, evaluation item id) of each training example that repeats an evaluation context
    (`overlap_key`): a prompt or a user turn equal to it, or a language-modeling text that starts with it.
    The one definition of an overlap: SFT rows (`check_overlap`) and preference pairs
    (bench/tasks/check.py) are checked with it."""
    contexts: dict[str, str] = {}
    for item in test:
        for key in context_keys(item.context):
            contexts.setdefault(key, item.id)
    sorted_keys = sorted(key for key in contexts if key)
    return [
        (index, item_id)
        for index, example in enumerate(train)
        if (item_id := _repeated(example, contexts, sorted_keys)) is not None
    ]


def check_overlap(name: str, train: Iterable[Example], test: Iterable[ChoiceItem | GenItem]) -> None:
    """Raise OverlapError when a training example repeats an evaluation context (`repeats`)."""
    train = list(train)
    clashes = [(item_id, train[index].prompt) for index, item_id in repeats(train, test)]
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
