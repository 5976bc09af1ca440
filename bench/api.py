"""The Python API that the CLI wraps."""

from __future__ import annotations

from pathlib import Path

from bench.execute import ExecutionReport, Progress, execute
from bench.plan import RunSpec, plan
from bench.results import ResultStore
from bench.suite import Suite, load_suite


def run_suite(
    suite: Suite | Path | str,
    results_dir: Path | str = "results",
    progress: Progress | None = None,
    only: list[str] | None = None,
    machine: str | None = None,
) -> ExecutionReport:
    """Run (or resume) every (strategy, seed) of a suite; records land in results_dir."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    specs: list[RunSpec] = plan(suite)
    if only:
        unknown = sorted(set(only) - {spec.label for spec in specs})
        if unknown:
            raise ValueError(f"--only: no strategy labelled {', '.join(unknown)} in suite {suite.name!r}")
        specs = [spec for spec in specs if spec.label in only]
    return execute(
        specs, ResultStore(results_dir), suite.execution.backend, suite.execution.timeout_s, progress, machine
    )
