"""`bench run` and `bench report`: a suite trained, measured and evaluated (resuming), and its report."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench.cli.output import console, errors, plain
from bench.cli.paths import user_path
from bench.cli.suites import check_data, load

if TYPE_CHECKING:
    from bench.records.results import RunResult
    from bench.suite import Suite


def _run(args: argparse.Namespace) -> int:
    from bench.api import UnknownLabelError, run_suite, selected_runs
    from bench.cli.console import RichProgress
    from bench.executors.base import Progress, SetupError, StoreError

    suite = load(args.suite)
    if args.only:
        try:
            selected_runs(suite, args.only)
        except UnknownLabelError as error:
            plain(f"bench run: {error}")
            return 2
    check_data(suite, str(args.suite))  # bad data: exit 2 with every problem, before any run
    if args.address and args.executor != "ray":
        plain("bench run: --address is for --executor ray")
        return 2
    progress = Progress() if args.quiet else RichProgress(errors)
    try:
        report = run_suite(
            suite,
            args.results,
            progress,
            args.only,
            executor=args.executor,
            address=args.address,
            keep_artefacts=args.keep_artefacts,
            record_host=args.record_host,
        )
    except SetupError as error:  # before any run: an executor that cannot start, an unusable results folder
        plain(f"bench run: {error}")
        return 2
    except StoreError as error:  # a record that cannot be stored: the runs after it could not be either
        plain(f"bench run: {error}")
        plain("bench run: stopped; finished runs are stored; run the same command again to resume")
        return 2
    finally:
        if isinstance(progress, RichProgress):
            progress.close()
    counts = {status: sum(r.status == status for r in report.results) for status in ("ok", "skipped", "failed")}
    if args.quiet:  # no progress, but a failure is never silent: exit 1 comes with its reasons
        from bench.cli.console import reason_headline

        for failed in (r for r in report.results if r.status == "failed"):
            why = reason_headline(failed.reason or "") or "no reason recorded"
            plain(f"failed {failed.label} seed={failed.seed}: {why}")
    if not args.quiet or counts["failed"]:
        errors.print(
            f"suite {suite.name}: {len(report.results)} runs ({report.executed} executed, {report.reused} reused): "
            + ", ".join(f"{count} {status}" for status, count in counts.items())
        )
    if not args.no_report and report.results:
        _write_report(args, suite, report.results)
    if not args.quiet and report.results:
        from bench.cli.console import print_learning_rates
        from bench.report.terminal import print_results

        wide = Console(width=max(console.width, 120))
        print_learning_rates(report.results, wide, errors)  # above the table: they decide its ranking
        print_results(report.results, wide, errors)  # its last line is the answer
    return 1 if counts["failed"] else 0


def _write_report(args: argparse.Namespace, suite: Suite, ran: list[RunResult]) -> None:
    """The suite's HTML report; a failure to write it is one line with the command that rebuilds it."""
    reports = args.reports or args.results.parent / "reports"
    try:
        from bench.records.portable import scrub_suite
        from bench.report.html import write_report

        records = _suite_records(suite, args.results, ran) if args.only else ran
        suite_text = scrub_suite(args.suite.read_text("utf-8"))  # as its records: no secret, no path of ours
        path = write_report(records, reports / f"{suite.name}.html", suite_text)
        if not args.quiet:
            errors.print(f"report: {path}")
    except Exception as error:  # a report failure must not lose the runs, which are stored already
        from rich.markup import escape

        again = shlex.join(["bench", "report", str(args.suite), "--results", str(args.results)])
        again += " --reports " + shlex.quote(str(reports))
        said = f"[red]report failed[/red]: {escape(str(error))}; rebuild it with: {escape(again)}"
        errors.print(said, highlight=False, soft_wrap=True)  # one line: the command copies whole


def _suite_records(suite: Suite, results: Path, ran: list[RunResult]) -> list[RunResult]:
    """What the suite's report shows after `--only`: every stored record of the suite on the machines
    these runs landed on, as a rerun of the whole suite would show, not just the runs selected."""
    from bench.api import stored_runs

    return stored_runs(suite, results, {record.environment.machine for record in ran}) or ran


def _report(args: argparse.Namespace) -> int:
    from bench.api import ReportSourceError, report

    if args.history is not None and not args.history.exists():
        plain(f"bench report: --history {args.history}: no such folder")
        return 2
    try:
        path = report(args.source, args.out, args.results, args.reports, args.history, args.notes)
    except FileNotFoundError as error:
        errors.print(f"[red]error[/red]: {error}")
        return 2
    except ReportSourceError as error:
        plain(f"bench report: {error}")
        return 2
    console.print(f"report: {path}")
    return 0


def add_parsers(commands: Any) -> None:
    """`run` and `report`, on `bench`'s subparsers."""
    run = commands.add_parser("run", help="train, measure and evaluate every strategy of a suite (resumes)")
    run.add_argument("suite", type=user_path, help="suite YAML, e.g. suites/smoke.yaml")
    run.add_argument("--results", type=user_path, default=Path("results"), help="results folder (default: results)")
    run.add_argument("--only", nargs="+", action="extend", metavar="LABEL", help="run only these strategy labels")
    run.add_argument(
        "--quiet",
        action="store_true",
        help="print nothing unless a run fails; then each failure and the summary",
    )
    run.add_argument("--no-report", action="store_true", help="do not render reports/<suite>.html at the end")
    run.add_argument(
        "--reports",
        type=user_path,
        help="reports folder (default: reports/ beside the results folder: ./reports for --results results)",
    )
    run.add_argument(
        "--keep-artefacts",
        action="store_true",
        help="keep each run's adapter or weights, tokenizer and scoring tasks beside its record, with the"
        " lm-eval command that reproduces its accuracy (results/<suite>/<machine>/artefacts/<run_id>/)",
    )
    run.add_argument(
        "--record-host", action="store_true", help="store this machine's host name in each record (off: records travel)"
    )
    run.add_argument(
        "--executor",
        default="local",
        help="local: one run after another on this machine (default); ray: one Ray task per run (docs/scaling.md);"
        " or one a suite's plugin registers (checked once the suite's plugins are imported)",
    )
    run.add_argument(
        "--address", metavar="ADDR", help="--executor ray: the cluster (HEAD:6379); default: a local one for this call"
    )
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="render the HTML comparison report from stored records")
    report.add_argument(
        "source", type=user_path, help="suite YAML (its records under --results), a results folder, or one record file"
    )
    report.add_argument("--out", type=user_path, help="output file (default: <--reports>/<suite>.html)")
    report.add_argument("--results", type=user_path, default=Path("results"), help="results folder (default: results)")
    report.add_argument("--reports", type=user_path, default=Path("reports"), help="reports folder (default: reports)")
    report.add_argument(
        "--history", type=user_path, metavar="STORE", help="add trend charts from this history store (docs/history.md)"
    )
    report.add_argument(
        "--notes",
        type=user_path,
        metavar="FILE",
        help="the author's findings (plain text), shown at the top of the report",
    )
    report.set_defaults(handler=_report)
