"""Suite -> one RunSpec per (strategy, seed). A run's id is the hash of its fully resolved spec."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bench.suite import Budget, Measure, ModelSpec, Strict, Suite, TaskSpec, Training


class RunSpec(Strict):
    """Everything that can change a run's result, and nothing that cannot (timeouts, backends)."""

    suite: str
    strategy: str
    label: str
    options: dict[str, Any]
    seed: int
    model: ModelSpec
    task: TaskSpec
    retain: list[TaskSpec]
    budget: Budget
    training: Training
    measure: Measure
    device: str
    threads: int | None
    plugins: list[str]

    @property
    def run_id(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def plan(suite: Suite) -> list[RunSpec]:
    """Seed-major order, so that every strategy has one finished seed as early as possible."""
    return [
        RunSpec(
            suite=suite.name,
            strategy=strategy.name,
            label=strategy.label,
            options=strategy.options,
            seed=seed,
            model=suite.model,
            task=suite.task,
            retain=suite.retain,
            budget=suite.budget,
            training=suite.training,
            measure=suite.measure,
            device=suite.execution.device,
            threads=suite.execution.threads,
            plugins=suite.plugins,
        )
        for seed in suite.seeds
        for strategy in suite.strategies
    ]
