"""The report's item-level view of quality: every accuracy and forgetting figure with its 95%
interval from the paired analysis (bench/analysis/items.py), and each strategy against the reference one
(the most accurate) with the difference, its interval, and the minimum detectable effect. Whether a
difference is beyond noise is decided with the answer table's quality verdicts as one family
(bench/report/family.py): with four strategies and two metrics, six tests at 0.05 each call something
beyond noise in up to a quarter of reports where nothing differs."""

from __future__ import annotations

from typing import Any

from bench.analysis.items import Interval, metric_difference, metric_interval, sentence
from bench.records.results import RunResult, learned_task, retained_tasks
from bench.report import aggregate
from bench.report.family import table_pairs


def _cell(estimate: Interval | None) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {
        "text": f"{100 * estimate.mean:+.1f}" if estimate.mean < 0 else f"{100 * estimate.mean:.1f}",
        "interval": f"{100 * estimate.low:.1f} to {100 * estimate.high:.1f}",
        "mde": f"{100 * estimate.mde:.1f}",
        "beyond": estimate.beyond_noise,
        "notes": estimate.notes,
    }


def quality_section(records: list[RunResult], answers: list[aggregate.Answer] | None = None) -> dict[str, Any] | None:
    """None unless the records hold per-item outcomes (schema 5 and later). answers: the report's answer
    table, whose quality verdicts are decided with this table's (computed here when not given)."""
    keyed = aggregate.keyed_records([r for r in records if r.status == "ok" and r.items])
    task = learned_task(records)
    if not keyed or task is None:
        return None
    retained = [t for t in retained_tasks(records) if any(t in (r.items or {}) for r in records)]
    metrics = [f"accuracy.{task}", f"gain.{task}", *(f"forgetting.{t}" for t in retained)]
    if retained:
        metrics.append("forgetting.mean")
    rows = []
    for strategy, runs in sorted(keyed.items()):
        rows.append(
            {"strategy": strategy, "seeds": len(runs), "cells": [_cell(metric_interval(runs, m)) for m in metrics]}
        )
    compared = [f"accuracy.{task}", "forgetting.mean"] if retained else [f"accuracy.{task}"]
    ranked, pairs = table_pairs(keyed, compared)
    if not ranked:
        return None
    family = aggregate.quality_family(records, aggregate.answers(records) if answers is None else answers)
    comparisons: dict[str, dict[str, Any]] = {strategy: {} for strategy in ranked[1:]}
    design = None
    for strategy, reference, metric in pairs:
        difference = metric_difference(keyed[strategy], keyed[reference], metric)
        cell = comparisons[strategy][metric] = _cell(difference)
        design = design or difference
        verdict = family.verdict(strategy, reference, metric)
        if cell is not None and verdict is not None:
            cell.update(beyond=verdict.beyond, why=verdict.why)
    return {
        "metrics": metrics,
        "rows": rows,
        "reference": ranked[0],
        "compared": compared,
        "comparisons": [{"strategy": strategy, "cells": cells} for strategy, cells in comparisons.items()],
        "design": sentence(design) if design else None,
        "tests": family.tests,
        "one_seed": sum(cell["beyond"] is None for cells in comparisons.values() for cell in cells.values() if cell),
    }
