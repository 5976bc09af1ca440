"""Suite -> one RunSpec per (strategy, seed). A run's id is the hash of its fully resolved spec."""

from __future__ import annotations

import copy
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
        canonical = json.dumps(canonical_spec(self.model_dump(mode="json")), sort_keys=True, separators=(",", ":"))
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


def canonical_spec(data: dict[str, Any]) -> dict[str, Any]:
    """A run spec (as JSON data) as its run id hashes it: fields added later are left out when unset or at
    their default, so older run ids hold; where outputs go and how a comparison gates are not the run.
    bench compare tells specs apart by the same rule (bench/analysis/spec_keys.py spec_key)."""
    data = copy.deepcopy(data)
    for name in ("preference", "parent"):
        if data.get(name) is None:
            data.pop(name, None)
    if data.get("processes") == 1:
        data.pop("processes")
    if data.get("parallel") == "ddp":
        data.pop("parallel")
    data.pop("artefacts_dir", None)
    data.pop("gate", None)
    if data.get("plugins"):  # which modules a suite imports is not the run: a strategy is its name and options
        data["plugins"] = []
    model = data.get("model") or {}
    for name in ("config", "chat_template"):
        if model.get(name) is None:
            model.pop(name, None)
    if not model.get("trust_remote_code"):
        model.pop("trust_remote_code", None)
    for task in [data.get("task") or {}, *(data.get("retain") or [])]:
        for name in ("loss", "generation"):  # generation: generative tasks' settings
            if task.get(name) is None:
                task.pop(name, None)
    training = data.get("training") or {}
    if not training.get("gradient_checkpointing"):
        training.pop("gradient_checkpointing", None)
    options = data.get("options") or {}
    for strategy, name, default in LATER_OPTIONS:
        if data.get("strategy") == strategy and options.get(name) == default:
            options.pop(name)
    return data


# strategy options added after runs were stored, left out of the run id at their default (which keeps the
# old behaviour): (strategy, option, default)
LATER_OPTIONS = (("dpo", "label_smoothing", 0.0),)


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
