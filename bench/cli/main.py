"""`bench`: run | report | compare | history | ab | validate | ls | estimate | recommend | scaling | publish.

Thin: the parser, with every subcommand registered once by the module of its family (bench/cli/), and
the dispatch to its handler; the handlers call bench.api (or the module that does the work)."""

from __future__ import annotations

import argparse
import signal
import sys

from bench.cli import advise, compare, publish, run, suites
from bench.cli.output import errors
from bench.suite import SuiteError

# in the order `bench --help` lists them: each family adds its subcommands
FAMILIES = (run, compare, suites, advise, publish)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Compare fine-tuning strategies under a matched budget.")
    commands = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        family.add_parsers(commands)
    return parser


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM (a background job's usual stop) is handled like Ctrl-C


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
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
