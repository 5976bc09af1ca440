"""The record contract: one RunResult per run, versioned, validated, stored atomically.

This module must never import torch: reports and comparisons rebuild from records anywhere.
"""

from __future__ import annotations

import hashlib
import json
import lzma
import os
import re
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError

# the schema and its migrations live in bench/records/migrations.py; re-exported here, where readers look
from bench.records.archives import as_folder, is_archive
from bench.records.migrations import MIGRATIONS, SCHEMA_VERSION, NotARecord, migrate  # noqa: F401

if TYPE_CHECKING:
    import pandas as pd

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

    @property
    def timing_contaminated(self) -> bool:
        return self.timing_quality is not None and self.timing_quality.contaminated


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


def current_umask() -> int:
    """This process's umask (0o022 by default), read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, flush to disk, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~current_umask())  # mkstemp's 0600 would hide it from the team
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class ResultStore:
    """Records live at <root>/<suite>/<machine>/<run_id>.json, written portable (bench/records/portable.py):
    paths relative to the root or the cache, no host name unless `record_host`."""

    def __init__(self, root: Path | str, record_host: bool = False) -> None:
        self.root = Path(root)
        self.record_host = record_host

    def path_for(self, suite: str, machine: str, run_id: str) -> Path:
        return self.root / suite / machine / f"{run_id}.json"

    def write(self, result: RunResult) -> Path:
        path = self.path_for(result.suite, result.environment.machine, result.run_id)
        atomic_write_text(path, self.portable(result).model_dump_json(indent=2) + "\n")
        return path

    def portable(self, result: RunResult) -> RunResult:
        """The record as it is stored: paths relative to this root or the cache, no host name unless
        `record_host`, no secret (bench/records/portable.py)."""
        from bench.records.portable import scrub

        raw = scrub(result.model_dump(mode="json"), results_root=self.root, keep_host=self.record_host)
        return RunResult.model_validate(raw)

    def read(self, suite: str, machine: str, run_id: str) -> RunResult | None:
        path = self.path_for(suite, machine, run_id)
        return load_record(path) if path.exists() else None

    def records(self) -> Iterator[RunResult]:
        yield from load_records(self.root)


def load_record(path: Path) -> RunResult:
    """The record in `path`; NotARecord (a ValueError) says why a file is not one."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise NotARecord(f"not text: {error.reason}") from error
    if not text.strip():
        raise NotARecord("empty file")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise NotARecord(f"not JSON (truncated?): {str(error)[:200]}") from error
    return parse_record(raw)


# Folders beside the records that hold other files: run logs, and kept artefacts (model configs,
# tokenizers and task files are JSON too)
NOT_RECORDS = ("logs", "artefacts")


def record_paths(root: Path | str) -> Iterator[Path]:
    """The JSON files below `root` that can be records: not hidden, not in logs/ or artefacts/. An
    archive (`records.tar.xz`, bench/records/archives.py) is read as the folder it holds."""
    root = as_folder(root)
    for path in sorted(root.rglob("*.json")):
        parts = path.relative_to(root).parts
        if not any(part.startswith(".") for part in parts) and not set(parts[:-1]) & set(NOT_RECORDS):
            yield path


class Skipped(NamedTuple):
    path: Path
    reason: str


_SAID: set[tuple[Path, str]] = set()  # skips already told in this process (a folder read twice says them once)


def tell_skipped(root: Path | str, skipped: list[Skipped]) -> None:
    """One line per skipped file with its reason, then the count, on stderr (each file once per process)."""
    new = [one for one in skipped if (one.path, one.reason) not in _SAID]
    for one in new:
        _SAID.add((one.path, one.reason))
        print(f"bench: skipped {one.path}: {one.reason}", file=sys.stderr)
    if new:
        print(f"bench: {len(skipped)} JSON file(s) under {root} skipped: not records", file=sys.stderr)


def scan_records(root: Path | str, skipped: list[Skipped] | None = None) -> Iterator[tuple[Path, RunResult]]:
    """(path, record) for every record below `root`; any other JSON file (not a record, truncated,
    empty, unreadable, a newer schema) is appended to `skipped` with the reason, or told on stderr
    when `skipped` is None. Never raises for a file's content."""
    own = [] if skipped is None else skipped
    for path in record_paths(root):
        try:
            record = load_record(path)
        except (NotARecord, OSError) as error:
            own.append(Skipped(path, str(error) if isinstance(error, NotARecord) else f"unreadable: {error}"))
            continue
        yield path, record
    if skipped is None:
        tell_skipped(root, own)


def scan_packed(archive: Path, skipped: list[Skipped] | None = None) -> Iterator[tuple[Path, RunResult]]:
    """(path, record) for every record of a packed result set (`<set>/records.tar.xz`), each at the
    path it has once unpacked where the set's comment says: `<set>/<path in the archive without its
    top folder and the set's own name>`. An unreadable archive is told on stderr and gives nothing."""
    try:
        unpacked = as_folder(archive)
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError) as error:  # truncated, not an archive
        print(f"bench: skipped {archive}: not a readable archive: {error}", file=sys.stderr)
        return
    for path, record in scan_records(unpacked, skipped):
        inside = path.relative_to(unpacked).parts[1:]  # without the top folder (records/)
        if inside[:1] == (archive.parent.name,):
            inside = inside[1:]
        yield archive.parent.joinpath(*inside), record


def load_records(root: Path | str, skipped: list[Skipped] | None = None) -> Iterator[RunResult]:
    """Every record below `root` (a results folder, a suite folder or a machine folder, or an archive of
    one); other JSON files are skipped (see scan_records). A folder that holds its records packed
    (`results/<set>/records.tar.xz`) reads as the folder the archive unpacks to; a record also there
    loose counts once."""
    found = list(scan_records(root, skipped))
    yield from (record for _, record in found)
    root = Path(root)
    archives = sorted(path for path in root.iterdir() if is_archive(path)) if root.is_dir() else []
    loose = {path for path, _ in found}
    for archive in archives:
        yield from (record for path, record in scan_packed(archive, skipped) if path not in loose)


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
