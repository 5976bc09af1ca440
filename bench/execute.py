"""Execute a plan: skip what is stored, run the rest through an executor, store every outcome.

Records are written on this machine (the driver) as each run ends, whatever executor ran it, so an
interrupted suite loses only the runs in flight and the same command resumes them. Failed runs are
retried on the next invocation; ok and skipped are kept. The executor (bench/executors/: `local`, one
run after another through the suite's backend, or `ray`, one Ray task per run) only runs and reports.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.executors import EXECUTORS
from bench.executors.base import Finished, Job, Progress, SetupError
from bench.measure import env, limits
from bench.plan import RunSpec
from bench.records.migrations import NotARecord
from bench.records.portable import redact_file
from bench.records.results import RunResult
from bench.records.store import ResultStore
from bench.registry import UnknownNameError
from bench.spec import Resources
from bench.tasks.fingerprint import changed_data, data_files

KEEP = ("ok", "skipped")


@dataclass
class ExecutionReport:
    results: list[RunResult] = field(default_factory=list)
    reused: int = 0
    executed: int = 0


def failure_record(spec: RunSpec, machine: str, reason: str, started: str, seconds: float, log_path: Path) -> RunResult:
    return RunResult(
        **spec.record_header(),
        status="failed",
        reason=reason,
        budget={"resolved": spec.budget.model_dump()},
        environment=env.capture(machine),
        started_at=started,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        wall_seconds=round(seconds, 3),
        log_path=str(log_path),
    )


MIN_FREE_BYTES = 100 * 2**20  # records and logs are small; under this a disk is about to be full


def results_dir_problem(root: Path, min_free: int = MIN_FREE_BYTES) -> str | None:
    """Why records cannot be stored under `root` (not creatable, not writable, nearly full), or None."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=root, prefix=".bench-write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        return f"results folder {root} is not writable: {error.strerror or error}; nothing was run"
    free = shutil.disk_usage(root).free
    if free < min_free:
        return (
            f"results folder {root} has {free / 2**20:.0f} MiB free, under the {min_free / 2**20:.0f} MiB"
            " needed to store records and logs; nothing was run"
        )
    return None


def execute(
    specs: list[RunSpec],
    store: ResultStore,
    backend_name: str = "local",
    timeout_s: float = 1800,
    progress: Progress | None = None,
    machine: str | None = None,
    clock: Callable[[], float] | None = None,
    executor: str = "local",
    resources: Resources | None = None,
    executor_options: dict[str, Any] | None = None,
    keep_artefacts: bool = False,
) -> ExecutionReport:
    """Run what is not stored yet through `executor` (bench/executors/), store each record as it ends.

    `executor_options`: the executor's own (Ray: `address`). `keep_artefacts`: each run keeps its trained
    adapter or weights and scoring tasks beside its record (bench/run/artefacts.py). Raises SetupError, before any run
    starts, when the executor cannot start or the results folder cannot take records."""
    import time

    clock = clock or time.perf_counter
    session = new_session_id()
    progress = progress or Progress()
    resources = resources or Resources()
    report = ExecutionReport()
    results: dict[int, RunResult] = {}
    here = machine or env.machine_id()  # the executor may file runs elsewhere (below); enough to know
    unreadable: set[Path] = set()  # stored files that are not records, each told once
    digests: dict[str, str] = {}  # data files' sha256, taken once per call
    if not all(_kept(store, spec, here, unreadable, digests) for spec in specs):  # that something will run
        problem = results_dir_problem(store.root)
        if problem:
            raise SetupError(problem)
    try:
        kind = EXECUTORS.get(executor)
    except UnknownNameError as error:
        raise SetupError(str(error)) from None
    chosen = kind(backend_name, timeout_s, resources, clock, **(executor_options or {}))
    jobs: list[Job] = []
    try:
        machine = machine or chosen.machine()  # where its runs land (Ray: a probe task on the cluster)
        for index, spec in enumerate(specs):
            stored = _kept(store, spec, machine, unreadable, digests, tell=True)
            if stored is not None:
                results[index] = stored
                report.reused += 1
                progress.end_run(stored, reused=True)
            else:
                if keep_artefacts:  # beside the record: <results>/<suite>/<machine>/artefacts/<run_id>/
                    folder = store.path_for(spec.suite, machine, spec.run_id).parent / "artefacts" / spec.run_id
                    spec = spec.model_copy(update={"artefacts_dir": str(folder.resolve())})
                jobs.append(Job(index, len(specs), spec, _log_path(store, machine, spec)))
        limit = limits.limit_bytes(resources.memory_gib)
        for finished in chosen.run(jobs, machine, progress) if jobs else ():
            result = _store(finished, store, machine, limit, session)
            results[finished.job.index] = result
            report.executed += 1
            progress.end_run(result, reused=False)
    finally:
        chosen.close()
        for job in jobs:  # a run cut off (Ctrl-C, a crash) stored no record: its log is redacted here
            if job.index not in results:
                redact_file(job.log_path)
        report.results = [results[index] for index in sorted(results)]  # plan order, however runs ended
    return report


def _kept(
    store: ResultStore,
    spec: RunSpec,
    machine: str,
    unreadable: set[Path],
    digests: dict[str, str],
    tell: bool = False,
) -> RunResult | None:
    """The stored record to reuse (ok or skipped), or None: the run is to execute. A stored file that is
    not a record (truncated, empty, invalid) is set aside, said once, and its run executes again; a
    record whose data files have changed since (bench/tasks/fingerprint.py) executes again, said where
    `tell`."""
    try:
        stored = store.read(spec.suite, machine, spec.run_id)
    except (NotARecord, OSError) as error:
        path = store.path_for(spec.suite, machine, spec.run_id)
        if path not in unreadable:
            unreadable.add(path)
            _set_aside(path, str(error) if isinstance(error, NotARecord) else f"unreadable: {error}")
        return None
    if stored is None or stored.status not in KEEP:
        return None
    if changed := changed_data(stored.model, spec, digests):
        if tell:
            files = ", ".join(f"{role} ({data_files(spec).get(role, 'no longer named')})" for role in changed)
            print(f"bench: {spec.label} seed={spec.seed}: data changed since its stored run: {files}; running it again",
                  file=sys.stderr)  # fmt: skip
        return None
    return stored


def _set_aside(path: Path, reason: str) -> None:
    """Rename a stored file that is not a record to <name>.unreadable (no longer read as one), and say so."""
    aside = path.with_name(f"{path.name}.unreadable")
    try:
        os.replace(path, aside)
        where = f"moved to {aside}"
    except OSError:
        where = "left in place; the new record replaces it"
    print(f"bench: {path} is not a record ({reason}): {where}; running {path.stem} again", file=sys.stderr)


def _log_path(store: ResultStore, machine: str, spec: RunSpec) -> Path:
    return store.path_for(spec.suite, machine, spec.run_id).parent / "logs" / f"{spec.run_id}.log"


def new_session_id() -> str:
    """One per execution (a `bench run` invocation): when it started, and 8 random hex digits."""
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def _store(finished: Finished, store: ResultStore, machine: str, limit: int | None, session: str) -> RunResult:
    """The run's record, with its session and out-of-memory named in a failure's reason; written atomically."""
    job, outcome = finished.job, finished.outcome
    result = outcome.result or failure_record(
        job.spec, machine, outcome.failure or "unknown", finished.started, finished.seconds, job.log_path
    )
    if result.status == "failed" and result.reason:
        named = limits.out_of_memory_reason(result.reason, limit)
        if named and (limit or "out of memory" not in result.reason):
            result = result.model_copy(update={"reason": f"{result.reason}\n{named}"})
    result = result.model_copy(update={"session": session, "log_path": result.log_path or str(job.log_path)})
    result = store.portable(result)  # what the record file holds is what the report shows
    store.write(result)
    redact_file(job.log_path)  # a secret a library printed never stays in the log beside the record
    return result
