"""`bench`: run | validate | ls | report | compare | history | ab | estimate | recommend | publish | scaling.

Thin: parses arguments and calls bench.api (or the module that does the work)."""

from __future__ import annotations

import argparse
import math
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from bench.cli.advise import add_parsers as add_planning
from bench.cli.output import console, errors, plain
from bench.report.publish import add_parser as add_publish
from bench.suite import Suite, SuiteError, load_suite

if TYPE_CHECKING:
    from bench.analysis.verdicts import Comparison


def check_data(suite: Suite, source: str) -> None:
    from bench.tasks.check import check_suite_data

    check_suite_data(suite, source)  # raises SuiteError with every problem of the data


def _run(args: argparse.Namespace) -> int:
    from bench.api import run_suite
    from bench.cli.console import RichProgress
    from bench.execute import Progress
    from bench.executors.base import SetupError

    suite = load_suite(args.suite)
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
    finally:
        if isinstance(progress, RichProgress):
            progress.close()
    counts = {status: sum(r.status == status for r in report.results) for status in ("ok", "skipped", "failed")}
    if not args.quiet:
        errors.print(
            f"suite {suite.name}: {len(report.results)} runs ({report.executed} executed, {report.reused} reused): "
            + ", ".join(f"{count} {status}" for status, count in counts.items())
        )
    if not args.no_report and report.results:
        from bench.report.html import write_report

        try:
            reports = args.reports or args.results.parent / "reports"
            path = write_report(report.results, reports / f"{suite.name}.html", args.suite.read_text("utf-8"))
            if not args.quiet:
                errors.print(f"report: {path}")
        except Exception as error:  # a report failure must not lose the runs, which are stored already
            errors.print(f"[red]report failed[/red]: {error}; rebuild it with: bench report {args.suite}")
    if not args.quiet and report.results:
        from bench.report.terminal import print_results

        print_results(report.results, Console(width=max(console.width, 120)), errors)
    return 1 if counts["failed"] else 0


def _report(args: argparse.Namespace) -> int:
    from bench.api import report

    try:
        path = report(args.source, args.out, args.results, args.reports, args.history, args.notes)
    except FileNotFoundError as error:
        errors.print(f"[red]error[/red]: {error}")
        return 2
    console.print(f"report: {path}")
    return 0


def _add_gate_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--alpha",
        type=_alpha,
        default=0.05,
        help="false-alarm level of the whole comparison: every gating test is one-sided at alpha after"
        " Benjamini-Hochberg over all of them (default 0.05; docs/statistics.md)",
    )
    parser.add_argument(
        "--min-effect",
        action="append",
        metavar="METRIC=VALUE",
        help="smallest quality change that gates, per metric pattern: points as a fraction for accuracy-like"
        " metrics (accuracy.*=0.02 is 2 points), a relative change for the loss (train.final_loss=0.05);"
        " default: the suite's gate.min_effect, else 1 point and 5%%; repeatable",
    )


def _alpha(text: str) -> float:
    value = float(text)
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"--alpha must be between 0 and 0.5, got {text}")
    return value


def _thresholds(pairs: list[str], flag: str = "--threshold", percent: bool = True) -> dict[str, float]:
    """METRIC=VALUE pairs (a trailing % divides by 100 where `percent`); a malformed one exits 2 naming it."""
    thresholds = {}
    for pair in pairs:
        metric, _, fraction = pair.rpartition("=")
        try:
            scaled = percent and fraction.endswith("%")
            thresholds[metric] = float(fraction.rstrip("%") if scaled else fraction) / (100 if scaled else 1)
            if not math.isfinite(thresholds[metric]) or thresholds[metric] < 0:
                raise ValueError(fraction)
        except ValueError:
            metric = ""
        if not metric:
            errors.print(f"bench: {flag} expects METRIC=VALUE with VALUE >= 0 (e.g. train.*=0.15), got {pair!r}")
            raise SystemExit(2)
    return thresholds


def _compare(args: argparse.Namespace) -> int:
    from bench.api import compare
    from bench.cli.console import comparison_table

    try:
        result = compare(
            args.baseline,
            args.candidate,
            args.fail_on,
            _thresholds(args.threshold or []),
            args.git_rev,
            args.candidate_rev,
            args.json,
            args.html,
            adjust_timing=not args.raw_timing,
            alpha=args.alpha,
            min_effects=_thresholds(args.min_effect or [], "--min-effect", percent=False),
        )
    except FileNotFoundError as error:
        errors.print(f"[red]error[/red]: {error}")
        return 2
    wide = console if console.is_terminal else Console(width=max(console.width, 180))
    wide.print(comparison_table(result, show_unchanged=args.all))
    counts = ", ".join(f"{n} {verdict}" for verdict, n in result.counts().items())
    console.print(f"{len(result.changes)} metrics compared: {counts or 'none'}")
    for path in (args.json, args.html):
        if path:
            console.print(f"written: {path}")
    return _verdict(result)


def _verdict(result: Comparison) -> int:
    """Say whether a comparison regressed, and the exit code that says it too (1: regression)."""
    if result.failed:
        from bench.cli.console import change_text

        names = [f"{c.strategy}: {c.metric} {change_text(c)}" for c in result.regressions]
        names += [f"{i.strategy}: {i.kind}" for i in result.issues if i.gating]
        errors.print("[bold red]REGRESSION[/bold red] " + "; ".join(names))
        return 1
    console.print("[green]no gating regression[/green]")
    return 0


def _history(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from bench.analysis.history import build, new_regressions

    history = build(args.results, args.suite, args.metric, alpha=args.alpha, min_shift=args.min_shift)
    if not history.series:
        errors.print(f"no records under {args.results}" + (f" for suite {args.suite}" if args.suite else ""))
        return 2
    grid = Table(title=f"history of {args.results}")
    for column in ("suite", "fingerprint", "strategy", "metric", "points", "latest", "change points"):
        grid.add_column(column, overflow="fold")
    for one in history.series:
        if not one.change_points and not args.all:
            continue
        marks = "; ".join(
            f"at point {c.index + 1} ({(c.commit or '?')[:8]}): {c.shift:+.1%}"
            f" [{c.shift_low:+.1%}, {c.shift_high:+.1%}] p={c.p:.2g} {'worse' if c.worse else 'better'}"
            for c in one.change_points
        )
        grid.add_row(
            one.suite,
            one.fingerprint,
            one.strategy,
            one.metric,
            str(len(one.points)),
            f"{one.points[-1].mean:.4g} {one.unit}",
            marks or "none",
        )
    wide = Console(width=max(console.width, 200))
    wide.print(grid)
    found = sum(len(s.change_points) for s in history.series)
    left_out = sum(p.left_out for s in history.series for p in s.points)
    console.print(
        f"{len(history.series)} series, {found} change points"
        + (f"; {left_out} contaminated timing values left out" if left_out else "")
        + (f"; {history.skipped_files} JSON files that are not records skipped" if history.skipped_files else "")
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(history.to_json(), indent=1))
        console.print(f"written: {args.json}")
    fresh = new_regressions(history)
    if args.fail_on_new and fresh:
        names = [f"{s.strategy}: {s.metric} {c.shift:+.1%}" for s, c in fresh]
        errors.print("[bold red]NEW CHANGE POINT (worse)[/bold red] " + "; ".join(names))
        return 1
    return 0


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    found = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"bench ab: {flag} expects NAME=VALUE, got {item!r}")
        found[name] = value
    return found


def _ab(args: argparse.Namespace) -> int:
    import json

    from bench.analysis.ab import compare_rounds, load_rounds, run_rounds
    from bench.cli.console import comparison_table

    if args.rounds < 1:
        errors.print(f"bench ab: --rounds must be at least 1, got {args.rounds}")
        return 2
    load_suite(args.suite)  # a bad suite fails here, with its field paths, before anything runs
    out = args.out or Path("results") / "ab" / Path(args.suite).stem
    base, cand = run_rounds(
        Path(args.suite),
        out,
        args.rounds,
        args.baseline_rev,
        _pairs(args.baseline_env, "--baseline-env"),
        _pairs(args.candidate_env, "--candidate-env"),
        args.only,
        say=lambda message: errors.print(message),
        max_reruns=max(args.max_reruns, 0),
    )
    result = compare_rounds(
        load_rounds(base),
        load_rounds(cand),
        _thresholds(args.threshold or []),
        alpha=args.alpha,
        min_effects=_thresholds(args.min_effect or [], "--min-effect", percent=False),
    )
    Console(width=max(console.width, 200)).print(comparison_table(result, show_unchanged=args.all))
    counts = ", ".join(f"{n} {verdict}" for verdict, n in result.counts().items())
    console.print(f"{len(result.changes)} metrics compared over {args.rounds} interleaved rounds: {counts}")
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=1))
    return _verdict(result)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bench", description="Compare fine-tuning strategies under a matched budget.")
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="train, measure and evaluate every strategy of a suite (resumes)")
    run.add_argument("suite", type=Path, help="suite YAML, e.g. suites/smoke.yaml")
    run.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    run.add_argument("--only", nargs="+", metavar="LABEL", help="run only these strategy labels")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--no-report", action="store_true", help="do not render reports/<suite>.html at the end")
    run.add_argument("--reports", type=Path, help="reports folder (default: beside the results folder, ./reports)")
    run.add_argument(
        "--keep-artefacts",
        action="store_true",
        help="keep each run's adapter or weights, tokenizer and scoring tasks beside its record, with the"
        " lm-eval command that reproduces its accuracy (results/<suite>/<machine>/artefacts/<run_id>/)",
    )
    run.add_argument(
        "--record-host", action="store_true", help="store this machine's host name in each record (off: records travel)"
    )
    from bench.executors import EXECUTORS  # names only: an executor's module is imported when chosen

    run.add_argument(
        "--executor",
        choices=EXECUTORS.names(),
        default="local",
        help="local: one run after another on this machine (default); ray: one Ray task per run (docs/scaling.md)",
    )
    run.add_argument(
        "--address", metavar="ADDR", help="--executor ray: the cluster (HEAD:6379); default: a local one for this call"
    )
    run.set_defaults(handler=_run)

    report = commands.add_parser("report", help="render the HTML comparison report from stored records")
    report.add_argument("source", type=Path, help="suite YAML (its records under --results) or a results folder")
    report.add_argument("--out", type=Path, help="output file (default: reports/<suite>.html)")
    report.add_argument("--results", type=Path, default=Path("results"), help="results folder (default: results)")
    report.add_argument("--reports", type=Path, default=Path("reports"), help="reports folder (default: reports)")
    report.add_argument(
        "--history", type=Path, metavar="STORE", help="add trend charts from this history store (docs/history.md)"
    )
    report.add_argument(
        "--notes", type=Path, metavar="FILE", help="the author's findings (plain text), shown at the top of the report"
    )
    report.set_defaults(handler=_report)

    compare = commands.add_parser(
        "compare", help="hold a candidate result set against a baseline; exit 1 on regression"
    )
    compare.add_argument("baseline", type=Path, help="baseline results folder, e.g. results/smoke/<machine>")
    compare.add_argument("candidate", type=Path, help="candidate results folder")
    compare.add_argument(
        "--fail-on", nargs="+", metavar="PATTERN", help="metric patterns that gate (default: all but latency p90/p99)"
    )
    compare.add_argument(
        "--threshold",
        action="append",
        metavar="METRIC=FRACTION",
        help="relative threshold per metric pattern, e.g. train.*=0.2 (default 0.1); repeatable",
    )
    _add_gate_options(compare)
    compare.add_argument("--git-rev", metavar="REV", help="read the baseline folder as committed at this git revision")
    compare.add_argument("--candidate-rev", metavar="REV", help="read the candidate folder at this git revision")
    compare.add_argument("--json", type=Path, metavar="OUT", help="write the comparison as JSON")
    compare.add_argument("--html", type=Path, metavar="OUT", help="write the candidate's report with the comparison")
    compare.add_argument("--all", action="store_true", help="also list metrics with no change")
    compare.add_argument(
        "--raw-timing",
        action="store_true",
        help="compare timings as measured, not at equal machine speed (the reference workload; docs/statistics.md)",
    )
    compare.set_defaults(handler=_compare)

    history = commands.add_parser(
        "history", help="every metric's series over commits and nights, with change points (docs/history.md)"
    )
    history.add_argument("results", type=Path, help="a results root or history store; every record below it")
    history.add_argument("--suite", help="only this suite")
    history.add_argument("--metric", metavar="PATTERN", help="only metrics matching this pattern, e.g. 'train.*'")
    history.add_argument("--json", type=Path, metavar="OUT", help="write the series and change points as JSON")
    history.add_argument("--all", action="store_true", help="also list series without change points")
    history.add_argument("--alpha", type=float, default=0.05, help="significance of a change point (default 0.05)")
    history.add_argument(
        "--min-shift", type=float, default=0.10, help="smallest relative shift reported (default 0.10)"
    )
    history.add_argument(
        "--fail-on-new", action="store_true", help="exit 1 when the newest point starts a change for the worse"
    )
    history.set_defaults(handler=_history)

    ab = commands.add_parser(
        "ab", help="run baseline and candidate interleaved, compare round by round (docs/statistics.md)"
    )
    ab.add_argument("suite", type=Path, help="suite YAML, run by both sides")
    ab.add_argument(
        "--baseline-rev", metavar="REV", help="git revision of the baseline's code (default: this checkout)"
    )
    ab.add_argument("--baseline-env", nargs="+", metavar="NAME=VALUE", help="environment of the baseline's runs")
    ab.add_argument("--candidate-env", nargs="+", metavar="NAME=VALUE", help="environment of the candidate's runs")
    ab.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="rounds per side (default 7: its smallest p, 1/128, leaves room for the family-wise control;"
        " 5 is the fewest for p<=0.05 with a single test)",
    )
    ab.add_argument("--only", nargs="+", metavar="LABEL", help="run only these strategy labels")
    ab.add_argument("--out", type=Path, help="where the rounds go (default results/ab/<suite>); resumes")
    ab.add_argument("--threshold", action="append", metavar="METRIC=FRACTION", help="as for bench compare")
    _add_gate_options(ab)
    ab.add_argument(
        "--max-reruns",
        type=int,
        default=2,
        help="reruns of a round whose timing another process contaminated, before it is dropped (default 2)",
    )
    ab.add_argument("--json", type=Path, metavar="OUT", help="write the comparison as JSON")
    ab.add_argument("--all", action="store_true", help="also list metrics with no change")
    ab.set_defaults(handler=_ab)

    validate = commands.add_parser("validate", help="check suites without running them")
    validate.add_argument("suites", type=Path, nargs="+")
    validate.set_defaults(handler=_validate)

    ls = commands.add_parser("ls", help="list strategies, model presets, tasks, backends and executors")
    ls.set_defaults(handler=_ls)
    add_planning(commands)
    add_publish(commands)
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
