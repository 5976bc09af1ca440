"""Read a task's data file into `Rows`: JSONL or CSV (line numbers), a JSON array, or through `datasets`
(offline, local only): a folder written by `save_to_disk`, or a parquet file (row numbers).

Never raises on bad data: every problem lands in `Rows.problems` (`file:line: field: what`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.tasks.rows import Rows

DATASETS_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow"}


def read_rows(path: Path, name: str) -> Rows:
    """Every row of the file, validated; problems collected, the file read once."""
    rows = Rows(path, name)
    if not path.exists():
        rows.problem(None, None, "no such file or folder")
        return rows
    try:
        for line, row in _parsed(path, rows):
            rows.add(line, row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        rows.problem(None, None, f"cannot read: {error}")
        return rows
    rows.finish()
    return rows


def _parsed(path: Path, rows: Rows) -> Iterator[tuple[int, Any]]:
    if path.is_dir() or path.suffix in DATASETS_SUFFIXES:
        yield from _from_datasets(path, rows)
        return
    if path.suffix == ".csv":
        yield from _from_csv(path)
        return
    if path.suffix == ".json":
        text = path.read_text(encoding="utf-8")
        try:
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None
        if isinstance(whole, list):  # a JSON array of rows (a null is a column the row has not); else lines
            yield from ((index, _present(row)) for index, row in enumerate(whole, start=1))
            return
    with path.open(encoding="utf-8") as stream:
        for line, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                yield line, json.loads(raw)
            except json.JSONDecodeError as error:
                rows.problem(line, None, f"not valid JSON: {error.msg}")
            except RecursionError:
                rows.problem(line, None, "not valid JSON: nested too deeply")


def _from_datasets(path: Path, rows: Rows) -> Iterator[tuple[int, Any]]:
    """Rows through `datasets`; a column a row does not have (None in a union schema) is left out."""
    try:
        import datasets

        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if len(loaded) != 1:
                    rows.problem(
                        None, None, f"a folder of several splits ({', '.join(loaded)}): name one split's folder"
                    )
                    return
                loaded = next(iter(loaded.values()))
        else:
            kind = DATASETS_SUFFIXES[path.suffix]
            loaded = datasets.load_dataset(kind, data_files=str(path), split="train")
        table = loaded.to_list()
    except Exception as error:  # noqa: BLE001 (a third-party reader: any failure is a problem of this file)
        rows.problem(None, None, f"cannot read with datasets: {type(error).__name__}: {error}")
        return
    for index, row in enumerate(table, start=1):
        yield index, _present(row)


def _from_csv(path: Path) -> Iterator[tuple[int, Any]]:
    """CSV cells are text, read as such (no type guessing): an empty cell is a column the row has not,
    `label` an integer, `choices` and `messages` the JSON lists they hold."""
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        for row in reader:
            cells = {key: value for key, value in row.items() if value not in ("", None)}
            if None in cells:  # more cells than the header names
                cells["(cell without a header)"] = cells.pop(None)
            yield reader.line_num, {key: _cell(key, value) for key, value in cells.items()}


def _cell(key: Any, value: Any) -> Any:
    if key == "label" and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if key in ("choices", "messages") and isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value  # left as text: the row check says what is wrong with it
    return value


def _present(row: Any) -> Any:
    """A row of a table (union schema): the columns it has; a None is a column it has not."""
    return {key: value for key, value in row.items() if value is not None} if isinstance(row, dict) else row
