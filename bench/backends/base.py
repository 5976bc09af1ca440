"""Where a run executes. A backend takes one RunSpec and returns its RunResult or a failure reason;
the executor above it owns the plan, resume and storage. A new backend (torchrun, Ray) is one module
implementing `Backend` plus one line in bench/backends/__init__.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from bench.plan import RunSpec
from bench.records.results import RunResult

EventHandler = Callable[[dict[str, Any]], None]


@dataclass
class Outcome:
    result: RunResult | None  # what the worker returned
    failure: str | None = None  # why there is no result (crash, signal, timeout)
    start: str | None = None  # how its process started, as a record's `start` says it: warm, or cold (why)
    seconds: float | None = None  # from its process's start to its end: a failure record's wall_seconds
    oom_kills: int | None = None  # processes the OOM killer ended in this cgroup meanwhile; None: unknown


class Backend(Protocol):
    def execute(
        self, spec: RunSpec, machine: str, timeout_s: float, log_path: Path, on_event: EventHandler
    ) -> Outcome: ...
