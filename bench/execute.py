"""Execute a plan: skip what is stored, run the rest through a backend, store every outcome.

Records are written as each run ends, so an interrupted suite loses only the run in flight and
the same command resumes it. Failed runs are retried on the next invocation; ok and skipped are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.backends import BACKENDS
from bench.measure import env
from bench.plan import RunSpec
from bench.results import ResultStore, RunResult

KEEP = ("ok", "skipped")


@dataclass
class ExecutionReport:
    results: list[RunResult] = field(default_factory=list)
    reused: int = 0
    executed: int = 0


class Progress:
    """What the executor tells the user; the CLI supplies a rich implementation, quiet is this one."""

    def start_run(self, index: int, total: int, spec: RunSpec) -> None: ...
    def event(self, event: dict[str, Any]) -> None: ...
    def end_run(self, result: RunResult, reused: bool) -> None: ...


def failure_record(spec: RunSpec, machine: str, reason: str, started: str, seconds: float, log_path: Path) -> RunResult:
    return RunResult(
        run_id=spec.run_id,
        suite=spec.suite,
        strategy=spec.strategy,
        label=spec.label,
        seed=spec.seed,
        status="failed",
        reason=reason,
        spec=spec.model_dump(mode="json"),
        budget={"resolved": spec.budget.model_dump()},
        environment=env.capture(machine),
        started_at=started,
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        wall_seconds=round(seconds, 3),
        log_path=str(log_path),
    )


def execute(
    specs: list[RunSpec],
    store: ResultStore,
    backend_name: str = "local",
    timeout_s: float = 1800,
    progress: Progress | None = None,
    machine: str | None = None,
    clock: Callable[[], float] | None = None,
) -> ExecutionReport:
    import time

    clock = clock or time.perf_counter
    progress = progress or Progress()
    machine = machine or env.machine_id()
    backend = BACKENDS.get(backend_name)()
    report = ExecutionReport()
    try:
        _execute_all(specs, store, backend, timeout_s, progress, machine, clock, report)
    finally:
        getattr(backend, "close", lambda: None)()
    return report


def _execute_all(specs, store, backend, timeout_s, progress, machine, clock, report) -> None:
    for index, spec in enumerate(specs):
        stored = store.read(spec.suite, machine, spec.run_id)
        if stored is not None and stored.status in KEEP:
            report.results.append(stored)
            report.reused += 1
            progress.end_run(stored, reused=True)
            continue
        progress.start_run(index, len(specs), spec)
        log_path = store.path_for(spec.suite, machine, spec.run_id).parent / "logs" / f"{spec.run_id}.log"
        started, start = datetime.now(timezone.utc).isoformat(timespec="seconds"), clock()
        outcome = backend.execute(spec, machine, timeout_s, log_path, progress.event)
        result = outcome.result or failure_record(
            spec, machine, outcome.failure or "unknown", started, clock() - start, log_path
        )
        if result.log_path is None:
            result = result.model_copy(update={"log_path": str(log_path)})
        store.write(result)
        report.results.append(result)
        report.executed += 1
        progress.end_run(result, reused=False)
