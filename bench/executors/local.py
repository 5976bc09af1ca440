"""The default executor: one run after another on this machine, through the suite's backend
(`execution.backend`: warm by default), with live progress from the run's events."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from bench.backends import BACKENDS
from bench.executors.base import Finished, Job, Progress, utc_now
from bench.measure import env, limits
from bench.spec import Resources


class LocalExecutor:
    def __init__(
        self,
        backend: str = "warm",
        timeout_s: float = 1800,
        resources: Resources | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        resources = resources or Resources()
        self.backend = BACKENDS.get(backend)(env=limits.child_env(resources.memory_gib))
        self.timeout_s = timeout_s
        self.clock = clock or time.perf_counter

    def machine(self) -> str:
        return env.machine_id()

    def run(self, jobs: list[Job], machine: str, progress: Progress) -> Iterator[Finished]:
        for job in jobs:
            progress.start_run(job.index, job.total, job.spec)
            started, start = utc_now(), self.clock()
            outcome = self.backend.execute(job.spec, machine, self.timeout_s, job.log_path, progress.event)
            yield Finished(job, outcome, started, self.clock() - start)

    def close(self) -> None:
        getattr(self.backend, "close", lambda: None)()
