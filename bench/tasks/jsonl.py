"""Your own data: a JSONL file (`source: jsonl`, `path: data.jsonl`), one JSON object per line.

Two kinds of rows, mixed freely in one file:
  {"prompt": "Q: 2+2?\\nA:", "completion": "4"}                        training example
  {"context": "Q: 2+3?\\nA:", "choices": ["5", "6"], "label": 0}        evaluation item
An evaluation item may carry an "id" (string; default `<task>/line<N>`). Blank lines are skipped;
unknown keys are errors (a typo must not silently drop data). When the file holds no training
rows, the evaluation items are split by `test_fraction` (bench.tasks.split) and the held-in part
teaches the correct choice. Training prompts that repeat an evaluation context are rejected.
Errors name the file, the line and the field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.tasks.base import ChoiceItem, Example, TaskData
from bench.tasks.split import check_overlap, declared_split, hashed_order

TRAIN_KEYS = {"prompt", "completion"}
EVAL_KEYS = {"context", "choices", "label"}
OPTIONAL_KEYS = {"id"}


class JsonlError(ValueError):
    def __init__(self, path: Path, line: int | None, field: str | None, message: str) -> None:
        where = (f"{path}:{line}" if line else str(path)) + (f": field {field!r}" if field else "")
        super().__init__(f"{where}: {message}")


def _text(row: dict[str, Any], key: str, path: Path, line: int, allow_empty: bool = False) -> str:
    value = row[key]
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise JsonlError(path, line, key, f"expected a non-empty string, got {value!r}")
    return value


def _eval_item(row: dict[str, Any], name: str, path: Path, line: int) -> ChoiceItem:
    choices = row["choices"]
    if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
        raise JsonlError(path, line, "choices", f"expected a list of at least 2 non-empty strings, got {choices!r}")
    label = row["label"]
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
        raise JsonlError(path, line, "label", f"expected the index of the correct choice (0..{len(choices) - 1})")
    item_id = row.get("id", f"{name}/line{line}")
    if not isinstance(item_id, str) or not item_id:
        raise JsonlError(path, line, "id", f"expected a non-empty string, got {item_id!r}")
    return ChoiceItem(item_id, _text(row, "context", path, line, allow_empty=True), choices, label)


def read_jsonl(path: Path, name: str) -> tuple[list[Example], list[ChoiceItem]]:
    """Parse the file into training examples and evaluation items, validating every row."""
    if not path.is_file():
        raise FileNotFoundError(f"task {name!r}: no such JSONL file {str(path)!r}")
    train: list[Example] = []
    items: list[ChoiceItem] = []
    seen_ids: dict[str, int] = {}
    with path.open(encoding="utf-8") as stream:
        for line, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as error:
                raise JsonlError(path, line, None, f"not valid JSON: {error.msg}") from None
            if not isinstance(row, dict):
                raise JsonlError(path, line, None, f"expected a JSON object, got {type(row).__name__}")
            keys = set(row)
            unknown = keys - TRAIN_KEYS - EVAL_KEYS - OPTIONAL_KEYS
            if unknown:
                raise JsonlError(
                    path,
                    line,
                    sorted(unknown)[0],
                    "unknown key (expected prompt/completion or context/choices/label/id)",
                )
            if keys & TRAIN_KEYS and keys & EVAL_KEYS:
                raise JsonlError(path, line, None, "a row is either a training example or an evaluation item, not both")
            expected = TRAIN_KEYS if keys & TRAIN_KEYS else EVAL_KEYS
            missing = sorted(expected - keys)
            if missing:
                raise JsonlError(path, line, missing[0], "required field is missing")
            if expected is TRAIN_KEYS:
                train.append(Example(_text(row, "prompt", path, line), _text(row, "completion", path, line)))
                continue
            item = _eval_item(row, name, path, line)
            if item.id in seen_ids:
                raise JsonlError(path, line, "id", f"duplicate id {item.id!r} (first on line {seen_ids[item.id]})")
            seen_ids[item.id] = line
            items.append(item)
    if not items:
        raise JsonlError(path, None, None, "no evaluation rows (context/choices/label)")
    return train, items


def build_jsonl(name: str, path: str, train_size: int, eval_limit: int, test_fraction: float) -> TaskData:
    file = Path(path).expanduser()
    train, items = read_jsonl(file, name)
    if train:
        test, split = hashed_order(items, name), "file: training rows and evaluation rows"
    else:
        train, test = declared_split(items, test_fraction, name)
        split = f"declared: {test_fraction:g} of the evaluation rows held out by sha256 of normalised context"
    check_overlap(name, train, test)
    info = {
        "source": "jsonl",
        "path": str(file),
        "split": split,
        "train_available": len(train),
        "test_available": len(test),
        "eval_limit": eval_limit,
    }
    return TaskData(
        name=name, train=train[:train_size], eval=test[:eval_limit], description=f"JSONL {file.name}", info=info
    )
