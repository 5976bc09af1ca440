"""The record contract: one RunResult per run, versioned, validated, stored atomically.

This module must never import torch: reports and comparisons rebuild from records anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 6
Status = Literal["ok", "failed", "skipped"]


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")


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
    hostname: str
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


class TimingQuality(Record):
    """Whether this run's timings can be trusted; `reasons` says why not."""

    contaminated: bool
    reasons: list[str] = Field(default_factory=list)
    phases: dict[str, PhaseContention] = Field(default_factory=dict)
    step_time_spread: float | None = None  # p90 / p50 of the measured step times
    # seconds of the fixed reference workload (bench/measure/reference.py), timed before training and
    # after the latency phase: how fast the machine was while this run was timed
    reference_seconds: list[float] = Field(default_factory=list)

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
    # "estimate" (bench.estimate's prediction for this run) and "estimate_error_percent"; None before
    # schema 4 and where the run did not train
    memory: dict[str, Any] | None = None
    # per-item correctness of each scored task, for paired statistics (bench/paired.py):
    # {task: {"ids_sha256", "n", "before": "0110...", "after": "1110..."}} in the order of
    # model.tasks[task].eval_ids; None before schema 5 and where accuracy was not measured
    items: dict[str, dict[str, Any]] | None = None
    # the `bench run` invocation that stored it (one id for all its runs): timing moves between
    # invocations on a shared machine, so compare tests timing with the session as the unit
    # (bench/compare.py); None before schema 6
    session: str | None = None

    def value(self, metric: str) -> float | None:
        """The metric's value, or None when the run did not record it or recorded it missing."""
        found = self.metrics.get(metric)
        return None if found is None else found.value

    @property
    def timing_contaminated(self) -> bool:
        return self.timing_quality is not None and self.timing_quality.contaminated


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 added the hardware fingerprint and timing quality. A v1 record's hardware is rebuilt
    from the fields it has; its SIMD extensions were not recorded (isa None), so its fingerprint
    never equals a v2 one and its timings are never compared with newer records."""
    environment = dict(raw.get("environment") or {})
    environment.setdefault(
        "hardware",
        {
            "cpu": environment.get("cpu", "unknown"),
            "cores": environment.get("cpu_count", 0),
            "isa": None,
            "gpus": environment.get("gpus", []),
            "torch_threads": environment.get("torch_threads"),
        },
    )
    return {**raw, "environment": environment, "schema_version": 2}


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 added the commit time (`environment.git_commit_time`); older records have none and
    are placed in history by when they ran."""
    environment = {**(raw.get("environment") or {}), "git_commit_time": None}
    return {**raw, "environment": environment, "schema_version": 3}


def _v3_to_v4(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 4 added training memory by component (`memory`); older records have none."""
    return {**raw, "memory": None, "schema_version": 4}


def _v4_to_v5(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 5 added per-item correctness (`items`); older records have none."""
    return {**raw, "items": None, "schema_version": 5}


def _v5_to_v6(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 6 added the session (`session`: the `bench run` invocation); older records have none."""
    return {**raw, "session": None, "schema_version": 6}


# Upgrades a raw record of version N to version N + 1; add one entry per schema change.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
}


def parse_record(raw: dict[str, Any]) -> RunResult:
    version = raw.get("schema_version", 1)
    if version > SCHEMA_VERSION:
        raise ValueError(f"record schema_version {version} is newer than this harness ({SCHEMA_VERSION})")
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version = raw["schema_version"]
    return RunResult.model_validate(raw)


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, flush to disk, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ResultStore:
    """Records live at <root>/<suite>/<machine>/<run_id>.json."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def path_for(self, suite: str, machine: str, run_id: str) -> Path:
        return self.root / suite / machine / f"{run_id}.json"

    def write(self, result: RunResult) -> Path:
        path = self.path_for(result.suite, result.environment.machine, result.run_id)
        atomic_write_text(path, result.model_dump_json(indent=2) + "\n")
        return path

    def read(self, suite: str, machine: str, run_id: str) -> RunResult | None:
        path = self.path_for(suite, machine, run_id)
        return load_record(path) if path.exists() else None

    def records(self) -> Iterator[RunResult]:
        yield from load_records(self.root)


def load_record(path: Path) -> RunResult:
    return parse_record(json.loads(path.read_text(encoding="utf-8")))


# Folders beside the records that hold other files: run logs, and kept artefacts (model configs,
# tokenizers and task files are JSON too)
NOT_RECORDS = ("logs", "artefacts")


def record_paths(root: Path | str) -> Iterator[Path]:
    """The JSON files below `root` that can be records: not hidden, not in logs/ or artefacts/."""
    root = Path(root)
    for path in sorted(root.rglob("*.json")):
        parts = path.relative_to(root).parts
        if not any(part.startswith(".") for part in parts) and not set(parts[:-1]) & set(NOT_RECORDS):
            yield path


def load_records(root: Path | str) -> Iterator[RunResult]:
    """Every record below `root` (a results folder, a suite folder or a machine folder)."""
    for path in record_paths(root):
        yield load_record(path)


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
