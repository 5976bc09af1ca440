"""`bench ab`: baseline and candidate run interleaved in one session, compared round by round.

A shared machine's speed drifts over minutes (docs/statistics.md): two invocations of the same
commit minutes apart differ by 5-10% with nothing else running, so one invocation against
another cannot be tested for timing. Interleaving puts both sides in the same minutes, and a paired
test over the rounds cancels what drifts.

The baseline is a git revision (checked out once into a worktree under the output folder) and/or
environment variables; the candidate is this checkout, with its own variables if given. Each round
runs the suite once per side, each into its own folder; which side goes first alternates (ABBA).
Verdicts: quality metrics as `bench compare` gives them (runs pooled over the rounds: they repeat
exactly); timings with the round as the unit: each side's mean per round, then a sign-flip
permutation test over the paired round differences (5 rounds reach p = 0.031); the strategies'
timing rows are tested under one suite-level row per metric (`all strategies`, bench/analysis/gate.py).
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from bench.analysis import stats
from bench.analysis.compare import compare_records, threshold_for
from bench.analysis.gate import control_family
from bench.analysis.verdicts import (
    ALL_STRATEGIES,
    BETTER,
    LATENCY_TAIL,
    MISSING,
    NOISE,
    NOT_COMPARABLE,
    SAME,
    TIMING_CONTAMINATED,
    UNKNOWN,
    WORSE,
    Comparison,
    MetricChange,
)
from bench.records.results import RunResult
from bench.records.store import load_records

SOURCE = Path(__file__).resolve().parents[2]  # this checkout (bench/analysis/ab.py): the candidate's code


class RoundError(RuntimeError):
    """A round that could not run or finish (the baseline's code, a crashed `bench run`); the message says
    why in one line, and the round is not marked done."""


def rev_problem(rev: str) -> str | None:
    """Why `rev` cannot be the baseline's code (not a commit of this checkout), or None."""
    try:
        found = _commit(SOURCE, rev)
    except OSError as error:
        return f"--baseline-rev {rev}: cannot run git: {error.strerror or error}"
    return None if found else f"--baseline-rev {rev}: no such commit in {SOURCE}"


def _checkout(rev: str, out: Path) -> Path:
    """A worktree of `rev` under `out`, made once and kept for a resumed run; an A/B folder made against
    another commit is refused (its rounds ran that commit's code)."""
    folder = out / "baseline-src"
    if (folder / "bench").is_dir():
        held, wanted = _commit(folder, "HEAD"), _commit(SOURCE, rev)
        if held != wanted:
            raise RoundError(
                f"--baseline-rev {rev}: {out} holds an A/B against {(held or '?')[:12]}, not {(wanted or '?')[:12]}; "
                "give another --out"
            )
        return folder
    command = ["git", "-C", str(SOURCE), "worktree", "add", "--force", "--detach", str(folder), rev]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RoundError(f"--baseline-rev {rev}: git worktree add failed: {_last_line(done.stderr)}")
    return folder


def _commit(where: Path, rev: str) -> str | None:
    """The commit `rev` names in the checkout at `where`, or None; OSError where git cannot run."""
    command = ["git", "-C", str(where), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"]
    done = subprocess.run(command, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else None


def planned_runs(suite: Path, only: list[str] | None = None) -> set[tuple[str, int]]:
    """(label, seed) of every run a round of `suite` holds: its strategies labelled in `only`, or all."""
    from bench.plan import plan
    from bench.suite import load_suite

    return {(spec.label, spec.seed) for spec in plan(load_suite(suite)) if not only or spec.label in only}


def missing_runs(folder: Path, planned: set[tuple[str, int]]) -> list[tuple[str, int]]:
    """The planned runs with no record (ok, skipped or failed) in a round's folder."""
    found = {(r.label, r.seed) for r in load_records(folder, skipped=[])} if folder.is_dir() else set()
    return sorted(planned - found)


def _names(runs: list[tuple[str, int]]) -> str:
    return ", ".join(f"{label} seed {seed}" for label, seed in runs)


def _last_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _selected(runs: list[RunResult], only: list[str] | None) -> list[RunResult]:
    """A round's records of the strategies labelled in `only` (all when None): a round made for more
    strategies serves a narrower selection."""
    return [r for r in runs if not only or r.label in only]


def run_rounds(
    suite: Path,
    out: Path,
    rounds: int,
    baseline_rev: str | None = None,
    baseline_env: dict[str, str] | None = None,
    candidate_env: dict[str, str] | None = None,
    only: list[str] | None = None,
    say: Callable[[str], None] = print,
    max_reruns: int = 2,
) -> tuple[list[Path], list[Path]]:
    """Run the suite `rounds` times per side, interleaved; returns each side's round folders.
    A round folder that is complete (`.done`, and a record of every run selected by `only`) is kept, so
    an interrupted A/B run resumes; a done round made for other strategies runs the missing ones. A round
    whose timing another process contaminated is run again, up to `max_reruns` times; one still
    contaminated then is dropped with its pair by the comparison (a neighbour costs time, not the verdict).
    Raises RoundError when a round's `bench run` crashed or stored no record of a run."""
    planned = planned_runs(suite, only)
    sides = {
        "baseline": (_checkout(baseline_rev, out) if baseline_rev else SOURCE, baseline_env or {}),
        "candidate": (SOURCE, candidate_env or {}),
    }
    folders: dict[str, list[Path]] = {"baseline": [], "candidate": []}
    for index in range(rounds):
        order = ("baseline", "candidate") if index % 2 == 0 else ("candidate", "baseline")
        for side in order:
            source, extra = sides[side]
            folder = out / side / f"round-{index + 1}"
            folders[side].append(folder)
            if _reusable(folder, planned, f"round {index + 1}/{rounds}: {side}", say):
                continue  # finished by an earlier invocation: resumed, not rerun
            for attempt in range(max_reruns + 1):
                _run_round(suite, folder, source, extra, only, planned, f"{side} round {index + 1}")
                if attempt == max_reruns or not contaminated_round(_selected(list(load_records(folder)), only)):
                    break
                # another process disturbed this round's timing: keep it aside and run it again
                folder.rename(_aside(folder))
                say(f"round {index + 1}/{rounds}: {side} timing contaminated; rerun {attempt + 1}/{max_reruns}")
            say(f"round {index + 1}/{rounds}: {side} done")
    return folders["baseline"], folders["candidate"]


def _aside(folder: Path) -> Path:
    """The first free `<round>.contaminated-N`: an A/B resumed after an interrupted rerun has set some aside."""
    number = 1
    while folder.with_name(f"{folder.name}.contaminated-{number}").exists():
        number += 1
    return folder.with_name(f"{folder.name}.contaminated-{number}")


def _reusable(folder: Path, planned: set[tuple[str, int]], name: str, say: Callable[[str], None]) -> bool:
    """Whether an earlier invocation finished this round for these runs; a done round that lacks some
    (made for other strategies, or left empty by a crash) is no longer done, and says what it lacks."""
    if not (folder / ".done").exists():
        return False
    missing = missing_runs(folder, planned)
    if not missing:
        return True
    say(f"{name} has no record of {_names(missing)}; running it")
    (folder / ".done").unlink()
    return False


def _run_round(
    suite: Path,
    folder: Path,
    source: Path,
    extra: dict[str, str],
    only: list[str] | None,
    planned: set[tuple[str, int]],
    name: str,
) -> None:
    """One side's round: `bench run` into `folder`, marked done only when it stored a record of every
    `planned` run (exit 1 with them all: some runs failed, and their records say why). RoundError otherwise."""
    command = [sys.executable, "-m", "bench.cli", "run", str(suite.resolve()), "--results", str(folder)]
    command += ["--quiet", "--no-report", *(["--only", *only] if only else [])]
    done = subprocess.run(command, cwd=source, env={**os.environ, **extra}, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(done.stderr or "")  # what it said, passed on; its last line names a crash
    missing = missing_runs(folder, planned)
    if done.returncode not in (0, 1) or missing:
        lacks = f" with no record of {_names(missing)}" if missing else ""
        raise RoundError(
            f"{name}: bench run exited {done.returncode}{lacks} (not marked done): {_last_line(done.stderr)}"
        )
    (folder / ".done").write_text("")


def _round_means(rounds: list[list[RunResult]], strategy: str, metric: str) -> list[float | None]:
    means = []
    for runs in rounds:
        values = [
            r.metrics[metric].value
            for r in runs
            if r.status == "ok" and r.label == strategy and metric in r.metrics and r.metrics[metric].value is not None
        ]
        means.append(sum(values) / len(values) if values else None)
    return means


def contaminated_round(runs: list[RunResult], strategy: str | None = None) -> bool:
    """Whether another process disturbed the timing of any run of this round (of one strategy)."""
    return any(
        r.timing_quality is not None and r.timing_quality.contaminated
        for r in runs
        if strategy is None or r.label == strategy
    )


def _clean_pairs(
    change: MetricChange, base: list[list[RunResult]], cand: list[list[RunResult]]
) -> tuple[dict[int, tuple[float, float]], int]:
    """Each round's (baseline, candidate) means of one strategy's metric, by round index, and how many
    round pairs were dropped because either side's timing was contaminated."""
    means = zip(_round_means(base, change.strategy, change.metric), _round_means(cand, change.strategy, change.metric))
    pairs, dropped = {}, 0
    for index, ((b, c), b_runs, c_runs) in enumerate(zip(means, base, cand)):
        if b is None or c is None:
            continue
        if contaminated_round(b_runs, change.strategy) or contaminated_round(c_runs, change.strategy):
            dropped += 1
            continue
        pairs[index] = (b, c)
    return pairs, dropped


def _paired(change: MetricChange, base: list[list[RunResult]], cand: list[list[RunResult]], alpha: float) -> None:
    """Replace a timing row's verdict by the paired test over rounds; a round pair in which either side's
    timing was contaminated is dropped with its pair, and the row says so."""
    pairs, dropped = _clean_pairs(change, base, cand)
    held = "" if change.gating else change.held
    if held.startswith(TIMING_CONTAMINATED):  # the pairs left are clean: they may gate ...
        tail = stats.matches(change.metric, stats.TAILS)  # ... unless a latency tail, which never gates
        change.gating, held = not tail, LATENCY_TAIL if tail else ""
    change.held, change.note = "", ""
    _test_pairs(change, list(pairs.values()), dropped, alpha)
    if held and not change.held:  # the test's own reason (no clean pair, too few rounds) comes first
        change.hold(held)


def _suite_rows(
    changes: list[MetricChange], base: list[list[RunResult]], cand: list[list[RunResult]], alpha: float
) -> list[MetricChange]:
    """One suite-level row per timing hypothesis that two or more strategies' gating rows test: each
    round's mean over those strategies of log(candidate / baseline), sign-flip tested over the rounds.
    Averaging the strategies cancels much of their round-to-round noise, and one row in the family
    instead of one per strategy leaves room for the smallest p of a few rounds (1/128 for 7): the
    strategies' own rows then gate only within a suite-level row that does (bench/analysis/gate.py)."""
    members: dict[str, list[MetricChange]] = {}
    for change in changes:
        key = stats.hypothesis(change.metric)
        if change.metric == key and change.test == "rounds" and change.gating and change.strategy != ALL_STRATEGIES:
            members.setdefault(key, []).append(change)
    rows = []
    for key, group in members.items():
        if len(group) < 2:
            continue
        by_round: dict[int, list[float]] = {}
        for change in group:
            for index, (b, c) in _clean_pairs(change, base, cand)[0].items():
                if b > 0 and c > 0:
                    by_round.setdefault(index, []).append(math.log(c / b))
        logs = [sum(values) / len(values) for _, values in sorted(by_round.items())]
        row = MetricChange(
            strategy=ALL_STRATEGIES,
            metric=key,
            unit=group[0].unit,
            higher_is_better=group[0].higher_is_better,
            baseline=None,
            candidate=None,
            n_baseline=len(logs),
            n_candidate=len(logs),
            change=math.expm1(sum(logs) / len(logs)) if logs else None,
            threshold=group[0].threshold,
            p_value=None,
            test="rounds",
            verdict=UNKNOWN,
            gating=True,
        )
        _test_suite_row(row, logs, group, alpha)
        for change in changes:  # every strategy's row of this hypothesis gates within the suite row
            if change.test == "rounds" and stats.hypothesis(change.metric) == key:
                change.parent = key
        rows.append(row)
    return rows


def _test_suite_row(row: MetricChange, logs: list[float], group: list[MetricChange], alpha: float) -> None:
    """Tested where any of its strategies moved beyond the threshold (their mean may not: one strategy
    slower and one unchanged average to half); it gates itself only beyond the threshold."""
    rounds = f"mean log ratio of {len(group)} strategies in each of {len(logs)} interleaved rounds, paired"
    if not logs:
        row.verdict, row.note = UNKNOWN, ""
        row.hold("no round had a clean pair")
    elif all(c.verdict == SAME for c in group):
        row.verdict, row.note = SAME, f"every strategy within ±{row.threshold:.0%}; {rounds}"
    elif not _too_few_rounds(row, len(logs), rounds, alpha):
        increased = sum(logs) > 0
        row.p_value = stats.paired_p(logs, [0.0] * len(logs), increased=increased)
        if row.p_value > alpha:
            row.verdict, row.note = NOISE, f"within round-to-round noise; {rounds}"
        elif row.change is not None and abs(row.change) <= row.threshold:
            row.verdict = SAME
            row.note = f"beyond round noise, within ±{row.threshold:.0%}: its strategies' rows are tested; {rounds}"
        else:
            row.verdict, row.note = (BETTER if increased == row.higher_is_better else WORSE), rounds


def _too_few_rounds(change: MetricChange, count: int, rounds: str, alpha: float) -> bool:
    """Whether `count` rounds are too few for the sign-flip test to reach alpha (its smallest p is
    1 / 2^count); if so the row says so and does not gate."""
    if 1 / 2**count <= alpha:
        return False
    change.verdict, change.note = UNKNOWN, ""
    change.hold(f"{rounds}: too few for any test to reach p<={alpha}; use >= 5 clean rounds")
    return True


def _test_pairs(change: MetricChange, pairs: list[tuple[float, float]], dropped: int, alpha: float) -> None:
    if not pairs:  # no round test ran: no p (the pooled runs' p that compare_records left is not this test's)
        change.verdict, change.note, change.test, change.p_value = UNKNOWN, "", "rounds", None
        change.n_baseline = change.n_candidate = 0
        change.hold(f"every one of {dropped} round pairs had contaminated timing")
        return
    b_values, c_values = [b for b, _ in pairs], [c for _, c in pairs]
    change.baseline, change.candidate = stats.mean(b_values), stats.mean(c_values)
    change.n_baseline = change.n_candidate = len(pairs)
    change.change = (change.candidate - change.baseline) / abs(change.baseline) if change.baseline else None
    change.test, change.adjusted, change.p_value = "rounds", False, None
    rounds = f"{len(pairs)} interleaved rounds, paired" + (
        f" ({dropped} contaminated round pair{'s' * (dropped > 1)} dropped)" if dropped else ""
    )
    if change.change is None or abs(change.change) <= change.threshold:
        change.verdict, change.note = SAME, f"within ±{change.threshold:.0%}; {rounds}"
        return
    if _too_few_rounds(change, len(pairs), rounds, alpha):
        return
    change.p_value = stats.paired_p(c_values, b_values, increased=change.candidate > change.baseline)
    if change.p_value > alpha:
        change.verdict, change.note = NOISE, f"beyond ±{change.threshold:.0%} but within round-to-round noise; {rounds}"
        return
    change.verdict = BETTER if (change.candidate > change.baseline) == change.higher_is_better else WORSE
    change.note = rounds


def compare_rounds(
    base: list[list[RunResult]],
    cand: list[list[RunResult]],
    thresholds: dict[str, float] | None = None,
    alpha: float = 0.05,
    min_effects: dict[str, float] | None = None,
) -> Comparison:
    """Quality once, seed-paired (bench compare keeps one run per seed a side); every timing row
    re-tested round against round; then every gating test held to alpha as one family."""
    result = compare_records(
        [r for runs in base for r in runs],
        [r for runs in cand for r in runs],
        thresholds=thresholds,
        alpha=alpha,
        baseline_name="baseline (interleaved)",
        candidate_name="candidate (interleaved)",
        adjust_timing=False,  # pairing in time does what the reference workload tried to
        min_effects=min_effects,
        control=False,
    )
    for change in result.changes:
        if stats.matches(change.metric, stats.TIMING) and change.verdict not in (MISSING, NOT_COMPARABLE):
            change.threshold = threshold_for(change.metric, thresholds or {})
            _paired(change, base, cand, alpha)
    result.changes += _suite_rows(result.changes, base, cand, alpha)
    result.issues = [issue for issue in result.issues if issue.kind != "timing contaminated"]
    control_family(result)
    return result


def load_rounds(folders: list[Path], only: list[str] | None = None) -> list[list[RunResult]]:
    """Each round's records, of the strategies labelled in `only` (all when None)."""
    return [_selected(list(load_records(folder)), only) for folder in folders]
