"""Suite -> one RunSpec per (strategy, seed). A run's id is the hash of its fully resolved spec."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from bench.spec import Budget, Gate, Measure, ModelSpec, PreferenceSpec, Strict, TaskSpec, Training
from bench.suite import Suite


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
    preference: PreferenceSpec | None = None  # preference pairs (DPO, RLHF, alignment metrics)
    processes: int = 1  # data-parallel processes (torchrun); budget.batch_size is the global batch
    parallel: str = "ddp"  # ddp or fsdp, with several processes
    # where to keep the trained adapter or weights and the scoring task files (`bench run
    # --keep-artefacts`); None: measured in a temporary folder and deleted. Never part of run_id.
    artefacts_dir: str | None = None
    parent: dict[str, Any] | None = None  # the sft run this one starts from: strategy, label, options, run_id
    gate: Gate | None = None  # how bench compare gates it (the suite's `gate`); never part of run_id

    @property
    def run_id(self) -> str:
        data = self.model_dump(mode="json")
        for name in ("preference", "parent"):  # added later: left out when unset, so older run_ids hold
            if data.get(name) is None:
                data.pop(name, None)
        if data.get("processes") == 1:  # likewise
            data.pop("processes")
        if data.get("parallel") == "ddp":  # likewise
            data.pop("parallel")
        data.pop("artefacts_dir", None)  # where outputs go does not change them
        data.pop("gate", None)  # how a comparison gates does not change the run either
        if data["model"].get("config") is None:  # likewise
            data["model"].pop("config", None)
        if data["model"].get("chat_template") is None:  # likewise
            data["model"].pop("chat_template", None)
        for task in [data["task"], *data["retain"]]:  # likewise
            if task.get("loss") is None:
                task.pop("loss", None)
            if task.get("generation") is None:  # generative tasks' settings, added later
                task.pop("generation", None)
        if not data["training"].get("gradient_checkpointing"):  # added later, likewise
            data["training"].pop("gradient_checkpointing", None)
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def record_header(self) -> dict[str, Any]:
        """The fields every record of this run starts with, whoever writes it: the worker, or the
        driver's failure record when the worker left none (bench/execute.py)."""
        return {
            "run_id": self.run_id,
            "suite": self.suite,
            "strategy": self.strategy,
            "label": self.label,
            "seed": self.seed,
            "spec": self.model_dump(mode="json"),
        }


def _preference(suite: Suite, strategy: str) -> PreferenceSpec | None:
    """The suite's pairs; a non-sft objective without them builds pairs from the learned task."""
    from bench.strategies import STRATEGIES

    if suite.preference is not None or STRATEGIES.get(strategy).objective == "sft":
        return suite.preference
    return PreferenceSpec()


def _chain(specs: list[RunSpec]) -> list[RunSpec]:
    """A run with option `start_from: <label>` embeds that run's resolved spec and run_id (same seed),
    so its own run_id changes whenever its parent's does."""
    by_key = {(spec.label, spec.seed): spec for spec in specs}
    chained = []
    for spec in specs:
        start = spec.options.get("start_from")
        if start not in (None, "base"):
            parent = by_key[(start, spec.seed)]
            link = {"strategy": parent.strategy, "label": parent.label, "options": parent.options}
            spec = spec.model_copy(update={"parent": {**link, "run_id": parent.run_id}})
        chained.append(spec)
    return chained


def plan(suite: Suite) -> list[RunSpec]:
    """Seed-major order, so that every strategy has one finished seed as early as possible."""
    return _chain(
        [
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
                processes=suite.execution.processes,
                parallel=suite.execution.parallel,
                plugins=suite.plugins,
                preference=_preference(suite, strategy.name),
                gate=suite.gate,
            )
            for seed in suite.seeds
            for strategy in suite.strategies
        ]
    )
