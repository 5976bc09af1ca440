"""Item outcomes in run records, and the quality metrics built on them.

A record keeps, per task, a digest of the items' ids and each item's outcome before and after
training (`item_record`). From records this module builds the seeds x items matrices behind a
metric (`metric_matrix`), checks that two sides scored the same items (`comparable_matrices`) and
estimates a metric or the difference of two sides with bench/analysis/variance.py, which says how
item and seed noise enter (Miller 2024, "Adding Error Bars to Evals").
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import replace
from statistics import fmean
from typing import Any

from bench.analysis.variance import (
    Interval,
    at_the_edge,
    average,
    difference,
    interval,
    seed_level,
    seed_paired,
    unpaired,
)

SEED_NOISE_UNKNOWN = "one seed on a side: the seed-to-seed variance is unknown"  # a verdict's reason, as compare's


def ids_digest(ids: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]


def item_record(ids: Sequence[str], before: str, after: str) -> dict[str, Any]:
    """What a run record keeps per task: which items (a digest of their ids), and each one's outcome."""
    return {"ids_sha256": ids_digest(ids), "n": len(ids), "before": before, "after": after}


# ---- from records -----------------------------------------------------------------------------


def _outcomes(text: str) -> list[int]:
    return [1 if mark == "1" else 0 for mark in text]


def _matrix(records: list[Any], task: str, kind: str) -> list[list[float]] | None:
    """Seeds x items: `kind` "after" (correct), "before", or "change" (after minus before)."""
    rows, digest = [], None
    for record in records:
        entry = (record.items or {}).get(task)
        if entry is None:
            return None
        if digest not in (None, entry["ids_sha256"]):
            return None  # not the same items: no pairing
        digest = entry["ids_sha256"]
        after, before = _outcomes(entry["after"]), _outcomes(entry["before"])
        rows.append(
            after if kind == "after" else before if kind == "before" else [x - y for x, y in zip(after, before)]
        )
    return rows or None


def items_digest(records: list[Any], task: str) -> str | None:
    digests = {(r.items or {}).get(task, {}).get("ids_sha256") for r in records}
    return digests.pop() if len(digests) == 1 else None


def _forgetting_tasks(records: list[Any]) -> list[str]:
    """The retained tasks behind forgetting.mean: those with item outcomes and a forgetting metric."""
    return sorted({t for r in records for t in (r.items or {}) if f"forgetting.{t}" in r.metrics})


def metric_matrix(records: list[Any], metric: str) -> list[list[list[float]]] | None:
    """The per-task matrices behind a quality metric: accuracy.T and accuracy_before.T (correct),
    gain.T and forgetting.T (after minus before); forgetting.mean: one matrix per retained task."""
    family, _, task = metric.partition(".")
    if family == "forgetting" and task == "mean":
        tasks = _forgetting_tasks(records)
        matrices = [_matrix(records, t, "change") for t in tasks]
        return matrices if tasks and all(m is not None for m in matrices) else None
    kind = {"accuracy": "after", "accuracy_before": "before", "gain": "change", "forgetting": "change"}.get(family)
    if kind is None:
        return None
    matrix = _matrix(records, task, kind)
    return None if matrix is None else [matrix]


def headline_gap(record: Any, metric: str) -> tuple[float, float, int] | None:
    """(headline value, the mean of the record's own item outcomes behind it, items) where the two disagree
    by more than rounding, half an item (a hand-edited or corrupt record: an accuracy lowered, its items
    untouched); None where they agree, or the record keeps no items for the metric or no finite value."""
    entry = record.metrics.get(metric)
    matrices = metric_matrix([record], metric)
    if entry is None or entry.value is None or not math.isfinite(entry.value) or matrices is None:
        return None
    rows = [matrix[0] for matrix in matrices]
    if not all(rows):
        return None
    count = sum(len(row) for row in rows)
    from_items = fmean([fmean(row) for row in rows])  # tasks weighted equally, as forgetting.mean is
    return None if abs(entry.value - from_items) <= 0.5 / count else (entry.value, from_items, count)


def metric_interval(records: list[Any], metric: str) -> Interval | None:
    """A quality metric of one strategy's runs with its item-level interval (None without items)."""
    matrices = metric_matrix(records, metric)
    if matrices is None:
        return None
    estimate = seed_level(matrices) if len(matrices[0]) > 1 else average([interval(m) for m in matrices])
    estimate = replace(estimate, limits=metric_limits(metric))
    return at_the_edge(estimate, matrices) if estimate.limits == (0.0, 1.0) else estimate  # a share, not a change


def metric_limits(metric: str) -> tuple[float, float]:
    """What a quality metric can be: a share correct in [0, 1]; a change (gain, forgetting) in [-1, 1]."""
    return (0.0, 1.0) if metric.partition(".")[0] in ("accuracy", "accuracy_before") else (-1.0, 1.0)


def comparable_matrices(a: list[Any], b: list[Any], metric: str) -> tuple[list[Any], list[Any]] | None:
    """Per task, a's and b's seeds x items outcomes of a metric, when both scored the same items (the
    same tasks' item digests): the data every paired comparison of two sides starts from."""
    left, right = metric_matrix(a, metric), metric_matrix(b, metric)
    if left is None or right is None or len(left) != len(right):
        return None
    task = metric.partition(".")[2]
    tasks = [task] if task != "mean" else _forgetting_tasks(a)
    if any(items_digest(a + b, t) is None for t in tasks):
        return None
    return left, right


def metric_difference(a: list[Any], b: list[Any], metric: str) -> Interval | None:
    """metric(a) - metric(b), paired by item, for two strategies (or two commits) on the same items; where
    both ran the same two or more seeds, paired by seed too (seed k sets the data order both trained on,
    and the k per-seed differences are independent whatever their correlation), as bench compare pairs."""
    paired = same_seeds(a, b)
    if paired:
        a, b = sorted(a, key=lambda r: r.seed), sorted(b, key=lambda r: r.seed)
    matrices = comparable_matrices(a, b, metric)
    if matrices is None:
        return None
    if paired:
        estimate = seed_paired(*matrices)
    elif min(len(side[0]) for side in matrices) > 1:
        estimate = unpaired(*matrices)
    else:  # one seed on a side: the items only, and said (it decides nothing)
        estimate = average([difference(x, y) for x, y in zip(*matrices)])
    low, high = metric_limits(metric)
    return replace(estimate, limits=(low - high, high - low))


def same_seeds(a: list[Any], b: list[Any]) -> bool:
    """Both sides ran the same two or more seeds, once each."""
    seeds_a, seeds_b = [r.seed for r in a], [r.seed for r in b]
    return len(a) >= 2 and len(set(seeds_a)) == len(a) and sorted(seeds_a) == sorted(seeds_b)
