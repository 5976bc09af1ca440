"""Check a suite's data before any training: every data file it names is read once, and every problem
is returned (`file:line: field 'x': what is wrong`), so `bench validate` and `bench run` can refuse a
suite whose data no run could load, before a run starts. Never raises on bad data."""

from __future__ import annotations

import json
from pathlib import Path

from bench.spec import ModelSpec, TaskSpec
from bench.suite import Suite, SuiteError
from bench.tasks.files import read_rows
from bench.tasks.rows import CONVERSATIONAL, LOSSES, Rows
from bench.tasks.split import OverlapError, check_overlap, declared_split, hashed_order


def data_problems(suite: Suite) -> list[str]:
    """Every problem of the suite's data files (task, retained tasks, preference pairs), at once."""
    problems: list[str] = []
    template = suite.model.chat_template
    if template and template.strip().endswith((".jinja", ".j2")) and "{" not in template:
        if not Path(template.strip()).expanduser().is_file():
            problems.append(f"model.chat_template: no such template file {template.strip()!r}")
    read: dict[Path, Rows] = {}
    for index, spec in enumerate([suite.task, *suite.retain]):
        field = "task" if index == 0 else f"retain[{index - 1}]"
        if spec.source not in ("jsonl", "dataset"):
            problems.extend(_generation_named(field, spec))
            continue
        path = Path(spec.path or "").expanduser()
        if path not in read:
            read[path] = rows = read_rows(path, spec.name)
            problems.extend(rows.problems)
            if not rows.problems:
                problems.extend(_overlap(spec, rows))
        rows = read[path]
        if rows.problems:
            continue
        problems.extend(_loss(field, spec, rows))
        problems.extend(_generation(field, spec, rows))
        chat = rows.message_contexts or (spec.generation is not None and spec.generation.chat_template)
        needs = rows.format in CONVERSATIONAL or chat
        if needs and suite.model.chat_template is None and not _has_template(suite.model):
            model = suite.model.preset or suite.model.path or suite.model.config
            kind = "preset" if suite.model.preset else "folder"
            what = (
                f"{rows.format} rows" if rows.format in CONVERSATIONAL else "generative contexts with the chat template"
            )
            problems.append(
                f"{field}.path: {what} need a chat template, and model {kind} {model!r} has none: "
                "give one with model.chat_template"
            )
    problems.extend(_preference(suite))
    return problems


def check_suite_data(suite: Suite, source: str) -> None:
    """Raise SuiteError (`<source> (its data)`) with every problem of the suite's data, if any."""
    problems = data_problems(suite)
    if problems:
        raise SuiteError(f"{source} (its data)", problems)


def _has_template(model: ModelSpec) -> bool:
    """False where the model surely has no chat template (the tiny presets; a local folder without one);
    True where it has one or cannot be told without loading it (hub, GGUF: the run then says so)."""
    if model.preset:
        return False
    folder = model.path or model.config
    if not folder:
        return True
    folder_path = Path(folder).expanduser()
    if not folder_path.is_dir():
        return True  # the model loader names a missing folder
    if any((folder_path / name).is_file() for name in ("chat_template.jinja", "chat_template.json")):
        return True
    try:
        config = json.loads((folder_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(config, dict) or bool(config.get("chat_template"))


def _overlap(spec: TaskSpec, rows: Rows) -> list[str]:
    if rows.train:
        train, test = rows.train, hashed_order(rows.items, spec.name)
    else:
        train, test = declared_split(rows.items, spec.test_fraction, spec.name)
    try:
        check_overlap(spec.name, train, test)
    except OverlapError as error:
        return [f"{rows.path}: {error}"]
    return []


def _loss(field: str, spec: TaskSpec, rows: Rows) -> list[str]:
    accepted = LOSSES[rows.format or "prompt-completion"]
    if spec.loss is None or spec.loss in accepted:
        return []
    return [
        f"{field}.loss: {spec.loss!r} does not apply to the {rows.format or 'prompt-completion'} rows of "
        f"{rows.path} (accepted: {', '.join(accepted)})"
    ]


def _generation_named(field: str, spec: TaskSpec) -> list[str]:
    from bench.tasks.olmo_generative import GENERATIVE

    if spec.generation is None or (spec.source == "olmo" and spec.name in GENERATIVE):
        return []
    return [
        f"{field}.generation: task {spec.name!r} ({spec.source}) is multiple choice; `generation` is for "
        f"generative tasks (olmo {', '.join(GENERATIVE)}, or rows with `answer`)"
    ]


def _generation(field: str, spec: TaskSpec, rows: Rows) -> list[str]:
    """`generation:` only on generative rows; message contexts only with the chat template."""
    if spec.generation is None:
        return []
    if not rows.generative:
        return [f"{field}.generation: the rows of {rows.path} are multiple choice; `generation` is for generative rows"]
    if rows.message_contexts and spec.generation.chat_template is False:
        return [f"{field}.generation.chat_template: false, but the contexts of {rows.path} are messages"]
    return []


def _preference(suite: Suite) -> list[str]:
    if suite.preference is None or not suite.preference.jsonl:
        return []
    from bench.tasks.preference import read_jsonl

    try:
        pairs = read_jsonl(Path(suite.preference.jsonl).expanduser())
    except (OSError, ValueError, UnicodeDecodeError) as error:
        return list(getattr(error, "problems", None) or [f"preference.jsonl: {error}"])
    if pairs[0].conversational and suite.model.chat_template is None and not _has_template(suite.model):
        model = suite.model.preset or suite.model.path or suite.model.config
        kind = "preset" if suite.model.preset else "folder"
        return [
            f"preference.jsonl: {pairs[0].format} pairs need a chat template, and model {kind} {model!r} has none: "
            "give one with model.chat_template"
        ]
    return []
