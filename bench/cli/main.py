"""`bench`: run | report | compare | history | ab | validate | ls | estimate | recommend | scaling | publish.

Thin: the parser, with every subcommand registered once by the module of its family (bench/cli/), and
the dispatch to its handler; the handlers call bench.api (or the module that does the work)."""

from __future__ import annotations

import argparse
import signal
import sys

from bench.cli import advise, compare, publish, run, suites
from bench.cli.output import errors, plain
from bench.cli.paths import output_problem
from bench.suite import SuiteError

# in the order `bench --help` lists them: each family adds its subcommands
FAMILIES = (run, compare, suites, advise, publish)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Compare fine-tuning strategies under a matched budget.")
    commands = parser.add_subparsers(dest="command", required=True)
    for family in FAMILIES:
        family.add_parsers(commands)
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM (a background job's usual stop): handled like Ctrl-C, exit 143 (128 + 15) as shells expect."""


class HungUp(Terminated):
    """SIGHUP (the terminal or ssh session closed): handled like SIGTERM, exit 129 (128 + 1)."""


# the stop signal that arrived, if any: a library between the handler and main (Ray's wait) may turn the
# exception it raised into a plain KeyboardInterrupt, and the exit code must still say which signal it was
_received: list[type[Terminated]] = []


def _interrupt(signum: int, frame: object) -> None:
    stop = HungUp if signum == getattr(signal, "SIGHUP", None) else Terminated
    _received.append(stop)
    raise stop


EXIT_CODES = {HungUp: 129, Terminated: 143}  # else Ctrl-C: 130


def exit_code(interrupt: KeyboardInterrupt) -> int:
    """128 + the signal that stopped the command: its own exception's, else the first one received."""
    return EXIT_CODES.get(type(interrupt)) or (EXIT_CODES[_received[0]] if _received else 130)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    problem = output_problem(args)
    if problem:
        plain(f"bench {args.command}: {problem}")
        return 2
    _received.clear()
    signal.signal(signal.SIGTERM, _interrupt)
    if hasattr(signal, "SIGHUP"):  # not on Windows
        signal.signal(signal.SIGHUP, _interrupt)
    try:
        return args.handler(args)
    except SuiteError as error:
        errors.print(f"[red]invalid[/red] {error}", highlight=False)
        return 2
    except OSError as error:  # a file it reads or writes: bad input or a full disk, never a regression's exit 1
        plain(f"bench {args.command}: {error.strerror or error}" + (f": {error.filename}" if error.filename else ""))
        return 2
    except KeyboardInterrupt as interrupt:
        try:
            errors.print("[yellow]interrupted[/yellow]: finished runs are stored; run the same command again to resume")
        except OSError:  # the terminal it would go to has closed (SIGHUP)
            pass
        return exit_code(interrupt)


if __name__ == "__main__":
    sys.exit(main())
