"""The Python API that the CLI wraps."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from bench.execute import ExecutionReport, execute
from bench.executors.base import Progress
from bench.plan import RunSpec, plan
from bench.records.results import RunResult
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
    specs = selected_runs(suite, only)
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


class UnknownLabelError(ValueError):
    """`only` names a label that the suite does not have; the message names it and the labels there are."""


def selected_runs(suite: Suite, only: list[str] | None = None) -> list[RunSpec]:
    """The suite's planned runs, of the strategies labelled in `only` (every one when None or empty).
    Raises UnknownLabelError for a label the suite does not have."""
    specs: list[RunSpec] = plan(suite)
    if not only:
        return specs
    labels = list(dict.fromkeys(spec.label for spec in specs))
    unknown = sorted(set(only) - set(labels))
    if unknown:
        raise UnknownLabelError(
            f"--only: no strategy labelled {', '.join(unknown)} in suite {suite.name!r} (labels: {', '.join(labels)})"
        )
    return [spec for spec in specs if spec.label in only]


def stored_runs(suite: Suite, results_dir: Path | str, machines: set[str]) -> list[RunResult]:
    """The stored record of every planned run of `suite` on `machines`, in plan order; a run with no
    readable record is left out (what a rerun of the whole suite would report, less what it would run)."""
    from bench.records.migrations import NotARecord

    store, found = ResultStore(results_dir), []
    for spec in plan(suite):
        for machine in sorted(machines):
            try:
                record = store.read(spec.suite, machine, spec.run_id)
            except (NotARecord, OSError):
                record = None
            if record is not None:
                found.append(record)
    return found


class ReportSourceError(ValueError):
    """What `bench report` was given is not something it renders; the message says what it takes."""


REPORT_TAKES = "bench report takes a suite YAML, a results folder (or its records.tar.xz) or one record file"


def _record_file(source: Path) -> RunResult | None:
    """The record in `source` when it is a record file (a JSON object with a run_id), else None (a suite,
    which may be JSON too: an object with strategies). Raises ReportSourceError for any other JSON file."""
    import json

    from bench.records.migrations import NotARecord
    from bench.records.results import parse_record

    if source.suffix.lower() != ".json":
        return None
    try:
        raw = json.loads(source.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError is a ValueError
        raise ReportSourceError(f"{source} is not valid JSON ({str(error)[:200]}); {REPORT_TAKES}") from None
    if isinstance(raw, dict) and "strategies" in raw and "run_id" not in raw:
        return None
    try:
        return parse_record(raw)
    except NotARecord as error:
        raise ReportSourceError(f"{source}: {error}; {REPORT_TAKES}") from None


def report(
    source: Path | str,
    out: Path | str | None = None,
    results_dir: Path | str = "results",
    reports_dir: Path | str = "reports",
    history_dir: Path | str | None = None,
    notes: Path | str | None = None,
) -> Path:
    """Render the HTML report of a suite (YAML path: its records under results_dir), of a results folder,
    or of one record file (default reports/<suite>-<run_id>.html; ReportSourceError for a broken one).

    The history section (trend charts, change points) is built from `history_dir`, else from the
    records' own folder; it appears when that holds more than one night. The suite's YAML and the notes
    are scrubbed as records are (portable.scrub_document: secrets redacted, paths made portable).
    Reads records only (never imports torch). Returns the written path (default reports/<suite>.html).
    """
    from bench.analysis.history import build
    from bench.records.archives import is_archive
    from bench.records.portable import scrub_document, scrub_suite
    from bench.records.store import Skipped, load_records, record_paths, tell_skipped
    from bench.report.html import write_report

    source = Path(source)
    if source.suffix in (".yaml", ".yml") and not source.exists():
        raise FileNotFoundError(f"no such suite file {source}")
    suite_text, not_run = None, []
    skipped: list[Skipped] = []  # files below the folder that are not records, or damaged ones
    single = _record_file(source) if source.is_file() else None
    if single is not None:  # its own report (not the suite's), with history only from `history_dir`
        out = out if out is not None else Path(reports_dir) / f"{single.suite}-{single.run_id}.html"
        history = build(history_dir, single.suite) if history_dir else None
        text = scrub_document(Path(notes).read_text(encoding="utf-8")) if notes else None
        return write_report([single], out, history=history, notes=text)
    if source.is_file() and not is_archive(source):  # an archive of records reads as their folder
        suite_text = scrub_suite(source.read_text(encoding="utf-8"))  # scrubbed as records are
        suite = load_suite(source)
        folder = Path(results_dir) / suite.name
        records = list(load_records(folder, skipped)) if folder.exists() else []
        planned = plan(suite)
        current = {spec.run_id for spec in planned}
        # records of an older version of the suite stay on disk; report the current plan's runs when there are any
        records = [record for record in records if record.run_id in current] or records
        stored = {record.run_id for record in records}
        if stored & current:  # the plan's runs without a record (none of it stored: an older suite's records)
            not_run = [f"{spec.label} seed {spec.seed}" for spec in planned if spec.run_id not in stored]
    else:
        folder = source
        records = list(load_records(folder, skipped)) if folder.exists() else []
    if not records:
        raise FileNotFoundError(f"no result records under {folder}" + ("" if folder.exists() else ": no such folder"))
    unreadable = [f"{_within(one.path, folder)}: {one.reason}" for one in skipped if one.damaged]
    suites = sorted({record.suite for record in records})
    if out is None:
        out = Path(reports_dir) / f"{'+'.join(suites)}.html"
    history = None
    if history_dir or len({path.parent for path in record_paths(folder)}) > 1:  # one folder is one night
        history = build(history_dir or folder, suites[0] if len(suites) == 1 else None)
    else:  # no trend to draw: the records are not read a second time (5,000 of them: 10 s and 1 GB)
        tell_skipped(folder, skipped)
    text = scrub_document(Path(notes).read_text(encoding="utf-8")) if notes else None
    return write_report(records, out, suite_text, history=history, notes=text, unreadable=unreadable, not_run=not_run)


def _within(path: Path, folder: Path) -> str:
    """A file's path below the folder read (a report travels: no absolute path of this machine in it)."""
    try:
        return str(path.relative_to(folder))
    except ValueError:
        return path.name


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
