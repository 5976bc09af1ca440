"""The record contract: one RunResult per run, versioned and validated; where records are written and
read from: bench/records/store.py.

This module must never import torch: reports and comparisons rebuild from records anywhere.
"""

from __future__ import annotations

import hashlib
import math
import re
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# the schema and its migrations live in bench/records/migrations.py; re-exported here, where readers look
from bench.records.migrations import MIGRATIONS, SCHEMA_VERSION, NotARecord, migrate  # noqa: F401

if TYPE_CHECKING:
    import pandas as pd

Status = Literal["ok", "failed", "skipped"]


class Record(BaseModel):
    # a diverged run's NaN or infinite loss is kept as "NaN"/"Infinity" and read back as such (JSON has no
    # such numbers; pydantic's default wrote null, which reads as a missing value or no record at all)
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="strings")


class Metric(Record):
    """A measured value with its unit and direction; `value` is None only with a `reason`."""

    value: float | None
    unit: str
    higher_is_better: bool
    reason: str | None = None
    stderr: float | None = None  # item-level standard error where the source gives one

    @classmethod
    def missing(cls, unit: str, higher_is_better: bool, reason: str) -> Metric:
        return cls(value=None, unit=unit, higher_is_better=higher_is_better, reason=reason)


class TimingStats(Record):
    """Raw samples after warm-up, and their percentiles."""

    unit: str
    samples: list[float]
    warmup_excluded: int
    mean: float
    p50: float
    p90: float
    p99: float


class LossPoint(Record):
    step: int
    loss: float


class Hardware(Record):
    """What decides whether two timings can be compared: the same values mean the same kind of machine."""

    cpu: str
    cores: int  # CPUs this process may use (affinity), not the host's count
    isa: list[str] | None = None  # SIMD extensions that pick kernel paths; None: not recorded (schema 1)
    gpus: list[str] = Field(default_factory=list)
    torch_threads: int | None = None
    # the SIMD level torch's CPU kernels dispatch to (AVX512, AVX2, DEFAULT; ATEN_CPU_CAPABILITY lowers it)
    cpu_capability: str | None = None

    def fingerprint(self) -> str:
        """A readable slug plus a short hash of every field, e.g. `amd-epyc-2c-2t-cpu-1a2b3c4d`."""

        def slug(text: str) -> str:
            return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")

        gpus = f"{len(self.gpus)}x-{slug(self.gpus[0])}" if self.gpus else "cpu"
        threads = f"{self.torch_threads}t" if self.torch_threads else "t-unknown"
        digest = hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:8]
        return f"{slug(self.cpu)[:24]}-{self.cores}c-{threads}-{gpus}-{digest}"


class Environment(Record):
    machine: str
    hostname: str | None = None  # only when the user opted in (bench run --record-host); schema 7
    platform: str
    python: str
    cpu: str
    cpu_count: int
    gpus: list[str] = Field(default_factory=list)
    cuda: str | None = None
    torch_threads: int | None = None
    packages: dict[str, str] = Field(default_factory=dict)
    git_commit: str | None = None
    git_dirty: bool | None = None
    git_commit_time: str | None = None  # committer date (ISO 8601): a record's place in history
    # sha256 of the uncommitted code (changed and untracked files, bench/measure/env.py uncommitted_digest):
    # None when clean, and in records written before it (a dirty one then says only that it was dirty)
    git_diff_sha256: str | None = None
    hardware: Hardware | None = None  # None only for a failure recorded before anything ran
    omp: dict[str, str] = Field(default_factory=dict)  # OpenMP settings in the worker's environment

    @property
    def fingerprint(self) -> str | None:
        return self.hardware.fingerprint() if self.hardware else None


class PhaseContention(Record):
    """What else used the machine while a timed phase ran (see bench/measure/contention.py)."""

    seconds: float
    others_cpu: float | None  # CPU-seconds per second used by other processes (1.0 = one busy core)
    steal: float | None  # share of CPU time the hypervisor gave to other guests
    load_average: float | None  # 1-minute load average at the end of the phase
    cores: int
    torch_threads: int | None
    # diagnostics of this process during the phase (getrusage): page faults served without disk
    # (allocator churn shows here) and times the kernel took the CPU away from it
    minor_faults: int | None = None
    involuntary_switches: int | None = None
    # per logical CPU, in the machine's order: CPU-seconds per second that anything ran on it, and its
    # steal share. A one-thread run shows where it ran ([0.99, 0.02]); the totals above cannot say
    # whether one CPU was slow or stolen from while the other was not (the aa-7 false alarm of
    # results/validation/ab-validation-7rounds)
    cpu_busy: list[float] | None = None
    cpu_steal: list[float] | None = None


class TimingQuality(Record):
    """Whether this run's timings can be trusted; `reasons` says why not."""

    contaminated: bool
    reasons: list[str] = Field(default_factory=list)
    phases: dict[str, PhaseContention] = Field(default_factory=dict)
    step_time_spread: float | None = None  # p90 / p50 of the measured step times
    # seconds of the fixed reference workload (bench/measure/reference.py), timed before training and
    # after the latency phase: how fast the machine was while this run was timed
    reference_seconds: list[float] = Field(default_factory=list)
    # None: the CPU reference above was timed. A GPU run times none (a CPU workload would add the host's
    # noise to a GPU figure), and this says so; its timings are compared as measured.
    reference_note: str | None = None

    @property
    def reference(self) -> float | None:
        return sum(self.reference_seconds) / len(self.reference_seconds) if self.reference_seconds else None


class RunResult(Record):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    suite: str
    strategy: str
    label: str
    seed: int
    status: Status
    reason: str | None = None
    spec: dict[str, Any]
    budget: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Metric] = Field(default_factory=dict)
    timings: dict[str, TimingStats] = Field(default_factory=dict)
    loss_curve: list[LossPoint] = Field(default_factory=list)
    model: dict[str, Any] = Field(default_factory=dict)  # source, name, parameters, dtype, file hash
    environment: Environment
    started_at: str
    finished_at: str
    wall_seconds: float
    log_path: str | None = None
    # how the run's process started: "warm" (forked from a pre-imported server) or "cold" (a fresh
    # interpreter), with the reason where a warm start was asked for and not possible
    start: str | None = None
    timing_quality: TimingQuality | None = None  # None where nothing was timed (failed, skipped, schema 1)
    # training memory by component: "measured" (bytes counted from the tensors on the first step),
    # "estimate" (bench.estimate.model's prediction for this run) and "estimate_error_percent"; None before
    # schema 4 and where the run did not train
    memory: dict[str, Any] | None = None
    # per-item correctness of each scored task, for paired statistics (bench/analysis/items.py):
    # {task: {"ids_sha256", "n", "before": "0110...", "after": "1110..."}} in the order of
    # model.tasks[task].eval_ids; None before schema 5 and where accuracy was not measured
    items: dict[str, dict[str, Any]] | None = None
    # the `bench run` invocation that stored it (one id for all its runs): timing moves between
    # invocations on a shared machine, so compare tests timing with the session as the unit
    # (bench/analysis/compare.py); None before schema 6
    session: str | None = None

    def value(self, metric: str) -> float | None:
        """The metric's value, or None when the run did not record it or recorded it missing."""
        found = self.metrics.get(metric)
        return None if found is None else found.value

    def finite(self, metric: str) -> float | None:
        """The metric's value where it is a finite number, else None (not recorded, missing, NaN or infinite):
        what a mean, a ranking or a test may use."""
        value = self.value(metric)
        return None if value is None or not math.isfinite(value) else float(value)

    @property
    def timing_contaminated(self) -> bool:
        return self.timing_quality is not None and self.timing_quality.contaminated

    @property
    def preference_split_by_row(self) -> bool:
        """A run on a preference file from before the split by prompt (bench/tasks/preference.py split_pairs,
        2026-12-07), which records `heldout_prompts`: its align.* metrics scored held-out pairs split off by
        row. Whether that split differs from today's (the file repeats a prompt): tasks.preference
        split_by_row_differs."""
        preference = self.budget.get("preference")
        named = (self.spec.get("preference") or {}).get("jsonl")
        return bool(named and preference and "heldout_prompts" not in preference)


def parse_record(raw: Any) -> RunResult:
    """A RunResult from raw JSON of any schema version; NotARecord (a ValueError) says why not."""
    try:
        return RunResult.model_validate(migrate(raw))
    except NotARecord:
        raise
    except ValidationError as error:
        problems = error.errors()
        where = ".".join(str(part) for part in problems[0]["loc"]) or "(top level)"
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise NotARecord(f"not a record: {where}: {problems[0]['msg']}{more}") from error
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as error:
        raise NotARecord(f"not a record: {type(error).__name__} {str(error)[:200]}") from error


def records_frame(records: list[RunResult]) -> pd.DataFrame:
    """One row per (run, metric), for aggregation with pandas."""
    import pandas as pd

    rows = [
        {
            "run_id": record.run_id,
            "suite": record.suite,
            "machine": record.environment.machine,
            "strategy": record.strategy,
            "label": record.label,
            "seed": record.seed,
            "status": record.status,
            "metric": name,
            "value": metric.value,
            "unit": metric.unit,
            "higher_is_better": metric.higher_is_better,
            "reason": metric.reason,
        }
        for record in records
        for name, metric in record.metrics.items()
    ]
    return pd.DataFrame(rows)


def learned_task(records: list[RunResult]) -> str | None:
    for record in records:
        task = record.spec.get("task") or {}
        if task.get("name"):
            return str(task["name"])
    return None


def retained_tasks(records: list[RunResult]) -> list[str]:
    names: list[str] = []
    for record in records:
        for task in record.spec.get("retain") or []:
            if task.get("name") and task["name"] not in names:
                names.append(task["name"])
    return names
