"""What `bench run` prints at its end, as lm-eval prints its results: per strategy the learned task's
accuracy, mean forgetting, training tokens/s and training memory, each as the mean over seeds with
its 95% interval (t over seeds; one seed has none), then the report's one-line answer. Timing is over
the runs whose timing was not contaminated, as the answer ranks it, and a cell says what it left out.
Reads records only (never imports torch)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from bench.analysis import stats
from bench.analysis.selection import comparable, keyed_records
from bench.analysis.timing import clean_timing_runs
from bench.records.results import learned_task
from bench.report.aggregate import QUESTIONS, resolve, summarize
from bench.report.scales import SHARE_UNITS, bounds

if TYPE_CHECKING:
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from bench.records.results import RunResult

# (column heading, metric patterns: the first one measured is shown, as the report's questions pick)
COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("accuracy ({task})", ("accuracy.{task}",)),
    ("forgetting (mean)", ("forgetting.mean",)),
    ("train tokens/s", ("train.tokens_per_s",)),
    ("train memory", next(q.patterns for q in QUESTIONS if q.text.startswith("Least memory"))),
)


def interval(values: list[float]) -> tuple[float, float | None]:
    """(mean, half-width of its 95% t interval over seeds), None with fewer than two seeds."""
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, None
    spread = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return mean, stats.t_quantile(0.975, len(values) - 1) * spread / math.sqrt(len(values))


def figure(values: list[float], unit: str, metric: str = "") -> str:
    """`0.620 ± 0.041` (3 seeds), `0.620` (1 seed); large numbers without decimals; the unit after. An
    interval that passes what the metric can reach (2 seeds: t = 12.7) is shown as its reachable part,
    `0.562 [0.000 to 1.000]`, never `0.562 ± 2.382`."""
    if not values:
        return "-"
    mean, half = interval(values)
    digits = 3 if abs(mean) < 10 else 0
    text = f"{mean:.{digits}f}"
    if half is not None:
        low, high = bounds(metric, unit)  # the charts' axes keep to the same range
        low, high = -math.inf if low is None else low, math.inf if high is None else high
        if mean - half < low or mean + half > high:
            text += f" [{max(low, mean - half):.{digits}f} to {min(high, mean + half):.{digits}f}]"
        else:
            text += f" ± {half:.{digits}f}"
    return f"{text} {unit}" if unit and unit not in SHARE_UNITS else text  # a share needs no unit


def clean_timing(runs: list[RunResult], metric: str) -> tuple[list[float], int]:
    """(the values of the ok runs whose timing was not contaminated, how many measured runs were left out)."""
    measured = [run for run in runs if run.status == "ok" and _number(run.value(metric))]
    clean = [float(run.value(metric)) for run in clean_timing_runs(measured)]  # type: ignore[arg-type]
    return clean, len(measured) - len(clean)


def _number(value: float | None) -> bool:
    """A measured value: recorded, and not NaN."""
    return value is not None and not math.isnan(value)


def _cell(runs: list[RunResult], metric: str | None, summary: pd.DataFrame, strategy: str) -> tuple[str, bool]:
    """One figure of the table, and whether it left out contaminated runs."""
    if metric is None:
        return "-", False
    rows = summary[(summary["strategy"] == strategy) & (summary["metric"] == metric)]
    if len(rows) == 0:
        return "-", False
    unit = str(rows.iloc[0]["unit"])
    if not stats.matches(metric, stats.TIMING):
        return figure(list(rows.iloc[0]["values"]), unit, metric), False
    clean, left_out = clean_timing(runs, metric)
    if not left_out:
        return figure(clean, unit, metric), False
    if not clean:
        return f"- (all {left_out} runs contaminated)", True
    return f"{figure(clean, unit, metric)} ({left_out} of {left_out + len(clean)} contaminated, left out)", True


def results_table(records: list[RunResult]) -> Table:
    """One row per strategy (label, and suite where several); a column whose metric no run measured shows `-`.
    The runs are the report's (bench.analysis.selection.comparable: the newest spec, one run per seed)."""
    from rich.table import Table

    records = comparable(records).records
    summary = summarize(records)
    task = learned_task(records)
    seeds = {row.strategy: int(row.runs) for row in summary.itertuples()} if len(summary) else {}
    title = "results (mean ± 95% interval over seeds; \\[low to high]: its reachable part)"  # \\[: not rich markup
    table = Table(title=title, title_justify="left")
    table.add_column("strategy")
    table.add_column("seeds", justify="right")
    metrics = []
    for heading, patterns in COLUMNS:
        metric = resolve(patterns, summary, task)
        metrics.append(metric)
        table.add_column(heading.replace("{task}", task or "task"), justify="right")
    shown = [metric for metric in metrics if metric]
    table.caption = ("metrics: " + ", ".join(shown)) if shown else "no run measured these metrics"
    contaminated = False
    for strategy, runs in sorted(keyed_records(records).items()):
        cells = [_cell(runs, metric, summary, strategy) for metric in metrics]
        contaminated = contaminated or any(left_out for _, left_out in cells)
        failed = sum(r.status != "ok" for r in runs)
        name = strategy + (f" ({failed} not ok)" if failed else "")
        table.add_row(name, str(seeds.get(strategy, 0)), *(text for text, _ in cells))
    if contaminated:
        table.caption += (
            "; timing over the runs whose timing was not contaminated (another process, CPU steal or scattered"
            " steps), as the answer ranks it"
        )
    return table


def truncation_notes(records: list[RunResult]) -> list[str]:
    """One line per strategy whose training rows were cut at budget.seq_len (budget.truncation), from its
    first run that says so: rows cut lose their end, rows dropped (nothing left to learn) are not trained on."""
    notes = {}
    for record in records:
        cut = record.budget.get("truncation") or {}
        truncated, dropped = cut.get("truncated") or 0, cut.get("dropped") or 0
        if record.label in notes or not (truncated or dropped):
            continue
        line = (
            f"{record.label}: {truncated} of {cut.get('rows')} training rows longer than seq_len {cut.get('seq_len')}"
        )
        line += f" (the longest {cut.get('longest')} tokens)"
        if cut.get("rule"):  # a preference trainer's own rule (bench/training/alignment.py): what it drops
            notes[record.label] = line + f"; {dropped} dropped: {cut['rule']}"
            continue
        line += " were truncated"
        notes[record.label] = line + (f", {dropped} dropped: nothing left to learn in them" if dropped else "")
    return list(notes.values())


def results_lines(records: list[RunResult]) -> tuple[Table, str]:
    """The table and the report's one-line answer."""
    from bench.report.front import one_line_answer

    return results_table(records), one_line_answer(records)


def print_results(records: list[RunResult], out: Console, errors: Console) -> None:
    """The table, then `answer: <the report's one-line answer>`; a failure here is said, never raised
    (the runs are stored, and `bench report` rebuilds everything from them)."""
    try:
        table, answer = results_lines(records)
    except Exception as error:  # noqa: BLE001
        errors.print(f"results table failed: {error}", markup=False, highlight=False)
        return
    out.print(table)
    for line in truncation_notes(records):
        out.print(f"note: {line}", markup=False, highlight=False, soft_wrap=True)
    if random_weights(records):
        answer += " (random weights, model.config: accuracy here says nothing about a trained model)"
    out.print(f"answer: {answer}", markup=False, highlight=False, soft_wrap=True)


def random_weights(records: list[RunResult]) -> bool:
    """Every run's base model was built from a config with random weights (`model: {config: ...}`)."""
    return bool(records) and all((r.spec.get("model") or {}).get("config") for r in records)
