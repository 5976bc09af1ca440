"""Task loading: a TaskSpec from a suite becomes TaskData (training examples + eval items)."""

from __future__ import annotations

from bench.suite import TaskSpec
from bench.tasks.base import ChoiceItem, Example, TaskData
from bench.tasks.synthetic import SYNTHETIC_TASKS, build_synthetic

__all__ = ["ChoiceItem", "Example", "TaskData", "load_task", "task_names"]


def task_names() -> dict[str, list[str]]:
    return {"synthetic": sorted(SYNTHETIC_TASKS)}


def load_task(spec: TaskSpec, seed: int = 0) -> TaskData:
    if spec.source == "synthetic":
        if spec.name not in SYNTHETIC_TASKS:
            raise ValueError(f"task {spec.name!r}: unknown synthetic task (known: {', '.join(SYNTHETIC_TASKS)})")
        return build_synthetic(spec.name, spec.train_size, spec.eval_limit, seed=seed)
    raise NotImplementedError(f"task source {spec.source!r} is not supported yet")
