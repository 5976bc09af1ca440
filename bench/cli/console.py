"""What the terminal shows: progress on long work (run i of n, strategy, seed, phase, step and loss) and
the table of a comparison (rich)."""

from __future__ import annotations

import math
import re
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench.analysis import stats
from bench.analysis.verdicts import BETTER, CHANGED, MISSING, NOISE, NOT_COMPARABLE, SAME, UNKNOWN, WORSE, Comparison
from bench.cli import output
from bench.executors.base import Progress as SuiteProgress
from bench.plan import RunSpec
from bench.records.results import RunResult

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red"}
# the line of a traceback that names the exception: `ValueError: ...`, `torch.OutOfMemoryError: ...`
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit|Failure)\b(:.*)?$")


def reason_headline(reason: str) -> str:
    """A failure's reason in one line: a traceback's exception line (the last one, the exception that
    ended the run), else the reason's first line, which is the driver's own (its log tail follows)."""
    lines = [line for line in reason.strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if any(line.startswith("Traceback (most recent call last)") for line in lines):
        raised = [line for line in lines if EXCEPTION_LINE.match(line)]
        if raised:
            return raised[-1]
    return lines[0]


class RichProgress(SuiteProgress):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task_id: Any = None
        self.header = ""

    def start_run(self, index: int, total: int, spec: RunSpec) -> None:
        self.header = f"run {index + 1}/{total} {spec.label} seed={spec.seed}"
        if self.task_id is None:
            self.bar.start()
            self.task_id = self.bar.add_task(self.header, total=spec.budget.steps, info="starting")
        self.bar.reset(self.task_id, total=spec.budget.steps, description=self.header, info="starting")

    def event(self, event: dict[str, Any]) -> None:
        if self.task_id is None:
            return
        kind = event.get("event")
        logged = not self.console.is_terminal  # a log file sees no bar: phases and every tenth of the steps as lines
        if kind == "step":
            self.bar.update(
                self.task_id, completed=event["step"], total=event["total"], info=f"loss {event['loss']:.4f}"
            )
            if logged and event["step"] % max(1, event["total"] // 10) == 0:
                self.console.print(f"  {self.header}: step {event['step']}/{event['total']} loss {event['loss']:.4f}")
        elif kind == "phase":
            self.bar.update(self.task_id, info=event["phase"])
            if logged:
                self.console.print(f"  {self.header}: {event['phase']}")
        elif kind == "note":
            self.bar.console.print(f"  [dim]{event['message']}[/dim]")

    def end_run(self, result: RunResult, reused: bool) -> None:
        style = STATUS_STYLE[result.status]
        origin = "stored, reused" if reused else f"{result.wall_seconds:.1f} s"
        reason = f": {reason_headline(result.reason)}" if result.reason else ""
        self.console.print(f"[{style}]{result.status:7}[/{style}] {result.label} seed={result.seed} ({origin}){reason}")

    def close(self) -> None:
        if self.task_id is not None:
            self.bar.stop()


def print_learning_rates(records: list[RunResult], out: Console, errors: Console) -> None:
    """The line above `bench run`'s table: each strategy's learning rate, `(default)` where it is its
    strategy's (bench/report/settings.py, as the report's Settings table), and where a budget was matched
    by seconds the steps each did; a failure is said, never raised."""
    from bench.report.settings import rates_line, steps_line

    try:
        lines = [rates_line(records), steps_line(records)]
    except Exception as error:  # noqa: BLE001 (the runs are stored; the report says the same)
        errors.print(f"learning rates failed: {error}", markup=False, highlight=False)
        return
    for line in filter(None, lines):
        out.print(line, markup=False, highlight=False, soft_wrap=True)


VERDICT_STYLE = {
    BETTER: "green",
    WORSE: "bold red",
    SAME: "",
    NOISE: "dim",
    UNKNOWN: "yellow",
    MISSING: "magenta",
    CHANGED: "cyan",
    NOT_COMPARABLE: "yellow",
}


def change_text(change: Any) -> str:
    """Accuracy-like quality in points (docs/statistics.md: never %, whatever its verdict), a loss as a
    ratio, everything else relative."""
    if change.effect is not None and change.scale == "points":
        return f"{100 * change.effect:+.1f} pt"
    if change.effect is not None and change.scale == "ratio":  # the tested effect (the seeds' mean log ratio),
        return f"{math.expm1(change.effect):+.1%}"  # as the note's interval has it, not the ratio of means
    if _in_points(change) and change.baseline is not None and change.candidate is not None:
        moved = change.candidate - change.baseline
        return f"{100 * moved:+.1f} pt" if math.isfinite(moved) else "diverged"  # not "+nan pt"
    return "" if change.change is None else f"{change.change:+.1%}"


def _in_points(change: Any) -> bool:
    """A quality metric of an accuracy-like unit: its change is said in points even without a test."""
    return change.scale in (None, "points") and stats.is_quality(change.metric) and change.unit in stats.POINT_UNITS


def _missing_on_both_sides(change: Any) -> bool:
    """A metric neither side measured (its note may start with why it is held, "not gated: ...")."""
    return change.verdict == MISSING and change.baseline is None and change.candidate is None


def comparison_table(comparison: Comparison, show_unchanged: bool = False) -> Any:
    """A rich Table of the comparison: every metric that is not a plain "no change" (or all of them)."""
    from rich.table import Table

    from bench.report.scales import fmt

    out = Table(title=f"{comparison.baseline} -> {comparison.candidate}", title_justify="left")
    for column in ("strategy", "metric", "baseline", "candidate", "change", "p", "q", "verdict", "note"):
        numeric = column in ("baseline", "candidate", "change", "p", "q")
        out.add_column(column, justify="right" if numeric else "left", no_wrap=column != "note")
    shown = [c for c in comparison.ordered() if show_unchanged or not (c.verdict == SAME or _missing_on_both_sides(c))]
    quiet = len(comparison.changes) - len(shown)
    footnotes = repeated_parts([change.note for change in shown])
    for change in shown:
        arrow = "↑" if change.higher_is_better else "↓"
        style = VERDICT_STYLE.get(change.verdict, "")
        verdict = change.verdict + (" (gating)" if change.regression else "")
        out.add_row(
            change.strategy,
            f"{change.metric} {arrow}",
            "—" if change.baseline is None else f"{fmt(change.baseline)} {change.unit}",
            "—" if change.candidate is None else f"{fmt(change.candidate)} {change.unit}",
            change_text(change),
            "" if change.p_value is None else f"{change.p_value:.3g}",
            "" if change.q_value is None else f"{change.q_value:.3g}",
            f"[{style}]{verdict}[/{style}]" if style else verdict,
            with_footnotes(change.note, footnotes),
        )
    for issue in comparison.issues:
        out.add_row(issue.strategy, "(run)", "", "", "", "", "", issue.kind, issue.detail)
    caption = [f"{quiet} rows hidden: no change, or missing on both sides (--all shows them)"] if quiet else []
    caption += [f"[{number}] {part}" for part, number in footnotes.items()]
    if caption:
        out.caption, out.caption_justify = "\n".join(caption), "left"
    return out


FOOTNOTE_LENGTH = 60  # a part of a note this long, said on two rows or more, is said once under the table


def environment_lines(comparison: Comparison) -> list[str]:
    """What differs between the compared runs besides what is compared, and, on a regression, that more than
    the code changed: a new package or other hardware is a cause to rule out before the commit."""
    if not comparison.environment:
        return []
    lines = ["the sides' runs differ in: " + "; ".join(change.text() for change in comparison.environment)]
    besides_code = [change.text() for change in comparison.environment if change.name != "commit"]
    if comparison.failed and besides_code:
        lines.append(f"not only the code changed ({'; '.join(besides_code)}): rule that out before the commit")
    return lines


def repeated_parts(notes: list[str]) -> dict[str, int]:
    """The long parts ("; "-separated) that several notes share, numbered in order of first use: the 9-line
    reason one session a side cannot test timing was printed on every timing row."""
    counts: dict[str, int] = {}
    for note in notes:
        for part in dict.fromkeys(note_parts(note)):
            counts[part] = counts.get(part, 0) + 1
    long = [part for part, count in counts.items() if count >= 2 and len(part) >= FOOTNOTE_LENGTH]
    return {part: number for number, part in enumerate(long, start=1)}


def with_footnotes(note: str, footnotes: dict[str, int]) -> str:
    """The note with each shared long part replaced by its number, `[1]` (not rich markup: it starts with a digit)."""
    return "; ".join(f"[{footnotes[part]}]" if part in footnotes else part for part in note_parts(note))


def note_parts(note: str) -> list[str]:
    """A note's "; "-separated parts, split only outside brackets: "hardware differs (cpu A -> B; isa x -> y)"
    is one part (cut at its inner "; ", its footnotes read "(cpu A -> B" and "isa x -> y)")."""
    parts, depth, start = [], 0, 0
    for index, char in enumerate(note):
        depth += {"(": 1, "[": 1, ")": -1, "]": -1}.get(char, 0)
        if depth <= 0 and note.startswith("; ", index):
            parts.append(note[start:index])
            start = index + 2
    return [*parts, note[start:]]


def verdict(result: Comparison, allow_unreadable: bool = False) -> int:
    """Say whether a comparison regressed, and the exit code that says it too (1: regression; 2: nothing
    was compared, so the gate has no evidence either way: every run failed, or nothing was comparable; 2
    also for bad input: a record that contradicts itself, or a candidate record file that could not be read,
    unless `allow_unreadable`)."""
    for side, files in result.unreadable.items():
        listed = "\n  ".join(files)
        output.plain(
            f"bench: WARNING: {len(files)} {side} record file(s) unreadable, so runs may be missing:\n  {listed}"
        )
    bad = [f"{issue.strategy}: {issue.detail}" for issue in result.bad_input]
    if not allow_unreadable:
        unread = result.unreadable.get("candidate", [])
        bad += [f"unreadable candidate record {file} (fix or remove it, or pass --allow-unreadable)" for file in unread]
    if bad:
        names = [f"{c.strategy}: {c.metric}" for c in result.regressions]
        output.errors.print("[bold red]BAD INPUT[/bold red]" + (f" (and REGRESSION {_first(names)})" if names else ""))
        for line in bad:
            output.plain(f"  {line}")
        return 2
    if not result.changes and not result.failed:
        kinds = sorted({issue.kind for issue in result.issues})
        output.errors.print(
            "[red]nothing compared[/red]: no strategy has successful, comparable runs on both sides"
            + (f" ({', '.join(kinds)}: see the issues above)" if kinds else "")
        )
        return 2
    if result.failed:
        names = [f"{c.strategy}: {c.metric} {change_text(c)}" for c in result.regressions]
        names += [f"{i.strategy}: {i.kind}" for i in result.issues if i.gating]
        output.errors.print("[bold red]REGRESSION[/bold red] " + _first(names))
        return 1
    output.console.print("[green]no gating regression[/green]")
    return 0


SAID_AT_MOST = 10  # regressions named on the verdict's line; a sweep's 211 made one line of 7.5 KB


def _first(names: list[str]) -> str:
    """The regressions on one line, the first SAID_AT_MOST of them where there are more (all are in the table
    above and in --json)."""
    if len(names) <= SAID_AT_MOST:
        return "; ".join(names)
    shown = "; ".join(names[:SAID_AT_MOST])
    return f"{len(names)} gating changes, the first {SAID_AT_MOST}: {shown}; the rest in the table above (or --json)"
