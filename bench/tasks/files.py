"""Read a task's data file into `Rows`: JSONL or CSV (line numbers), a JSON array, or through `datasets`
(offline, local only): a folder written by `save_to_disk`, or a parquet file (row numbers).

Never raises on bad data: every problem lands in `Rows.problems` (`file:line: field: what`). A file that
cannot be read as a whole (not UTF-8, compressed, an unsupported suffix, a JSON document that is not a
list of rows, a CSV header naming a column twice) is one problem, and nothing else is said of it.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.tasks.rows import EVAL_KEYS, GENERATIVE_KEYS, OPTIONAL_KEYS, TRAIN_KEYS, Rows, where

DATASETS_SUFFIXES = {".parquet": "parquet", ".arrow": "arrow"}
TEXT_SUFFIXES = (".jsonl", ".json", ".csv")
SUPPORTED = "a datasets folder, " + ", ".join((*TEXT_SUFFIXES, *DATASETS_SUFFIXES))
CSV_FIELD_LIMIT = 2**31 - 1  # csv's default is 131,072 characters; a C long everywhere (sys.maxsize is not)
ROW_KEYS = TRAIN_KEYS | EVAL_KEYS | GENERATIVE_KEYS | OPTIONAL_KEYS


class Unreadable(Exception):
    """The file as a whole cannot be read as rows: one problem, `where` (file or file:line) and why."""

    def __init__(self, where: str, why: str) -> None:
        self.where, self.why = where, why
        super().__init__(f"{where}: {why}")


class RepeatedKey(ValueError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"key {key!r} given twice")


def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: an object naming a key twice is refused (json.loads keeps the last)."""
    row: dict[str, Any] = {}
    for key, value in pairs:
        if key in row:
            raise RepeatedKey(key)
        row[key] = value
    return row


def read_rows(path: Path, name: str) -> Rows:
    """Every row of the file, validated; problems collected, the file read once."""
    rows = Rows(path, name)
    if not path.exists():
        rows.problem(None, None, "no such file or folder" + relative_to_here(path))
        return rows
    try:
        check_readable(path)
        for line, row in _parsed(path, rows):
            rows.add(line, row)
    except Unreadable as error:
        rows.problems.append(str(error))
        return rows
    except UnicodeDecodeError:
        rows.problems.append(str(not_utf8(path)))
        return rows
    except (OSError, csv.Error) as error:
        rows.problem(None, None, f"cannot read: {error}")
        return rows
    rows.finish()
    return rows


def relative_to_here(path: Path) -> str:
    """For a relative path that is not there, where it was looked for (the directory bench runs in)."""
    return "" if path.is_absolute() else f" (a relative path is read from the directory bench runs in: {Path.cwd()})"


def check_readable(path: Path, suffixes: tuple[str, ...] = TEXT_SUFFIXES, what: str = "task data") -> None:
    """Raise Unreadable for a gzip-compressed or UTF-16 file, or a suffix not among `suffixes`; a task's
    data may also be a folder or a parquet or arrow file, read by `datasets`."""
    suffix = path.suffix.lower()
    tables = suffixes == TEXT_SUFFIXES
    if tables and (path.is_dir() or suffix in DATASETS_SUFFIXES):
        return
    if path.is_dir():
        raise Unreadable(str(path), f"a folder: {what} is a file ({', '.join(suffixes)})")
    with path.open("rb") as stream:
        start = stream.read(4)
    if start.startswith(b"\x1f\x8b"):
        raise Unreadable(str(path), "cannot read: gzip-compressed, which is not supported: decompress it (gunzip)")
    if start.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable(str(path), "cannot read: not UTF-8 (a UTF-16 byte order mark): save it as UTF-8")
    if suffix not in suffixes:
        supported = SUPPORTED if tables else ", ".join(suffixes)
        raise Unreadable(str(path), f"unsupported suffix {suffix or '(none)'!r} for {what} (supported: {supported})")


def not_utf8(path: Path) -> Unreadable:
    """Where a file stops being UTF-8: its first byte that is not, by line."""
    data = path.read_bytes()
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        byte = f"0x{data[error.start]:02x}"
        why = f"cannot read: byte {byte} (offset {error.start}) is not UTF-8 (Latin-1 or cp1252?): save it as UTF-8"
        return Unreadable(where(path, line), why)
    return Unreadable(str(path), "cannot read: not UTF-8: save it as UTF-8")


def _parsed(path: Path, rows: Rows) -> Iterator[tuple[int, Any]]:
    """(line or row number, row) of each row; the suffix is compared without case (`data.CSV`), and a
    UTF-8 byte order mark at the start of a text file is dropped (`utf-8-sig`)."""
    suffix = path.suffix.lower()
    if path.is_dir() or suffix in DATASETS_SUFFIXES:
        yield from _from_datasets(path)
        return
    if suffix == ".csv":
        yield from _from_csv(path)
        return
    if suffix == ".json":
        text = path.read_text(encoding="utf-8-sig")
        array = _json_document(path, text)
        if array is not None:
            yield from _from_array(text, len(array), rows)
            return
    for line, row, why in jsonl_lines(path):
        if why is None:
            yield line, row
        else:
            rows.problem(line, None, why)


def _json_document(path: Path, text: str) -> list | None:
    """A .json file's array of rows; None when the file is JSONL under a .json name (its first line is a
    JSON value of its own, or the whole is one row on one line). Raise Unreadable for a broken document
    (its line) or an object that is not one row (naming a key that holds a list of objects)."""
    try:
        whole = json.loads(text)
    except RecursionError:
        raise Unreadable(str(path), "not valid JSON: nested too deeply") from None
    except json.JSONDecodeError as error:
        first = next((line for line in text.splitlines() if line.strip()), "")
        if _is_json(first):
            return None
        raise Unreadable(where(path, error.lineno), f"not valid JSON: {error.msg} column {error.colno}") from None
    if isinstance(whole, dict):
        lists = [
            key
            for key, value in whole.items()
            if key not in ROW_KEYS and isinstance(value, list) and value and all(isinstance(v, dict) for v in value)
        ]
        if lists or len(text.strip().splitlines()) > 1:
            hint = f" (rows under {lists[0]!r}? write that list alone, or one row per line as JSONL)" if lists else ""
            raise Unreadable(str(path), f"holds a JSON object, not a list of rows{hint}")
    return whole if isinstance(whole, list) else None


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except (json.JSONDecodeError, RecursionError):
        return False
    return True


JSON_SPACE = re.compile(r"[ \t\n\r]*,?[ \t\n\r]*")


def _from_array(text: str, count: int, rows: Rows) -> Iterator[tuple[int, Any]]:
    """The rows of a valid JSON array, each decoded on its own so a row naming a key twice is found
    (numbered from 1; a null is a column the row has not)."""
    strict, plain = json.JSONDecoder(object_pairs_hook=unique_keys), json.JSONDecoder()
    at = text.index("[") + 1
    for number in range(1, count + 1):
        at = JSON_SPACE.match(text, at).end()
        try:
            row, at = strict.raw_decode(text, at)
        except RepeatedKey as error:
            rows.problem(number, None, str(error))
            at = plain.raw_decode(text, at)[1]
            continue
        yield number, _present(row)


def jsonl_lines(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, row, None) of each non-blank line of a JSONL file, or (line number, None, why) where
    the line is not JSON or an object names a key twice. Lines end at a newline only (U+2028 or U+0085
    inside a string are text, as str.splitlines would not have them); a UTF-8 byte order mark at the start
    is dropped."""
    with path.open(encoding="utf-8-sig") as stream:
        for line, raw in enumerate(stream, start=1):
            if not raw.strip():
                continue
            try:
                yield line, json.loads(raw, object_pairs_hook=unique_keys), None
            except RepeatedKey as error:
                yield line, None, str(error)
            except json.JSONDecodeError as error:  # "Invalid control character at" needs its place
                yield line, None, f"not valid JSON: {error.msg} column {error.colno}"
            except RecursionError:
                yield line, None, "not valid JSON: nested too deeply"


def _from_datasets(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows through `datasets`; a column a row does not have (None in a union schema) is left out."""
    try:
        import datasets

        if path.is_dir():
            loaded = datasets.load_from_disk(str(path))
            if isinstance(loaded, datasets.DatasetDict):
                if len(loaded) != 1:
                    splits = ", ".join(loaded)
                    raise Unreadable(str(path), f"a folder of several splits ({splits}): name one split's folder")
                loaded = next(iter(loaded.values()))
        else:
            kind = DATASETS_SUFFIXES[path.suffix.lower()]
            loaded = datasets.load_dataset(kind, data_files=str(path), split="train")
        table = loaded.to_list()
    except Unreadable:
        raise
    except Exception as error:  # noqa: BLE001 (a third-party reader: any failure is a problem of this file)
        raise Unreadable(str(path), f"cannot read with datasets: {type(error).__name__}: {error}") from None
    for index, row in enumerate(table, start=1):
        yield index, _present(row)


def _from_csv(path: Path) -> Iterator[tuple[int, Any]]:
    """CSV cells are text, read as such (no type guessing): an empty cell is a column the row has not,
    `label` an integer, and a field whose value may be a list holds it as JSON (`_cell`). A row is
    numbered by the line it starts on (a quoted cell may span lines); the header is line 1, and a
    column it names twice is refused (which cell would count?). A cell may be as long as a JSONL value."""
    csv.field_size_limit(CSV_FIELD_LIMIT)
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
                _check_header(path, start, header)
                continue
            yield start, _csv_row(header, values)


def _check_header(path: Path, line: int, header: list[str]) -> None:
    named = [name for name in header if name]
    twice = next((name for index, name in enumerate(named) if name in named[:index]), None)
    if twice is not None:
        raise Unreadable(where(path, line), f"column {twice!r} appears twice: which one counts? rename or drop one")


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
    if key == "label" and isinstance(value, str) and value.strip().isdecimal():  # not `²` or `①` (isdigit)
        return int(value)
    if key not in LIST_CELLS | MESSAGE_CELLS or not isinstance(value, str) or not value.lstrip().startswith("["):
        return value
    try:
        parsed = json.loads(value, object_pairs_hook=unique_keys)
    except (json.JSONDecodeError, RecursionError, RepeatedKey):
        return value  # left as text: the row check says what is wrong with it (or it is a text prompt)
    if key in MESSAGE_CELLS and not (isinstance(parsed, list) and parsed and all(isinstance(m, dict) for m in parsed)):
        return value  # a text that happens to look like JSON (`[1, 2, 3]` as a completion)
    return parsed


def _present(row: Any) -> Any:
    """A row of a table (union schema): the columns it has; a None is a column it has not."""
    return {key: value for key, value in row.items() if value is not None} if isinstance(row, dict) else row
