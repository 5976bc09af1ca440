"""Progress shown on long work: run i of n, strategy, seed, phase, step and loss (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from bench import execute
from bench.plan import RunSpec
from bench.results import RunResult

STATUS_STYLE = {"ok": "green", "skipped": "yellow", "failed": "red"}


class RichProgress(execute.Progress):
    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=True,
        )
        self.task_id: Any = None
        self.header = ""

    def start_run(self, index: int, total: int, spec: RunSpec) -> None:
        self.header = f"run {index + 1}/{total} {spec.label} seed={spec.seed}"
        if self.task_id is None:
            self.bar.start()
            self.task_id = self.bar.add_task(self.header, total=spec.budget.steps, info="starting")
        self.bar.reset(self.task_id, total=spec.budget.steps, description=self.header, info="starting")

    def event(self, event: dict[str, Any]) -> None:
        if self.task_id is None:
            return
        kind = event.get("event")
        if kind == "step":
            self.bar.update(
                self.task_id, completed=event["step"], total=event["total"], info=f"loss {event['loss']:.4f}"
            )
        elif kind == "phase":
            self.bar.update(self.task_id, info=event["phase"])
        elif kind == "note":
            self.bar.console.print(f"  [dim]{event['message']}[/dim]")

    def end_run(self, result: RunResult, reused: bool) -> None:
        style = STATUS_STYLE[result.status]
        origin = "stored, reused" if reused else f"{result.wall_seconds:.1f} s"
        reason = f": {result.reason.splitlines()[-1]}" if result.reason else ""
        self.console.print(f"[{style}]{result.status:7}[/{style}] {result.label} seed={result.seed} ({origin}){reason}")

    def close(self) -> None:
        if self.task_id is not None:
            self.bar.stop()
