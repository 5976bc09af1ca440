"""Render one self-contained HTML report (inline CSS and SVG, no network) from stored records.

Reads records only and never imports torch, so a report rebuilds anywhere.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.analysis import selection
from bench.records.results import RunResult, learned_task, retained_tasks
from bench.records.store import atomic_write_text, load_records
from bench.report import aggregate, answer_rows, colors, scales, settings
from bench.report.figures import build_charts, history_charts
from bench.report.front import fold
from bench.report.planning import memory_section, recommendation_section
from bench.report.quality import quality_section
from bench.report.terminal import truncation_notes
from bench.tasks.preference import split_by_row_differs

if TYPE_CHECKING:
    import pandas as pd

    from bench.analysis.history import History
    from bench.analysis.verdicts import Comparison
    from bench.report.aggregate import Answer

TEMPLATES = Path(__file__).parent / "templates"
FAMILY_ORDER = ("accuracy", "gain", "forgetting", "align", "train", "memory", "latency", "params", "storage")


def _family_rank(metric: str) -> tuple[int, str]:
    family = metric.split(".", 1)[0]
    return (FAMILY_ORDER.index(family) if family in FAMILY_ORDER else len(FAMILY_ORDER), metric)


def table_columns(
    summary: pd.DataFrame,
    several_hardware: bool = False,
    not_learned: frozenset[str] = frozenset(),
    losses_differ: bool = False,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Metrics measured somewhere become columns; metrics never measured are listed with their reasons. The
    best value of a column is starred, except timing and measured memory where runs came from several
    hardware (`several_hardware`): those do not compare, and the answers ask them per hardware; and a
    forgetting column stars none of `not_learned` (strategies that did not learn the task forget nothing by
    changing nothing), as the Least forgetting answer ranks them; nor a loss column where the strategies
    minimise different losses (`losses_differ`: cross-entropy, DPO's sigmoid or IPO, RLOO's), whose values
    do not compare (an IPO loss of 9.4 is no worse than a sigmoid one of 0.45)."""
    from bench.analysis.stats import hardware_bound

    columns, unmeasured = [], []
    for metric in sorted(set(summary["metric"]), key=_family_rank):
        rows = summary[summary["metric"] == metric]
        entry = {
            "name": metric,
            "family": metric.split(".", 1)[0],
            "unit": str(rows["unit"].iloc[0]),
            "higher_is_better": bool(rows["higher_is_better"].iloc[0]),
        }
        if int(rows["n"].sum()) == 0:
            reasons = sorted({r for r in rows["reason"] if r})
            spoiled = reasons == [aggregate.CONTAMINATED]  # measured, but every run's timing was contaminated
            unmeasured.append({**entry, "reason": "; ".join(reasons), "contaminated": spoiled})
            continue
        measured = rows[rows["n"] > 0]
        if metric.startswith("forgetting."):
            measured = measured[~measured["strategy"].isin(not_learned)]
        best = measured["mean"].max() if entry["higher_is_better"] else measured["mean"].min()
        entry["best"] = (
            []
            if (several_hardware and hardware_bound(metric)) or measured.empty or (losses_differ and _is_loss(metric))
            else sorted(measured.loc[measured["mean"] == best, "strategy"])
        )
        columns.append(entry)
    return columns, unmeasured


def _is_loss(metric: str) -> bool:
    return metric.startswith("train.") and metric.endswith("final_loss")


def losses_differ(records: list[RunResult]) -> bool:
    """Whether the runs minimise more than one kind of loss (settings.loss_kind)."""
    return len({settings.loss_kind(record) for record in records if record.status == "ok"}) > 1


def model_name(model: dict[str, Any] | str | None) -> str | None:
    """The model as the header names it: its preset, hub id, path, package or GGUF file, or for a
    config folder (the shape with random weights) the folder and that it is a config."""
    if not isinstance(model, dict):
        return model
    source = next((model[k] for k in ("preset", "hub", "path", "packaged", "gguf") if model.get(k)), None)
    return source or (f"{model['config']} (config, random weights)" if model.get("config") else None)


def _cell_text(value: dict[str, Any] | None) -> dict[str, Any]:
    if value is None:
        return {"missing": True, "text": "—", "reason": "not recorded by this strategy"}
    if value["mean"] is None:
        return {"missing": True, "text": "missing", "reason": value["reason"] or "no value"}
    text = scales.fmt(value["mean"])
    if value["std"] is not None and math.isfinite(value["mean"]):  # no spread around inf or NaN
        text += f" ± {scales.fmt(value['std'])}"
    partial = f"{value['n']} of {value['runs']} runs measured; the others: {value['reason'] or 'no value'}"
    partial = partial if value["n"] < value["runs"] else ""
    return {"missing": False, "text": text, "n": value["n"], "reason": partial}


def contradictions(records: list[RunResult]) -> list[str]:
    """Records whose headline quality figure disagrees with their own item outcomes (hand-edited or corrupt:
    the table would show the headline beside intervals from the items), one line each."""
    from bench.analysis.items import headline_gap
    from bench.analysis.stats import is_quality

    found = []
    for record in records:
        for metric in sorted(name for name in record.metrics if is_quality(name)):
            if gap := headline_gap(record, metric):
                headline, from_items, count = gap
                found.append(
                    f"{record.label} seed {record.seed}: {metric} {headline:.4g}, its {count} items {from_items:.4g}"
                )
    return found


def context(
    records: list[RunResult],
    suite_text: str | None = None,
    comparison: Comparison | None = None,
    title: str | None = None,
    history: History | None = None,
    notes: str | None = None,
    unreadable: list[str] | None = None,
    not_run: list[str] | None = None,
) -> dict[str, Any]:
    """Everything the template shows, computed from the records; `notes`: the author's findings
    (plain text, paragraphs separated by blank lines), shown first; `unreadable`: files that may have been
    records and could not be read (their runs are missing), said beside the failed runs, as are `not_run`: the
    runs the suite plans that have no record ("loha seed 0"). The runs compared are chosen by
    selection.comparable (the newest spec, one run per seed), which says what it left out."""
    chosen = selection.comparable(records)
    records = chosen.records
    summary = aggregate.summarize(records)  # the answers leave contaminated timing out themselves
    shown = aggregate.summarize(records, clean_timing=True)  # the table and charts, as the answers rank
    strategies = sorted(set(summary["strategy"])) if len(summary) else []
    palette = colors.colors(strategies)
    ok = [r for r in records if r.status == "ok"]
    several_hardware = len({selection.hardware_of(r) for r in ok}) > 1
    gains = answer_rows.mean_gains(selection.keyed_records(ok))  # each strategy's own task (several suites)
    not_learned = frozenset(strategy for strategy, gain in gains.items() if gain <= 0)
    differ = losses_differ(records)
    columns, unmeasured = table_columns(shown, several_hardware, not_learned, differ) if len(shown) else ([], [])
    answers, qualities = _answers_and_quality(records, summary)
    rows = _strategy_rows(ok, strategies, palette, shown, columns)
    suites = sorted({r.suite for r in records})
    # the hardware of the runs that ran (a failure filed by the driver carries the driver's environment)
    environments = {(r.environment.machine, r.environment.fingerprint): r.environment for r in ok or records}
    budgets = {
        repr(r.budget.get("resolved") or r.spec.get("budget")): r.budget.get("resolved") or r.spec.get("budget")
        for r in records
    }
    figures, chart_notes = build_charts(records, shown, palette) if len(shown) else ([], [])
    commits = sorted({(r.environment.git_commit or "unknown", r.environment.git_dirty) for r in records}, key=str)
    return {
        "title": title or f"Fine-tuning comparison: {', '.join(suites) or 'no records'}",
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suites": suites,
        "task": learned_task(records) if len(suites) == 1 else None,  # several suites: each names its own
        "retained": retained_tasks(records),
        "model": model_name(records[0].spec.get("model")) if len(suites) == 1 else None,
        "budgets": list(budgets.values()),
        "chained": _chained(ok),  # strategies whose parent trained first: not the matched budget alone
        "environments": list(environments.values()),
        "commits": commits,
        "answers": answers,
        "selection": chosen.notes,
        "columns": columns,
        "not_learned": sorted(not_learned),  # no star in a forgetting column (table_columns)
        "families": [(f, sum(c["family"] == f for c in columns)) for f in dict.fromkeys(c["family"] for c in columns)],
        "unmeasured": unmeasured,
        "rows": rows,
        "settings": settings.settings_section(records),  # each strategy's learning rate and non-default options
        "problems": [r for r in records if r.status != "ok"],
        "unreadable": unreadable or [],
        "not_run": not_run or [],
        "inconsistent": contradictions(records),
        "contaminated": [r for r in records if r.status == "ok" and r.timing_contaminated],
        "unfinished": unfinished_answers(records),
        "truncated": truncation_notes(records),
        "split_by_row": sorted({f"{r.label} seed {r.seed}" for r in records if split_by_row_differs(r)}),
        "counts": {s: sum(r.status == s for r in records) for s in ("ok", "failed", "skipped")},
        "charts": figures,
        "chart_notes": chart_notes,  # charts left out for want of data, and why
        "suite_text": suite_text,
        "comparison": comparison,
        "history": history_charts(history),
        "memory": memory_section(records),
        "qualities": qualities,
        "notes": [fold(block) for block in (notes or "").split("\n\n") if block.strip()],  # list items keep their lines
        "recommendations": _recommendations(records),
        "fmt": scales.fmt,
        "share_units": scales.SHARE_UNITS,  # accuracy-like margins in points, never as a share of the value
    }


def _chained(ok: list[RunResult]) -> list[str]:
    """Each strategy that trained after another (`start_from`), in words, for the Matched budget line."""
    keyed = selection.keyed_records(ok)
    return [note for note in (answer_rows.chained_note(keyed, [key]) for key in keyed) if note]


def _strategy_rows(
    ok: list[RunResult],
    strategies: list[str],
    palette: dict[str, str],
    shown: pd.DataFrame,
    columns: list[dict[str, Any]],
) -> list[dict[str, Any]]:
    """The All metrics table's rows: per strategy, its colour, seeds, contaminated runs and cells."""
    keyed, table = selection.keyed_records(ok), aggregate.cells(shown)
    return [
        {
            "strategy": strategy,
            "color": palette[strategy],
            "seeds": sorted({r.seed for r in keyed.get(strategy, [])}),
            "contaminated": sum(r.timing_contaminated for r in keyed.get(strategy, [])),
            "cells": [_cell_text(table.get((strategy, c["name"]))) | {"best": strategy in c["best"]} for c in columns],
        }
        for strategy in strategies
    ]


def unfinished_answers(records: list[RunResult]) -> list[str]:
    """Per generative task whose answers ran to max_new_tokens unfinished in some run: how many, at most,
    of how many (they are scored as they stand; a larger generation.max_new_tokens would finish them)."""
    found: dict[str, tuple[int, int, int, int]] = {}  # task -> (limit, items, most after, most before)
    for record in records:
        for task, info in ((record.model or {}).get("tasks") or {}).items():
            generation = info.get("generation") or {}
            reached = generation.get("reached_limit") or {}
            after, before = reached.get("after") or 0, reached.get("before") or 0
            limit, items, most, base = found.get(task, (generation.get("max_new_tokens"), info.get("eval_items"), 0, 0))
            found[task] = (limit, items, max(most, after), max(base, before))
    return [
        f"{task}: up to {most} of {items} answers of a run reached max_new_tokens ({limit}) unfinished, and "
        f"{base} of the base model's; they are scored as they stand (raise the task's generation.max_new_tokens)"
        for task, (limit, items, most, base) in sorted(found.items())
        if most or base
    ]


def _answers_and_quality(records: list[RunResult], summary: Any) -> tuple[list[Answer], list[dict[str, Any]]]:
    """The answer table and the item-level quality sections, per suite where there are several (each
    suite's verdicts one family, as in a report of that suite alone)."""
    answers, qualities = [], []
    for suite, subset in aggregate.by_suite(records):
        own = summary if suite is None else aggregate.summarize(subset)
        found, family = aggregate.answers_and_family(subset, own) if len(own) else ([], None)
        answers += [replace(item, suite=suite) for item in found]
        section = quality_section(subset, family)
        qualities += [{**section, "suite": suite}] if section else []
    return answers, qualities


def _recommendations(records: list[RunResult]) -> list[dict[str, Any]]:
    """`bench recommend` per device size; per suite where there are several (aggregate.by_suite), each row
    naming its suite."""
    rows = []
    for suite, subset in aggregate.by_suite(records):
        for row in recommendation_section(subset):
            named = {"suite": suite, "notes": [f"{suite}: {note}" for note in row["notes"]]}
            rows.append(row if suite is None else {**row, **named})
    return rows


def render(
    records: Iterable[RunResult],
    suite_text: str | None = None,
    comparison: Comparison | None = None,
    title: str | None = None,
    history: History | None = None,
    notes: str | None = None,
    unreadable: list[str] | None = None,
    not_run: list[str] | None = None,
) -> str:
    """The report as one HTML string (`context`)."""
    page = context(list(records), suite_text, comparison, title, history, notes, unreadable, not_run)
    return template().render(**page)


def template() -> Any:
    """The report's jinja2 template, with the filters it uses."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["j2", "html"]))
    env.filters["runs_of"] = scales.runs_of
    return env.get_template("report.html.j2")


def write_report(
    records: Iterable[RunResult],
    out: Path | str,
    suite_text: str | None = None,
    comparison: Comparison | None = None,
    title: str | None = None,
    history: History | None = None,
    notes: str | None = None,
    unreadable: list[str] | None = None,
    not_run: list[str] | None = None,
) -> Path:
    """Render (`context`) and write atomically; returns the path."""
    out = Path(out)
    atomic_write_text(out, render(records, suite_text, comparison, title, history, notes, unreadable, not_run))
    out.chmod(0o644)  # a report is for sharing (the atomic temp file starts private)
    return out


def report_from_dir(results: Path | str, out: Path | str, suite_text: str | None = None) -> Path:
    """Render every record below a results folder (with history when it holds several nights)."""
    from bench.analysis.history import build

    return write_report(list(load_records(results)), out, suite_text, history=build(results))
