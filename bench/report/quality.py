"""The report's item-level view of quality: every accuracy and forgetting figure with its 95%
interval from the paired analysis (bench/analysis/items.py), and each strategy against the reference one
(the most accurate) with the difference, its interval, and the minimum detectable effect. Whether a
difference is beyond noise is decided over the whole table at once (Benjamini-Hochberg, as bench compare
decides its family of gating tests): with four strategies and two metrics, six tests at 0.05 each call
something beyond noise in up to a quarter of reports where nothing differs. With one seed on a side the
answer is "cannot tell", as in bench compare: the seed-to-seed variance is unknown."""

from __future__ import annotations

from typing import Any

from bench.analysis.items import SEED_NOISE_UNKNOWN, Interval, metric_difference, metric_interval, sentence
from bench.analysis.stats import benjamini_hochberg
from bench.records.results import RunResult, learned_task, retained_tasks
from bench.report import aggregate
from bench.report.aggregate import REPORT_ALPHA


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


def quality_section(records: list[RunResult]) -> dict[str, Any] | None:
    """None unless the records hold per-item outcomes (schema 5 and later)."""
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
    accuracy = f"accuracy.{task}"
    means = {s: metric_interval(runs, accuracy) for s, runs in keyed.items()}
    ranked = sorted((s for s in means if means[s] is not None), key=lambda s: -means[s].mean)
    if not ranked:
        return None
    reference = ranked[0]
    comparisons, design, tests = [], None, []
    for strategy in ranked[1:]:
        cells = {}
        for metric in (accuracy, "forgetting.mean") if retained else (accuracy,):
            difference = metric_difference(keyed[strategy], keyed[reference], metric)
            cells[metric] = _cell(difference)
            design = design or difference
            if difference is not None and not difference.knows_seed_noise:  # as bench compare: cannot tell
                cells[metric].update(beyond=None, why=SEED_NOISE_UNKNOWN)
            elif difference is not None:
                tests.append((cells[metric], difference.p_value))
        comparisons.append({"strategy": strategy, "cells": cells})
    decide_together(tests)
    return {
        "metrics": metrics,
        "rows": rows,
        "reference": reference,
        "compared": [accuracy, "forgetting.mean"] if retained else [accuracy],
        "comparisons": comparisons,
        "design": sentence(design) if design else None,
        "tests": len(tests),
        "one_seed": sum(cell["beyond"] is None for c in comparisons for cell in c["cells"].values() if cell),
    }


def decide_together(tests: list[tuple[dict[str, Any], float]]) -> None:
    """Mark each difference beyond noise only where its Benjamini-Hochberg q over every difference of the
    table is at most REPORT_ALPHA (two-sided, as its 95% intervals); one beyond alone says so, with p and q."""
    for (cell, p), q in zip(tests, benjamini_hochberg([p for _, p in tests])):
        cell["beyond"] = q <= REPORT_ALPHA
        if p <= REPORT_ALPHA < q:
            cell["why"] = f"p={p:.3f} alone, but q={q:.3f} after Benjamini-Hochberg over {len(tests)}"
