"""`bench publish RESULTS --out SITE`: a static site of every result set below a results folder
(bench/report/publish.py builds it). Also `python -m bench.cli.publish RESULTS --out SITE`, for a
checkout that has not installed the `bench` command."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.cli.paths import user_path

PUBLISH_DOC = "`bench publish RESULTS --out SITE`: a static site of every result set below a results folder."


def _arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("results", type=user_path, help="results root, e.g. results (every record below it)")
    parser.add_argument("--out", type=user_path, default=Path("site"), help="site folder (default: site)")
    parser.set_defaults(handler=_handle)
    return parser


def _handle(args: argparse.Namespace) -> int:
    from bench.report.publish import LeakError, publish  # imported when used: `bench --help` stays light

    try:
        index = publish(args.results, args.out)
    except (FileNotFoundError, FileExistsError, LeakError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"site: {index}")
    return 0


def add_parsers(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """`publish`, on `bench`'s subparsers."""
    help = "build a static site (index, reports, records) of every result set below a results root"
    return _arguments(commands.add_parser("publish", help=help, description=help))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli.publish", description=PUBLISH_DOC)
    return _handle(_arguments(parser).parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
