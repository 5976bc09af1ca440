"""`bench compare`, `bench history` and `bench ab`: result sets held against each other, a gate's exit code."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from bench.cli.output import console, errors, plain
from bench.cli.paths import user_path
from bench.suite import load_suite

if TYPE_CHECKING:
    pass


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
    value = _number(text)
    if not 0 < value < 0.5:
        raise argparse.ArgumentTypeError(f"--alpha must be between 0 and 0.5, got {text}")
    return value


def _shift(text: str) -> float:
    value = _number(text)
    if not 0 <= value < math.inf:
        raise argparse.ArgumentTypeError(f"--min-shift must be 0 or more, got {text}")
    return value


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


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
    from bench.cli.console import comparison_table, environment_lines, verdict

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
    for line in environment_lines(result):
        plain(line, to=console)
    for path in (args.json, args.html):
        if path:
            console.print(f"written: {path}")
    return verdict(result, allow_unreadable=args.allow_unreadable)


def _nothing_matched(args: argparse.Namespace) -> str:
    """Why `bench history` has no series: no records at all, or none of the suite or metrics asked for
    (then what there is, so a mistyped --metric 'tokens_per_s' names 'train.tokens_per_s')."""
    from bench.analysis.history import build

    asked = f" for suite {args.suite}" if args.suite else ""
    asked += f" with --metric {args.metric!r}" if args.metric else ""
    if not asked:
        return f"no records under {args.results}"
    everything = build(args.results).series
    if not everything:
        return f"no records under {args.results}"
    suites = sorted({s.suite for s in everything})
    metrics = sorted({s.metric for s in everything if not args.suite or s.suite == args.suite})
    there = f"suites there: {', '.join(suites)}" + (f"; metrics: {', '.join(metrics)}" if metrics else "")
    return f"no series under {args.results}{asked}; {there}"


def _history(args: argparse.Namespace) -> int:
    import json

    from rich.table import Table

    from bench.analysis.history import build, new_regressions

    history = build(args.results, args.suite, args.metric, alpha=args.alpha, min_shift=args.min_shift)
    if not history.series:
        errors.print(_nothing_matched(args))
        return 2
    grid = Table(title=f"history of {args.results}")
    for column in ("suite", "fingerprint", "strategy", "metric", "points", "latest", "change points"):
        grid.add_column(column, overflow="fold")
    for one in history.series:
        if not one.change_points and not args.all:
            continue
        marks = "; ".join(
            f"at night {one.points[c.index].night or c.index + 1} ({(c.commit or '?')[:8]}): {c.shift_text}"
            f" p={c.p:.2g} {'worse' if c.worse else 'better'}"
            + (f", with {'; '.join(c.environment)}" if c.environment else "")
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
        names = [
            f"{s.strategy}: {s.metric} {c.shift_text}"
            + (f" (with {'; '.join(c.environment)})" if c.environment else "")
            for s, c in fresh
        ]
        errors.print("[bold red]NEW CHANGE POINT (worse)[/bold red] " + "; ".join(names))
        return 1
    return 0


def _pairs(items: list[str] | None, flag: str) -> dict[str, str]:
    """NAME=VALUE pairs; a malformed one exits 2 naming it."""
    found = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name:
            plain(f"bench ab: {flag} expects NAME=VALUE, got {item!r}")
            raise SystemExit(2)
        found[name] = value
    return found


def _ab_problem(args: argparse.Namespace) -> str | None:
    """Why `bench ab`'s arguments cannot run (naming the option and its value), or None; checked before
    any round, so a bad one never costs a round."""
    from bench.analysis.ab import rev_problem
    from bench.api import UnknownLabelError, selected_runs

    if args.rounds < 1:
        return f"--rounds must be at least 1, got {args.rounds}"
    if args.max_reruns < 0:
        return f"--max-reruns must be 0 or more, got {args.max_reruns}"
    suite = load_suite(args.suite)  # a bad suite fails here, with its field paths, before anything runs
    try:
        selected_runs(suite, args.only)
    except UnknownLabelError as error:
        return str(error)
    return rev_problem(args.baseline_rev) if args.baseline_rev else None


def _ab(args: argparse.Namespace) -> int:
    import json

    from bench.analysis.ab import RoundError, compare_rounds, load_rounds, run_rounds
    from bench.cli.console import comparison_table, verdict

    problem = _ab_problem(args)
    if problem:
        plain(f"bench ab: {problem}")
        return 2
    baseline_env = _pairs(args.baseline_env, "--baseline-env")
    candidate_env = _pairs(args.candidate_env, "--candidate-env")
    if 0.5**args.rounds > args.alpha:  # the paired sign-flip test's smallest one-sided p is 1 / 2^rounds
        plain(
            f"bench ab: warning: --rounds {args.rounds}: no timing test can reach p<={args.alpha} (its smallest p is "
            f"1/{2**args.rounds}; 5 rounds at least, 7 for room in the family): a timing row beyond its threshold will "
            "say 'cannot tell', one within it 'no change' by the threshold alone"
        )
    thresholds = _thresholds(args.threshold or [])  # malformed: exit 2 now, not after the rounds
    min_effects = _thresholds(args.min_effect or [], "--min-effect", percent=False)
    out = args.out or Path("results") / "ab" / Path(args.suite).stem
    try:
        base, cand = run_rounds(
            Path(args.suite),
            out,
            args.rounds,
            args.baseline_rev,
            baseline_env,
            candidate_env,
            args.only,
            say=lambda message: errors.print(message),
            max_reruns=args.max_reruns,
        )
    except RoundError as error:
        plain(f"bench ab: {error}")
        return 2
    base_runs, cand_runs = load_rounds(base, args.only), load_rounds(cand, args.only)
    result = compare_rounds(base_runs, cand_runs, thresholds, alpha=args.alpha, min_effects=min_effects)
    Console(width=max(console.width, 200)).print(comparison_table(result, show_unchanged=args.all))
    counts = ", ".join(f"{n} {verdict}" for verdict, n in result.counts().items())
    console.print(f"{len(result.changes)} metrics compared over {args.rounds} interleaved rounds: {counts}")
    if args.json:
        args.json.write_text(json.dumps(result.to_json(), indent=1))
    return verdict(result)


def add_parsers(commands: Any) -> None:
    """`compare`, `history` and `ab`, on `bench`'s subparsers."""
    _add_compare(commands)
    _add_history(commands)
    _add_ab(commands)


def _add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare", help="hold a candidate result set against a baseline; exit 1 on regression"
    )
    compare.add_argument("baseline", type=user_path, help="baseline results folder, e.g. results/smoke/<machine>")
    compare.add_argument("candidate", type=user_path, help="candidate results folder")
    compare.add_argument(
        "--fail-on",
        nargs="+",
        action="extend",
        metavar="PATTERN",
        help="metric patterns that gate (default: all but latency p90/p99)",
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
    compare.add_argument("--json", type=user_path, metavar="OUT", help="write the comparison as JSON")
    compare.add_argument(
        "--html", type=user_path, metavar="OUT", help="write the candidate's report with the comparison"
    )
    compare.add_argument("--all", action="store_true", help="also list metrics with no change")
    compare.add_argument(
        "--raw-timing",
        action="store_true",
        help="compare timings as measured, not at equal machine speed (the reference workload; docs/statistics.md)",
    )
    compare.add_argument(
        "--allow-unreadable",
        action="store_true",
        help="compare even when candidate record files cannot be read (truncated, newer schema): they are"
        " still listed, but do not make the exit code 2",
    )
    compare.set_defaults(handler=_compare)


def _add_history(commands: Any) -> None:
    history = commands.add_parser(
        "history", help="every metric's series over commits and nights, with change points (docs/history.md)"
    )
    history.add_argument("results", type=user_path, help="a results root or history store; every record below it")
    history.add_argument("--suite", help="only this suite")
    history.add_argument("--metric", metavar="PATTERN", help="only metrics matching this pattern, e.g. 'train.*'")
    history.add_argument("--json", type=user_path, metavar="OUT", help="write the series and change points as JSON")
    history.add_argument("--all", action="store_true", help="also list series without change points")
    history.add_argument("--alpha", type=_alpha, default=0.05, help="significance of a change point (default 0.05)")
    history.add_argument(
        "--min-shift",
        type=_shift,
        default=0.10,
        help="smallest shift reported: in points for accuracy-like metrics (0.10: 10 points), else relative,"
        " or absolute in the metric's unit from a level of 0 (default 0.10)",
    )
    history.add_argument(
        "--fail-on-new", action="store_true", help="exit 1 when the newest point starts a change for the worse"
    )
    history.set_defaults(handler=_history)


def _add_ab(commands: Any) -> None:
    ab = commands.add_parser(
        "ab", help="run baseline and candidate interleaved, compare round by round (docs/statistics.md)"
    )
    ab.add_argument("suite", type=user_path, help="suite YAML, run by both sides")
    ab.add_argument(
        "--baseline-rev", metavar="REV", help="git revision of the baseline's code (default: this checkout)"
    )
    ab.add_argument(
        "--baseline-env", nargs="+", action="extend", metavar="NAME=VALUE", help="environment of the baseline's runs"
    )
    ab.add_argument(
        "--candidate-env", nargs="+", action="extend", metavar="NAME=VALUE", help="environment of the candidate's runs"
    )
    ab.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="rounds per side (default 7: its smallest p, 1/128, leaves room for the family-wise control;"
        " 5 is the fewest for p<=0.05 with a single test)",
    )
    ab.add_argument("--only", nargs="+", action="extend", metavar="LABEL", help="run only these strategy labels")
    ab.add_argument("--out", type=user_path, help="where the rounds go (default results/ab/<suite>); resumes")
    ab.add_argument("--threshold", action="append", metavar="METRIC=FRACTION", help="as for bench compare")
    _add_gate_options(ab)
    ab.add_argument(
        "--max-reruns",
        type=int,
        default=2,
        help="reruns of a round whose timing another process contaminated, before it is dropped (default 2)",
    )
    ab.add_argument("--json", type=user_path, metavar="OUT", help="write the comparison as JSON")
    ab.add_argument("--all", action="store_true", help="also list metrics with no change")
    ab.set_defaults(handler=_ab)
