"""Your own data (`source: jsonl` or `dataset`, `path:`): a JSONL file, a JSON array, a parquet or CSV
file, or a `datasets` folder (save_to_disk); read offline by bench.tasks.files.

Training rows take one of TRL's SFT formats (bench.tasks.rows); evaluation rows are multiple choice:
  {"prompt": "Q: 2+2?\\nA:", "completion": "4"}                        training example
  {"context": "Q: 2+3?\\nA:", "choices": ["5", "6"], "label": 0}        evaluation item
An evaluation item may carry an "id" (a string, or an integer read as its text; default
`<task>/line<N>`). Blank lines are skipped; unknown keys are errors (a typo must not silently drop
data). When the file holds no training rows, the evaluation items are split by `test_fraction`
(bench.tasks.split) and the held-in part teaches the correct choice. Training prompts that repeat an
evaluation context are rejected.
Every problem of the file is reported at once, each naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path

from bench.spec import TaskSpec
from bench.tasks.base import ChoiceItem, Example, TaskData
from bench.tasks.files import read_rows
from bench.tasks.rows import LOSSES, Rows
from bench.tasks.split import hold_out, split_info


class JsonlError(ValueError):
    """Every problem of a data file, one per line (`file:line: field 'x': what is wrong`)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


def read_jsonl(path: Path, name: str) -> tuple[list[Example], list[ChoiceItem]]:
    """Parse the file into training examples and evaluation items; raise with every problem."""
    rows = read_data(path, name)
    return rows.train, rows.items


def read_data(path: Path, name: str) -> Rows:
    if not path.exists():
        raise FileNotFoundError(f"task {name!r}: no such JSONL file {str(path)!r}")
    rows = read_rows(path, name)
    if rows.problems:
        raise JsonlError(rows.problems)
    return rows


def loss_for(rows_format: str | None, loss: str | None) -> str:
    """The tokens that carry the loss: the suite's `loss`, else the format's default (TRL's)."""
    accepted = LOSSES[rows_format or "prompt-completion"]
    if loss is None:
        return accepted[0]
    if loss not in accepted:
        raise ValueError(f"loss {loss!r} does not apply to {rows_format} rows (accepted: {', '.join(accepted)})")
    return loss


def build_jsonl(
    name: str,
    path: str,
    train_size: int,
    eval_limit: int,
    test_fraction: float,
    loss: str | None = None,
    source: str = "jsonl",
) -> TaskData:
    file = Path(path).expanduser()
    rows = read_data(file, name)
    given = "file: training rows and evaluation rows"
    train, test, split = hold_out(name, rows.items, rows.train or None, test_fraction, given, "the evaluation rows")
    info = {"source": source, "path": str(file), **split_info(split, train, test, eval_limit)}
    if rows.format not in (None, "prompt-completion") or loss is not None:  # older records stay as they were
        info["format"] = rows.format or "prompt-completion"
        info["loss"] = loss_for(rows.format, loss)
    return TaskData(
        name=name, train=train[:train_size], eval=test[:eval_limit], description=f"JSONL {file.name}", info=info
    )


def load(spec: TaskSpec, seed: int) -> TaskData:
    """The `jsonl` and `dataset` task sources (bench.tasks.TASK_SOURCES); the split is hashed: no seed."""
    return build_jsonl(
        spec.name, spec.path or "", spec.train_size, spec.eval_limit, spec.test_fraction, spec.loss, spec.source
    )
