"""`bench`: run | validate | ls | report | compare. Thin: parses arguments and calls bench.api."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from bench.suite import SuiteError, load_suite

console = Console()
errors = Console(stderr=True)


def _run(args: argparse.Namespace) -> int:
    from bench.api import run_suite
    from bench.console import RichProgress
    from bench.execute import Progress

    suite = load_suite(args.suite)
    progress = Progress() if args.quiet else RichProgress(errors)
    try:
        report = run_suite(suite, args.results, progress, args.only)
    finally:
        if isinstance(progress, RichProgress):
            progress.close()
    counts = {status: sum(r.status == status for r in report.results) for status in ("ok", "skipped", "failed")}
    if not args.quiet:
        errors.print(
            f"suite {suite.name}: {len(report.results)} runs ({report.executed} executed, {report.reused} reused): "
            + ", ".join(f"{count} {status}" for status, count in counts.items())
        )
    return 1 if counts["failed"] else 0


def _validate(args: argparse.Namespace) -> int:
    from bench.plan import plan

    status = 0
    for path in args.suites:
        try:
            suite = load_suite(path)
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
    console.print("[bold]backends[/bold]")
    console.print("  " + ", ".join(BACKENDS.names()))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Compare fine-tuning strategies under a matched budget.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train, measure and evaluate every strategy of a suite (resumes)")
    run.add_argument("suite", type=Path, help="suite YAML, e.g. suites/smoke.yaml")
    run.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    run.add_argument("--only", nargs="+", metavar="LABEL", help="run only these strategy labels")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.set_defaults(handler=_run)

    validate = commands.add_parser("validate", help="check suites without running them")
    validate.add_argument("suites", type=Path, nargs="+")
    validate.set_defaults(handler=_validate)

    ls = commands.add_parser("ls", help="list strategies, model presets, tasks and backends")
    ls.set_defaults(handler=_ls)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except SuiteError as error:
        errors.print(f"[red]invalid[/red] {error}", highlight=False)
        return 2
    except KeyboardInterrupt:
        errors.print("[yellow]interrupted[/yellow]: finished runs are stored; run the same command again to resume")
        return 130


if __name__ == "__main__":
    sys.exit(main())
