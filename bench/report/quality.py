"""The report's item-level view of quality: every accuracy and forgetting figure with its 95%
interval from the paired analysis (bench/analysis/items.py), and each strategy against the reference one
(the most accurate) with the difference, its interval, and the minimum detectable effect. Whether a
difference is beyond noise is decided with the answer table's quality verdicts as one family
(bench/report/family.py): with four strategies and two metrics, six tests at 0.05 each call something
beyond noise in up to a quarter of reports where nothing differs."""

from __future__ import annotations

from typing import Any

from bench.analysis.items import metric_interval
from bench.analysis.variance import Interval, sentence
from bench.records.results import RunResult
from bench.report import aggregate
from bench.report.family import Family, table_pairs


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


def quality_section(records: list[RunResult], family: Family | None = None) -> dict[str, Any] | None:
    """None unless the records hold per-item outcomes (schema 5 and later). family: the report's quality
    verdicts, decided with the answer table's (bench/report/family.py; computed here when not given)."""
    found = aggregate.item_design(records)
    if found is None:
        return None
    keyed, task, retained = found
    metrics = [f"accuracy.{task}", f"gain.{task}", *(f"forgetting.{t}" for t in retained)]
    if retained:
        metrics.append("forgetting.mean")
    rows = []
    for strategy, runs in sorted(keyed.items()):
        rows.append(
            {"strategy": strategy, "seeds": len(runs), "cells": [_cell(metric_interval(runs, m)) for m in metrics]}
        )
    ranked, compared, pairs = table_pairs(keyed, task, retained)
    if not ranked:
        return None
    family = family or aggregate.answers_and_family(records)[1]
    comparisons: dict[str, dict[str, Any]] = {strategy: {} for strategy in ranked[1:]}
    design = None
    for strategy, reference, metric in pairs:
        difference = family.difference(strategy, reference, metric)
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
