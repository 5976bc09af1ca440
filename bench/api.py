"""The Python API that the CLI wraps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.execute import ExecutionReport, execute
from bench.executors.base import Progress
from bench.plan import RunSpec, plan
from bench.records.store import ResultStore
from bench.suite import Suite, load_suite

if TYPE_CHECKING:
    from bench.analysis.verdicts import Comparison


def run_suite(
    suite: Suite | Path | str,
    results_dir: Path | str = "results",
    progress: Progress | None = None,
    only: list[str] | None = None,
    machine: str | None = None,
    executor: str = "local",
    address: str | None = None,
    keep_artefacts: bool = False,
    record_host: bool = False,
) -> ExecutionReport:
    """Run (or resume) every (strategy, seed) of a suite; records land in results_dir.

    `executor`: `local` (one run after another on this machine) or `ray` (one Ray task per run, on the
    cluster at `address`, else on a local one started for the call); records are written here either
    way; they hold this machine's host name only with `record_host`. Raises
    bench.executors.base.SetupError, before any run, when that cannot start."""
    suite = suite if isinstance(suite, Suite) else load_suite(suite)
    specs: list[RunSpec] = plan(suite)
    if only:
        unknown = sorted(set(only) - {spec.label for spec in specs})
        if unknown:
            raise ValueError(f"--only: no strategy labelled {', '.join(unknown)} in suite {suite.name!r}")
        specs = [spec for spec in specs if spec.label in only]
    return execute(
        specs,
        ResultStore(results_dir, record_host=record_host),
        suite.execution.backend,
        suite.execution.timeout_s,
        progress,
        machine,
        executor=executor,
        resources=suite.execution.resources,
        executor_options={"address": address} if address else None,
        keep_artefacts=keep_artefacts,
    )


def report(
    source: Path | str,
    out: Path | str | None = None,
    results_dir: Path | str = "results",
    reports_dir: Path | str = "reports",
    history_dir: Path | str | None = None,
    notes: Path | str | None = None,
) -> Path:
    """Render the HTML report of a suite (YAML path: its records under results_dir) or of a results folder.

    The history section (trend charts, change points) is built from `history_dir`, else from the
    records' own folder; it appears when that holds more than one night.
    Reads records only (never imports torch). Returns the written path (default reports/<suite>.html).
    """
    from bench.analysis.history import build
    from bench.records.archives import is_archive
    from bench.records.store import load_records
    from bench.report.html import write_report

    source = Path(source)
    suite_text = None
    if source.is_file() and not is_archive(source):  # an archive of records reads as their folder
        suite_text = source.read_text(encoding="utf-8")
        suite = load_suite(source)
        folder = Path(results_dir) / suite.name
        records = list(load_records(folder)) if folder.exists() else []
        current = {spec.run_id for spec in plan(suite)}
        # records of an older version of the suite stay on disk; report the current plan's runs when there are any
        records = [record for record in records if record.run_id in current] or records
    else:
        folder = source
        records = list(load_records(folder)) if folder.exists() else []
    if not records:
        raise FileNotFoundError(f"no result records under {folder}")
    suites = sorted({record.suite for record in records})
    if out is None:
        out = Path(reports_dir) / f"{'+'.join(suites)}.html"
    history = build(history_dir or folder, suites[0] if len(suites) == 1 else None)
    text = Path(notes).read_text(encoding="utf-8") if notes else None
    return write_report(records, out, suite_text, history=history, notes=text)


def compare(
    baseline: Path | str,
    candidate: Path | str,
    fail_on: list[str] | None = None,
    thresholds: dict[str, float] | None = None,
    baseline_rev: str | None = None,
    candidate_rev: str | None = None,
    json_out: Path | str | None = None,
    html_out: Path | str | None = None,
    adjust_timing: bool = True,
    alpha: float = 0.05,
    min_effects: dict[str, float] | None = None,
) -> Comparison:
    """Compare a candidate result set with a baseline; optionally write JSON and an HTML report with the comparison."""
    import json

    from bench.analysis import compare as comparing
    from bench.records.store import atomic_write_text

    result = comparing.compare(
        baseline,
        candidate,
        fail_on=fail_on,
        thresholds=thresholds,
        baseline_rev=baseline_rev,
        candidate_rev=candidate_rev,
        adjust_timing=adjust_timing,
        alpha=alpha,
        min_effects=min_effects,
    )
    if json_out is not None:
        atomic_write_text(Path(json_out), json.dumps(result.to_json(), indent=2) + "\n")
        Path(json_out).chmod(0o644)
    if html_out is not None:
        from bench.report.html import write_report

        records = comparing.load_set(candidate, candidate_rev)
        write_report(records, html_out, comparison=result, title=f"Comparison: {result.candidate} vs {result.baseline}")
    return result
