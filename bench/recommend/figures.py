"""What a strategy measured: its figures over seeds, gathered from the records."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from bench.analysis.selection import keyed_records
from bench.analysis.timing import clean_timing_runs, timing_unrecorded
from bench.records.results import RunResult, learned_task

Objective = Literal["accuracy", "throughput"]
OBJECTIVES: tuple[str, ...] = ("accuracy", "throughput")
ALPHA = 0.05  # the same level as bench compare and the report's "beyond seed noise"
GIB_IN_MIB = 1024.0
SMALL_MODEL = 10**9  # below this many parameters the measured memory says little about a real model

# Training memory for planning, in order of preference: (metric, short name, what it means)
MEMORY_SOURCES: tuple[tuple[str, str, str], ...] = (
    (
        "memory.train.nvml_process_mib",
        "nvidia-smi",
        "the training process's GPU memory as nvidia-smi shows it (allocator reserve and CUDA context)",
    ),
    (
        "memory.train.cuda_reserved_peak_mib",
        "CUDA reserved",
        "the peak reserved by torch's CUDA allocator (nvidia-smi also counts the CUDA context, a few hundred MiB)",
    ),
    (
        "memory.train.components_mib",
        "tensors",
        "weights, gradients, optimizer state and activations counted from the tensors"
        " (the allocator's slack and any CUDA context come on top)",
    ),
    (
        "memory.train.host_peak_mib",
        "host RSS",
        "the host RSS peak of training, which includes ~450 MiB of interpreter and libraries"
        " (torch, transformers, TRL)",
    ),
)
# The short name each figure is said by, after its size: "2.2 GiB host RSS" (bench/recommend/formatting.py memory_text)
MEMORY_NAMES = {metric: short for metric, short, _ in MEMORY_SOURCES}
# Figures that count the tensors only, leaving out the CUDA context, the allocator's slack and the process: a
# strategy fits only when the figure plus the reserve does, as an estimate is held (bench estimate)
TENSOR_SOURCES = ("memory.train.components_mib",)
FORGETTING = "forgetting.mean"
THROUGHPUT = "train.tokens_per_s"


@dataclass
class Figure:
    """One metric of one strategy over its seeds: mean and spread; `mean` is None when unmeasured."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    values: list[float] = field(default_factory=list)
    reason: str | None = None  # why it is missing (or why some seeds were left out)
    seeds: list[int] = field(default_factory=list)  # the seed of each value, where known (a paired test)

    @classmethod
    def of(cls, values: list[float], reason: str | None = None, seeds: list[int] | None = None) -> Figure:
        if not values:
            return cls(None, None, None, 0, [], reason)
        low, high = min(values), max(values)
        return cls(sum(values) / len(values), low, high, len(values), list(values), reason, list(seeds or []))


@dataclass
class Check:
    """One constraint on one strategy: met by the mean; marginal when its seeds straddle the limit."""

    constraint: str  # memory | accuracy | forgetting | learning
    met: bool
    marginal: bool
    text: str  # names the number and the limit, e.g. "needs 30.1 GiB > 24 GiB"


@dataclass
class ModelEstimate:
    """bench.estimate.model's training memory of a strategy on the user's model."""

    total_mib: float | None
    fits: bool | None  # total + reserve within the memory, as `bench estimate` holds it
    tokens: int | None = None
    error: str | None = None
    reserve_mib: float = 0.0  # kept free for the CUDA context and allocator slack, which the estimate leaves out


@dataclass
class Candidate:
    """One strategy (label) of one suite on one machine, as the report groups runs."""

    name: str  # the report's name: the label, qualified by suite / machine when the records hold several
    label: str
    strategy: str
    suite: str
    machine: str  # environment.machine, as the report tells machines apart (bench.analysis.selection)
    fingerprint: str | None  # the runs' hardware fingerprint; None where they differ
    seeds: list[int]
    memory_mib: float | None  # worst seed
    memory_source: str | None  # the metric it came from
    accuracy_metric: str | None
    accuracy: Figure
    forgetting: Figure
    throughput: Figure
    model_name: str | None = None
    model_parameters: int | None = None
    estimate: ModelEstimate | None = None  # on the user's model, where it is larger
    checks: list[Check] = field(default_factory=list)
    reserve_mib: float = 0.0  # held beside a measured tensor count (TENSOR_SOURCES), as beside an estimate
    ran_on_gpu: bool = False  # a run's machine had a GPU
    timing_unrecorded: int = 0  # runs that measured throughput but recorded no timing quality: contamination unknown
    # gain on the learned task (accuracy after minus before): a strategy whose mean is not above 0 did not learn it
    gain: Figure = field(default_factory=lambda: Figure.of([], "not measured"))

    @property
    def hardware(self) -> str:
        """What its timing is comparable within: the hardware fingerprint, else the machine name."""
        return self.fingerprint or f"machine {self.machine}"

    @property
    def planning_mib(self) -> float | None:
        """The memory the strategy plans with: the estimate for the user's model, else measured."""
        return self.estimate.total_mib if self.estimate is not None else self.memory_mib

    @property
    def needed_mib(self) -> float | None:
        """What the memory limit must hold: the planning figure plus the reserve it leaves out."""
        reserve = self.estimate.reserve_mib if self.estimate is not None else self.reserve_mib
        return None if self.planning_mib is None else self.planning_mib + reserve

    @property
    def marginal(self) -> list[Check]:
        return [check for check in self.checks if check.marginal]


@dataclass
class Recommendation:
    memory_bytes: int
    objective: str
    min_accuracy: float | None
    max_forgetting: float | None
    candidates: list[Candidate]
    feasible: list[str]  # names of the candidates that meet every constraint
    pareto: list[str]  # the feasible ones no other feasible one beats on every measured dimension
    rejected: dict[str, str]  # name -> why (every constraint it misses, with the numbers)
    dominated: dict[str, str]  # feasible but not Pareto: name -> by whom and where
    choice: str | None
    reason: str  # one sentence: why `choice`, or why nothing fits
    notes: list[str] = field(default_factory=list)
    measured_parameters: int | None = None
    user_parameters: int | None = None

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row, candidate in zip(data["candidates"], self.candidates):
            row["planning_mib"] = candidate.planning_mib
            row["needed_mib"] = candidate.needed_mib
        return data


# ---- figures from records -------------------------------------------------------------------------


def _value(record: RunResult, metric: str | None) -> float | None:
    return record.finite(metric) if metric else None


def _missing_reason(records: list[RunResult], metric: str | None) -> str:
    if metric is None:
        return "the records name no learned task"
    reasons = {str(r.metrics[metric].reason) for r in records if metric in r.metrics and r.metrics[metric].reason}
    return "; ".join(sorted(reasons)) or f"{metric} not in the records"


def _figure(records: list[RunResult], metric: str | None) -> Figure:
    measured = [(r.seed, v) for r, v in ((r, _value(r, metric)) for r in records) if v is not None]
    values = [v for _, v in measured]
    return Figure.of(values, None if values else _missing_reason(records, metric), [seed for seed, _ in measured])


def throughput(records: list[RunResult]) -> Figure:
    """tokens/s over the runs whose timing was not contaminated by other load (bench/measure/contention.py)."""
    clean = clean_timing_runs(records)
    figure = _figure(clean, THROUGHPUT)
    left_out = len(records) - len(clean)
    if left_out:
        figure.reason = f"{left_out} of {len(records)} runs left out: timing contaminated" + (
            f"; {figure.reason}" if figure.reason else ""
        )
    return figure


def record_memory(record: RunResult) -> tuple[float | None, str | None]:
    """The record's training memory for planning (MiB) and the metric it came from: the first of
    MEMORY_SOURCES that the run measured."""
    for metric, _, _ in MEMORY_SOURCES:
        value = _value(record, metric)
        if value is not None:
            return value, metric
    return None, None


def _worst_memory(records: list[RunResult]) -> tuple[float | None, str | None]:
    measured = [(value, source) for value, source in map(record_memory, records) if value is not None]
    return max(measured, key=lambda pair: pair[0]) if measured else (None, None)


def _grouped(records: list[RunResult]) -> dict[str, list[RunResult]]:
    """The runs of each candidate, by its name: the report's grouping (bench.analysis.selection.keyed_records),
    so runs of two machines are two candidates, never one with each seed twice."""
    return keyed_records(records)


def candidates_from(records: list[RunResult]) -> list[Candidate]:
    """One candidate per strategy of the `ok` records as the report names it: label, with the suite and the
    machine where the records hold several."""
    found = []
    for name, runs in _grouped([record for record in records if record.status == "ok"]).items():
        task = learned_task(runs[:1])
        memory, source = _worst_memory(runs)
        parameters = [r.model["parameters"] for r in runs if isinstance(r.model.get("parameters"), int)]
        found.append(
            Candidate(
                name=name,
                label=runs[0].label,
                strategy=runs[0].strategy,
                suite=runs[0].suite,
                machine=runs[0].environment.machine,
                fingerprint=_fingerprint(runs),
                seeds=[r.seed for r in runs],
                memory_mib=memory,
                memory_source=source,
                accuracy_metric=f"accuracy.{task}" if task else None,
                accuracy=_figure(runs, f"accuracy.{task}" if task else None),
                forgetting=_figure(runs, FORGETTING),
                throughput=throughput(runs),
                model_name=runs[0].model.get("name"),
                model_parameters=max(parameters) if parameters else None,
                ran_on_gpu=any(r.environment.gpus for r in runs),
                timing_unrecorded=timing_unrecorded(runs, THROUGHPUT),
                gain=_figure(runs, f"gain.{task}" if task else None),
            )
        )
    return found


def _fingerprint(runs: list[RunResult]) -> str | None:
    """The runs' hardware fingerprint where they share one."""
    found = {run.environment.fingerprint for run in runs}
    return found.pop() if len(found) == 1 else None
