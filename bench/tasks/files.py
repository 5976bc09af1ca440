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
        rows.problem(None, None, "no such file or folder" + relative_to_here(path))
        return rows
    try:
        for line, row in _parsed(path, rows):
            rows.add(line, row)
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        rows.problem(None, None, f"cannot read: {error}")
        return rows
    rows.finish()
    return rows


def relative_to_here(path: Path) -> str:
    """For a relative path that is not there, where it was looked for (the directory bench runs in)."""
    return "" if path.is_absolute() else f" (a relative path is read from the directory bench runs in: {Path.cwd()})"


def _parsed(path: Path, rows: Rows) -> Iterator[tuple[int, Any]]:
    """(line or row number, row) of each row; the suffix is compared without case (`data.CSV`), and a
    UTF-8 byte order mark at the start of a text file is dropped (`utf-8-sig`)."""
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in DATASETS_SUFFIXES:
        yield from _from_datasets(path, rows)
        return
    if suffix == ".csv":
        yield from _from_csv(path)
        return
    if suffix == ".json":
        text = path.read_text(encoding="utf-8-sig")
        try:
            whole = json.loads(text)
        except (json.JSONDecodeError, RecursionError):
            whole = None
        if isinstance(whole, list):  # a JSON array of rows (a null is a column the row has not); else lines
            yield from ((index, _present(row)) for index, row in enumerate(whole, start=1))
            return
    for line, row, why in jsonl_lines(path):
        if why is None:
            yield line, row
        else:
            rows.problem(line, None, f"not valid JSON: {why}")


def jsonl_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, row, None) of each non-blank line of a JSONL file, or (line number, None, why) where
    the line is not JSON. Lines end at a newline only (U+2028 or U+0085 inside a string are text, as
    str.splitlines would not have them); a UTF-8 byte order mark at the start is dropped."""
    with path.open(encoding="utf-8-sig") as stream:
        for line, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                yield line, json.loads(raw), None
            except json.JSONDecodeError as error:  # "Invalid control character at" needs its place
                yield line, None, f"{error.msg} column {error.colno}"
            except RecursionError:
                yield line, None, "nested too deeply"


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
            kind = DATASETS_SUFFIXES[path.suffix.lower()]
            loaded = datasets.load_dataset(kind, data_files=str(path), split="train")
        table = loaded.to_list()
    except Exception as error:  # noqa: BLE001 (a third-party reader: any failure is a problem of this file)
        rows.problem(None, None, f"cannot read with datasets: {type(error).__name__}: {error}")
        return
    for index, row in enumerate(table, start=1):
        yield index, _present(row)


def _from_csv(path: Path) -> Iterator[tuple[int, Any]]:
    """CSV cells are text, read as such (no type guessing): an empty cell is a column the row has not,
    `label` an integer, and a field whose value may be a list holds it as JSON (`_cell`). A row is
    numbered by the line it starts on (a quoted cell may span lines); the header is line 1."""
    with path.open(encoding="utf-8-sig", newline="") as stream:
        reader = csv.reader(stream)
        header: list[str] | None = None
        while True:
            start = reader.line_num + 1
            values = next(reader, None)
            if values is None:
                return
            if not values:  # a blank line
                continue
            if header is None:
                header = values
                continue
            yield start, _csv_row(header, values)


def _csv_row(header: list[str], values: list[str]) -> dict[str, Any]:
    """One record as `csv.DictReader` pairs it with the header, empty cells left out; extra cells are
    kept under a key that names them, so the row check reports them."""
    cells = {key: value for key, value in dict(zip(header, values)).items() if value != ""}
    if len(values) > len(header):
        cells["(cell without a header)"] = values[len(header) :]
    return {key: _cell(key, value) for key, value in cells.items()}


# fields whose value may be a list, written in a CSV cell as JSON: always a list (choices, messages, aliases),
# or a list of messages where a string is also allowed (prompt, completion, context)
LIST_CELLS = frozenset({"choices", "messages", "aliases"})
MESSAGE_CELLS = frozenset({"prompt", "completion", "context"})


def _cell(key: Any, value: Any) -> Any:
    if key == "label" and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if key not in LIST_CELLS | MESSAGE_CELLS or not isinstance(value, str) or not value.lstrip().startswith("["):
        return value
    try:
        parsed = json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        return value  # left as text: the row check says what is wrong with it (or it is a text prompt)
    if key in MESSAGE_CELLS and not (isinstance(parsed, list) and parsed and all(isinstance(m, dict) for m in parsed)):
        return value  # a text that happens to look like JSON (`[1, 2, 3]` as a completion)
    return parsed


def _present(row: Any) -> Any:
    """A row of a table (union schema): the columns it has; a None is a column it has not."""
    return {key: value for key, value in row.items() if value is not None} if isinstance(row, dict) else row
