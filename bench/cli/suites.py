"""`bench validate` and `bench ls`: suites checked without running them, and what a suite can name."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.cli.output import console, errors
from bench.suite import Suite, SuiteError, load_suite


def check_data(suite: Suite, source: str) -> None:
    from bench.tasks.check import check_suite_data

    check_suite_data(suite, source)  # raises SuiteError with every problem of the data


def _validate(args: argparse.Namespace) -> int:
    from bench.plan import plan

    status = 0
    for path in args.suites:
        try:
            suite = load_suite(path)
            check_data(suite, str(path))
        except SuiteError as error:
            errors.print(f"[red]invalid[/red] {error}", highlight=False)
            status = 2
            continue
        runs = plan(suite)
        shape = f"{len(suite.strategies)} strategies x {len(suite.seeds)} seeds = {len(runs)} runs"
        console.print(f"[green]valid[/green] {path}: {shape}")
    return status


def _ls(args: argparse.Namespace) -> int:
    from bench.backends import BACKENDS
    from bench.models.tiny import PRESETS
    from bench.strategies import STRATEGIES
    from bench.tasks import task_names

    console.print("[bold]strategies[/bold]")
    for name in STRATEGIES.names():
        strategy = STRATEGIES.get(name)
        doc = (sys.modules[type(strategy).__module__].__doc__ or "").strip().splitlines()[0]
        console.print(f"  {name:12} objective={strategy.objective:5} {doc}")
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
    validate.add_argument("suites", type=Path, nargs="+")
    validate.set_defaults(handler=_validate)

    ls = commands.add_parser("ls", help="list strategies, model presets, tasks, backends and executors")
    ls.set_defaults(handler=_ls)
