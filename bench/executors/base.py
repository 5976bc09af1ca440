"""The executor interface: run a suite's pending runs somewhere, and say how each ended.

bench/execute.py owns everything else, for every executor alike: which runs are pending (resume),
the failure record when a run returns none, out-of-memory naming, and the atomic write of each
record, on the driver, as each run ends. An executor only runs and reports:

    executor = SomeExecutor(backend="warm", timeout_s=1800, resources=Resources(), clock=time.perf_counter)
    machine = executor.machine()               # the machine kind records are filed under (resume key)
    for finished in executor.run(jobs, machine, progress):   # in the order runs end
        ...                                    # finished.outcome: the record, or why there is none
    executor.close()

A Slurm executor (submitit) would be one module: `machine()` runs a small probe job with the suite's
resources; `run()` submits one array job with a task per Job (each task running the run through
`bench.backends.local.LocalBackend`, as the Ray executor does, with `timeout_min` from timeout_s and
cpus/gpus/mem from `resources`), polls the jobs and yields each as it ends (a job that Slurm killed
or that died: an Outcome with the reason, e.g. from `job.state`); `close()` cancels jobs still queued.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from bench.backends.base import Outcome
from bench.plan import RunSpec
from bench.records.results import RunResult
from bench.spec import Resources


class Progress:
    """What the executor tells the user; the CLI supplies a rich implementation, quiet is this one."""

    def start_run(self, index: int, total: int, spec: RunSpec) -> None: ...
    def event(self, event: dict[str, Any]) -> None: ...
    def end_run(self, result: RunResult, reused: bool) -> None: ...


class SetupError(Exception):
    """What stops a suite before any run starts (an executor that cannot start, an unusable results
    folder); the CLI prints it as one line and exits 2."""


class StoreError(Exception):
    """A run's record could not be stored (a full disk, a folder made unwritable mid-suite): the suite
    stops, as the runs after it could not be stored either; the CLI prints it as one line and exits 2."""


@dataclass(frozen=True)
class Job:
    """One pending run: its place in the plan (for progress), its spec, and where the driver keeps its log."""

    index: int
    total: int
    spec: RunSpec
    log_path: Path


@dataclass
class Finished:
    """A run that ended: the record, or why there is none; when it started (UTC) and how long it took."""

    job: Job
    outcome: Outcome
    started: str
    seconds: float


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class Executor(Protocol):
    def __init__(
        self, backend: str, timeout_s: float, resources: Resources, clock: Callable[[], float], **options: object
    ) -> None: ...

    def machine(self) -> str:
        """The machine kind the runs execute on: records are filed, and looked up for resume, under it."""
        ...

    def run(self, jobs: list[Job], machine: str, progress: Progress) -> Iterator[Finished]:
        """Run every job (several at once if it can), calling progress.start_run as each starts; yield
        each as it ends. Stopping early (Ctrl-C, an exception) must take the runs in flight down."""
        ...

    def close(self) -> None:
        """Release what the executor started (a warm server, a Ray cluster it started itself)."""
        ...
