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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.backends.local import sigkill_cause
from bench.executors import EXECUTORS
from bench.executors.base import Executor, Finished, Job, Progress, SetupError, StoreError
from bench.measure import env, limits
from bench.models.load import model_changes
from bench.plan import RunSpec
from bench.records.migrations import NotARecord
from bench.records.portable import redact_file
from bench.records.results import RunResult
from bench.records.store import FolderBusy, FolderLock, ResultStore
from bench.registry import UnknownNameError
from bench.spec import Resources
from bench.tasks.fingerprint import changed_data, data_files
from bench.tasks.preference import split_by_row_differs

KEEP = ("ok", "skipped")


@dataclass
class ExecutionReport:
    results: list[RunResult] = field(default_factory=list)
    reused: int = 0
    executed: int = 0


def failure_record(
    spec: RunSpec, machine: str, reason: str, started: str, seconds: float, log_path: Path, start: str | None = None
) -> RunResult:
    """The record of a run that returned none. `start`: how its process started (warm, cold and why);
    `seconds`: from its process's start to its end, none of a warm server's start-up."""
    return RunResult(
        **spec.record_header(),
        status="failed",
        reason=reason,
        start=start,
        budget={"resolved": spec.budget.model_dump()},
        environment=env.capture(machine),
        started_at=started,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        wall_seconds=round(seconds, 3),
        log_path=str(log_path),
    )


MIN_FREE_BYTES = 100 * 2**20  # records and logs are small; under this a disk is about to be full


def _unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be made or written (the OS's words), or None: a file made there and removed."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, probe = tempfile.mkstemp(dir=folder, prefix=".bench-write-check-")
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        return str(error.strerror or error)
    return None


def results_dir_problem(root: Path, min_free: int = MIN_FREE_BYTES) -> str | None:
    """Why records cannot be stored under `root` (not creatable, not writable, nearly full), or None."""
    why = "a file, not a folder" if root.is_file() else _unwritable(root)
    if why:
        return f"results folder {root} is not writable: {why}; nothing was run"
    free = shutil.disk_usage(root).free
    if free < min_free:
        return (
            f"results folder {root} has {free / 2**20:.0f} MiB free, under the {min_free / 2**20:.0f} MiB"
            " needed to store records and logs; nothing was run"
        )
    return None


def cache_dirs() -> dict[Path, str]:
    """The caches a run on this machine writes, each with how to move it: bench's own (built and converted
    models, base scores) and the Hugging Face datasets cache lm-eval's scoring writes (datasets' own rule:
    HF_DATASETS_CACHE, else HF_HOME/datasets, else ~/.cache/huggingface/datasets)."""
    from huggingface_hub.constants import HF_HOME

    from bench.models.cache import cache_root

    datasets = os.environ.get("HF_DATASETS_CACHE") or os.path.join(HF_HOME, "datasets")
    return {cache_root(): "set BENCH_CACHE_DIR", Path(datasets).expanduser(): "set HF_HOME or HF_DATASETS_CACHE"}


def cache_dir_problem() -> str | None:
    """Why a run here could not write its caches (a read-only home folder), naming the folder and the variable
    that moves it, or None."""
    for folder, move in cache_dirs().items():
        why = _unwritable(folder)
        if why:
            return f"cache folder {folder} is not writable: {why}; {move} to a writable folder; nothing was run"
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
    adapter or weights and scoring tasks beside its record (bench/run/artefacts.py); a stored ok run that kept none
    runs again. Raises SetupError, before any run starts, when the executor cannot start or the results folder
    cannot take records."""
    import time

    clock = clock or time.perf_counter
    session = new_session_id()
    progress = progress or Progress()
    resources = resources or Resources()
    report = ExecutionReport()
    results: dict[int, RunResult] = {}
    here = machine or env.machine_id()  # the executor may file runs elsewhere (below); enough to know
    unreadable: set[Path] = set()  # stored files that are not records, each told once
    digests: dict[str, str] = {}  # data files' and the model's sha256, taken once per call
    kept = (_kept(store, spec, here, unreadable, digests, keep_artefacts=keep_artefacts) for spec in specs)
    pending = not all(kept)  # something will run
    if pending and (problem := results_dir_problem(store.root) or (executor == "local" and cache_dir_problem())):
        raise SetupError(problem)
    try:
        kind = EXECUTORS.get(executor)
    except UnknownNameError as error:
        raise SetupError(str(error)) from None
    chosen = kind(backend_name, timeout_s, resources, clock, **(executor_options or {}))
    jobs: list[Job] = []
    locks: list[FolderLock] = []
    try:
        machine = machine or chosen.machine()  # where its runs land (Ray: a probe task on the cluster)
        if pending:  # one `bench run` at a time writes a suite's machine folder
            locks += _lock(store, sorted({spec.suite for spec in specs}), machine)
        for index, spec in enumerate(specs):
            stored = _kept(store, spec, machine, unreadable, digests, tell=True, keep_artefacts=keep_artefacts)
            if stored is not None:
                results[index] = stored
                report.reused += 1
                progress.end_run(stored, reused=True)
            else:
                jobs.append(_job(store, spec, machine, index, len(specs), keep_artefacts))
        limit = limits.limit_bytes(resources.memory_gib)
        for finished in _finished(chosen, jobs, machine, progress):
            result = _store(finished, store, machine, limit, session)
            results[finished.job.index] = result
            report.executed += 1
            progress.end_run(result, reused=False)
    finally:
        chosen.close()
        for job in jobs:  # a run cut off (Ctrl-C, a crash) stored no record: its log is redacted here
            if job.index not in results:
                _quietly(redact_file, job.log_path)
        for lock in locks:
            lock.release()
        report.results = [results[index] for index in sorted(results)]  # plan order, however runs ended
    return report


def _lock(store: ResultStore, suites: list[str], machine: str) -> list[FolderLock]:
    """The folders' locks, or SetupError naming the `bench run` that holds one (nothing has run yet)."""
    taken: list[FolderLock] = []
    try:
        for suite in suites:
            taken.append(store.lock(suite, machine))
    except FolderBusy as busy:
        for lock in taken:
            lock.release()
        pid, started = busy.holder.get("pid", "?"), busy.holder.get("started", "at an unknown time")
        raise SetupError(
            f"another bench run (pid {pid}, started {started}) is writing {busy.folder};"
            " wait for it or use another --results"
        ) from None
    except OSError as error:
        raise SetupError(f"could not lock {store.root / suites[len(taken)] / machine}: {error}") from None
    return taken


def _job(store: ResultStore, spec: RunSpec, machine: str, index: int, total: int, keep_artefacts: bool) -> Job:
    if keep_artefacts:  # beside the record: <results>/<suite>/<machine>/artefacts/<run_id>/
        folder = store.path_for(spec.suite, machine, spec.run_id).parent / "artefacts" / spec.run_id
        spec = spec.model_copy(update={"artefacts_dir": str(folder.resolve())})
    return Job(index, total, spec, _log_path(store, machine, spec))


def _finished(chosen: Executor, jobs: list[Job], machine: str, progress: Progress) -> Iterator[Finished]:
    """The executor's finished runs; a file of a run that cannot be written (its log: a full disk, a
    folder made unwritable) stops the suite as a record that cannot be stored does (StoreError)."""
    if not jobs:
        return
    try:
        yield from chosen.run(jobs, machine, progress)
    except OSError as error:
        if error.filename is None:  # not a file's (a fork that failed): no environment problem to name
            raise
        raise StoreError(f"could not write {error.filename}: {error.strerror or error}") from None


def _quietly(action: Callable[[Path], None], path: Path) -> None:
    """`action(path)`, where an OSError (a full disk) changes nothing that matters more."""
    try:
        action(path)
    except OSError:
        pass


def _kept(
    store: ResultStore,
    spec: RunSpec,
    machine: str,
    unreadable: set[Path],
    digests: dict[str, str],
    tell: bool = False,
    keep_artefacts: bool = False,
) -> RunResult | None:
    """The stored record to reuse (ok or skipped), or None: the run is to execute. A stored file that is
    not a record (truncated, empty, invalid) is set aside, said once, and its run executes again; a
    record whose data files (bench/tasks/fingerprint.py) or model (its weights, config, tokenizer, chat
    template or code: bench/models/load.py model_changes) have changed since executes again, and so does an
    ok run that kept no artefacts where `keep_artefacts` asks for them; each said where `tell`."""
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
            print(f"bench: {spec.label} seed={spec.seed}: data (or plugin code) changed since its stored run: {files};"
                  " running it again",
                  file=sys.stderr)  # fmt: skip
        return None
    if changed := model_changes(stored.model, spec.model, digests):
        if tell:
            print(f"bench: {spec.label} seed={spec.seed}: model changed since its stored run: {'; '.join(changed)};"
                  " running it again", file=sys.stderr)  # fmt: skip
        return None
    if split_by_row_differs(stored):
        if tell:
            print(f"bench: {spec.label} seed={spec.seed}: its stored run split the preference file by row (the file"
                  " repeats prompts: held-out prompts were trained on); the split is by prompt since 2026-12-07:"
                  " running it again",
                  file=sys.stderr)  # fmt: skip
        return None
    if keep_artefacts and stored.status == "ok" and (missing := _no_artefacts(store, stored)):
        if tell:
            print(f"bench: {spec.label} seed={spec.seed}: --keep-artefacts, and its stored run kept none ({missing});"
                  " running it again", file=sys.stderr)  # fmt: skip
        return None
    return stored


def _no_artefacts(store: ResultStore, stored: RunResult) -> str | None:
    """Why a stored run has no kept artefacts (none asked for, or its folder is gone), or None: it has."""
    kept = stored.spec.get("artefacts_dir")
    if not kept:
        return "it ran without --keep-artefacts"
    folder = store.root / kept  # relative to the results root (schema 7); an older record's is absolute
    return None if folder.is_dir() else f"{folder} is missing"


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
    """The run's record, with its session and out-of-memory named in a failure's reason; written atomically.
    StoreError where it cannot be written, with the record kept elsewhere if possible."""
    job, outcome = finished.job, finished.outcome
    result = outcome.result or failure_record(
        job.spec,
        machine,
        outcome.failure or "unknown",
        finished.started,
        finished.seconds if outcome.seconds is None else outcome.seconds,
        job.log_path,
        outcome.start,
    )
    if result.status == "failed" and result.reason:
        named = _memory_line(result.reason, limit, outcome.oom_kills)
        if named and (limit or "out of memory" not in result.reason):
            result = result.model_copy(update={"reason": f"{result.reason}\n{named}"})
    result = result.model_copy(update={"session": session, "log_path": result.log_path or str(job.log_path)})
    result = store.portable(result)  # what the record file holds is what the report shows
    try:
        store.write(result)
    except OSError as error:
        raise StoreError(_unstored(store, result, error)) from None
    _quietly(redact_file, job.log_path)  # a secret a library printed never stays in the log beside the record
    return result


def _memory_line(reason: str, limit: int | None, oom_kills: int | None) -> str | None:
    """The line naming out-of-memory for a failure's reason, or None. A SIGKILL is out of memory only on
    evidence (the cgroup's OOM-kill count, bench/backends/local.py); else a possibility to check."""
    named = limits.out_of_memory_reason(reason, limit)
    if not (named and named.startswith("likely out of memory")):
        return named
    if reason.startswith("worker killed by SIGKILL"):  # the backend said what the count shows already
        return None
    limit_note = f"; the run's memory limit was {limit / 2**30:.3g} GiB" if limit else ""
    what = "killed by SIGKILL" if "killed by SIGKILL" in reason else "a rank was killed by SIGKILL"
    return f"{what}: {sigkill_cause(oom_kills)}{limit_note}"


def _unstored(store: ResultStore, result: RunResult, error: OSError) -> str:
    """One line: the record that could not be stored, where it would have gone, why, and where it is kept."""
    path = store.path_for(result.suite, result.environment.machine, result.run_id)
    text = result.model_dump_json(indent=2) + "\n"
    kept = Path(tempfile.gettempdir()) / f"bench-unstored-{result.run_id}.json"
    try:
        kept.write_text(text, encoding="utf-8")
        keeping = f"its record is kept at {kept}; copy it there once the disk has room"
    except OSError:
        keeping = "it could not be kept elsewhere either"
    return (
        f"could not store the record of {result.label} seed={result.seed} at {path}: {error.strerror or error}; "
        + keeping
    )
