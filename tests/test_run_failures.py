"""`bench run` when its environment fails it: a record that cannot be stored, a second `bench run` on the
same folder, driver-written failure records (start, duration), what a timeout counts, the work folders a
killed run leaves, SIGHUP, the failure line on screen, a report that cannot be written, and what a SIGKILL
says about memory. No training: executors, workers and records are stand-ins."""

from __future__ import annotations

import errno
import io
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from bench.backends.base import Outcome
from bench.plan import RunSpec, plan
from bench.records.store import ResultStore, load_records
from bench.suite import load_suite
from tests.conftest import REPO, fast_suite, write_suite
from tests.synthetic_records import make_record
from tests.test_cli_robustness import _bench

MACHINE = "x86_64-2c-cpu"


def _suite(folder: Path) -> Path:
    return write_suite(folder, fast_suite("smoke", ["full", "lora"]))


def _specs(folder: Path) -> list[RunSpec]:
    return plan(load_suite(_suite(folder)))


class StubExecutor:
    """Runs nothing: each job ends with `OUTCOME` (no record: the driver writes a failure record)."""

    started: list[str] = []
    OUTCOME = Outcome(None, "stub: not run")
    SECONDS = 0.0

    def __init__(self, *args: Any, **options: Any) -> None: ...

    def machine(self) -> str:
        return MACHINE

    def run(self, jobs: list, machine: str, progress: Any) -> Any:
        from bench.executors.base import Finished, utc_now

        for job in jobs:
            StubExecutor.started.append(job.spec.label)
            yield Finished(job, self.OUTCOME, utc_now(), self.SECONDS)

    def close(self) -> None: ...


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> type[StubExecutor]:
    import bench.execute

    monkeypatch.setattr(bench.execute.EXECUTORS, "get", lambda name: StubExecutor)
    monkeypatch.setattr(StubExecutor, "started", [])
    return StubExecutor


def _disk_full(self: ResultStore, result: Any) -> Path:
    path = self.path_for(result.suite, result.environment.machine, result.run_id)
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


# 1. a record that cannot be stored


def test_a_record_that_cannot_be_stored_stops_the_suite_and_is_kept_elsewhere(tmp_path, monkeypatch, stub):
    import bench.execute

    monkeypatch.setattr(ResultStore, "write", _disk_full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    specs = _specs(tmp_path)
    with pytest.raises(bench.execute.StoreError) as raised:
        bench.execute.execute(specs, ResultStore(tmp_path / "results"), machine=MACHINE)
    said = str(raised.value)
    path = ResultStore(tmp_path / "results").path_for(specs[0].suite, MACHINE, specs[0].run_id)
    assert f"at {path}: No space left on device" in said and "\n" not in said
    kept = tmp_path / f"bench-unstored-{specs[0].run_id}.json"
    assert f"kept at {kept}" in said and kept.exists()
    assert stub.started == [specs[0].label]  # the runs after it were not started: they could not be stored


def test_bench_run_says_a_store_failure_in_one_line_and_exits_2(tmp_path, monkeypatch, capsys, stub):
    monkeypatch.setattr(ResultStore, "write", _disk_full)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    code, said = _bench(capsys, "run", str(_suite(tmp_path)), "--results", str(tmp_path / "r"), "--quiet")
    assert code == 2 and "Traceback" not in said
    assert "No space left on device" in said and "run the same command again to resume" in said


# 2. one `bench run` at a time per results/<suite>/<machine>


def test_a_second_bench_run_on_the_same_folder_is_refused_before_running_anything(tmp_path, stub):
    import bench.execute
    from bench.executors.base import SetupError

    specs, store = _specs(tmp_path), ResultStore(tmp_path / "results")
    held = store.lock(specs[0].suite, MACHINE)  # as another `bench run` would hold it
    try:
        with pytest.raises(SetupError) as raised:
            bench.execute.execute(specs, store, machine=MACHINE)
    finally:
        held.release()
    said = str(raised.value)
    assert said.startswith(f"another bench run (pid {os.getpid()}, started ")
    assert said.endswith(f"is writing {tmp_path / 'results' / 'smoke' / MACHINE}; wait for it or use another --results")
    assert stub.started == [] and not list(load_records(tmp_path / "results"))
    assert bench.execute.execute(specs, store, machine=MACHINE).executed == 2  # released: the next one runs


def test_the_lock_of_a_bench_run_killed_outright_is_free(tmp_path):
    folder = tmp_path / "results" / "smoke" / MACHINE
    hold = f"from bench.records.store import FolderLock; lock = FolderLock({str(folder)!r}); lock.acquire()"
    holder = subprocess.Popen(
        [sys.executable, "-c", f"{hold}; print('held', flush=True); import time; time.sleep(600)"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        from bench.records.store import FolderBusy

        with pytest.raises(FolderBusy):
            ResultStore(tmp_path / "results").lock("smoke", MACHINE)
    finally:
        holder.kill()
        holder.wait(timeout=60)
    ResultStore(tmp_path / "results").lock("smoke", MACHINE).release()  # the OS dropped the dead one's lock


# 3. failure records written by the driver


def test_a_driver_written_failure_record_says_how_the_run_started_and_times_the_run_only(tmp_path, monkeypatch, stub):
    import bench.execute

    # a warm run timed out 10.2 s after its fork; the executor's clock also counted the server's start
    monkeypatch.setattr(stub, "OUTCOME", Outcome(None, "timed out after 10 s", start="warm", seconds=10.2))
    monkeypatch.setattr(stub, "SECONDS", 19.5)
    report = bench.execute.execute(_specs(tmp_path), ResultStore(tmp_path / "results"), machine=MACHINE)
    assert [(r.start, r.wall_seconds) for r in report.results] == [("warm", 10.2), ("warm", 10.2)]


def test_the_ray_executor_takes_the_runs_own_start_and_duration_from_its_task(monkeypatch, tmp_path):
    from bench.executors import ray as ray_executor
    from bench.executors.base import Job

    executor = ray_executor.RayExecutor(backend="warm", timeout_s=10)
    reply = {"record": None, "failure": "timed out after 10 s", "log": None, "start": "cold (why)", "seconds": 10.4}
    monkeypatch.setattr(ray_executor.ray, "get", lambda ref: reply)
    job = Job(0, 1, _specs(tmp_path)[0], tmp_path / "run.log")
    got = executor._collect(object(), job)
    assert (got.start, got.seconds) == ("cold (why)", 10.4)


# 4. the timeout counts from the run's first event; 5. the driver removes the run's work folder

FAKE_WORKER = """#!/bin/sh
mkdir -p "${{TMPDIR:-/tmp}}/bench-fake-trainer"  # as the worker's TemporaryDirectory
sleep {startup}  # the interpreter's imports
echo '@@bench {{"event": "phase", "phase": "load"}}'
sleep 600
"""


def test_a_cold_runs_timeout_counts_from_its_first_event_and_its_work_folder_goes(tmp_path, monkeypatch):
    from bench.backends.local import LocalBackend

    fake = tmp_path / "python"
    fake.write_text(FAKE_WORKER.format(startup=4))
    fake.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(fake))
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", None)
    events: list[dict] = []
    ended = LocalBackend().execute(_specs(tmp_path)[0], MACHINE, 2, tmp_path / "run.log", events.append)
    assert events == [{"event": "phase", "phase": "load"}]  # not killed during its 4 s start-up
    assert ended.failure.startswith("timed out after 2 s") and ended.start == "cold"
    assert ended.seconds >= 6
    assert list(scratch.iterdir()) == []  # the run's work folder, and its TMPDIR's files, are gone


def test_torchrun_gets_a_log_folder_that_is_removed_when_it_ends(monkeypatch):
    from bench.training import distributed

    seen: list[list[str]] = []

    def fake_run(command: list[str], **options: Any) -> subprocess.CompletedProcess:
        seen.append(command)
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(distributed.subprocess, "run", fake_run)
    assert distributed.launch(2, ["spec.json", "out.json", "--machine", MACHINE]) == 0
    logs = [part.split("=", 1)[1] for part in seen[0] if part.startswith("--log-dir=")]
    assert logs and not Path(logs[0]).exists()


# 6. SIGHUP


def test_sighup_is_handled_like_sigterm_with_exit_129(tmp_path):
    script = textwrap.dedent("""
        import os, signal, sys, time
        import bench.cli.run
        def hang_up(args):
            os.kill(os.getpid(), signal.SIGHUP)
            time.sleep(60)
        bench.cli.run._run = hang_up
        from bench.cli.main import main
        sys.exit(main(["run", "suite.yaml"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 129, done.stderr
    assert "interrupted" in done.stderr and "run the same command again to resume" in done.stderr


# 7. the failure line on screen


def _failed(reason: str) -> Any:
    return make_record("lora", 0).model_copy(update={"status": "failed", "reason": reason})


def test_the_failure_line_is_the_drivers_first_line_or_the_exception_never_a_progress_bar():
    from bench.cli.console import RichProgress

    out = io.StringIO()
    progress = RichProgress(Console(file=out, width=400))
    progress.end_run(_failed("worker killed by SIGKILL: check `dmesg`\nBuilding labels for train dataset:"), False)
    traceback = 'Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad r\nMap: 100%|###| 64/64'
    progress.end_run(_failed(traceback), False)
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("worker killed by SIGKILL: check `dmesg`")
    assert lines[1].endswith("ValueError: bad r")


def test_quiet_says_the_cause_of_a_failure(tmp_path, monkeypatch, capsys):
    import bench.api
    from bench.execute import ExecutionReport

    failed = _failed("timed out after 10 s; killed\nBuilding labels for train dataset:")
    monkeypatch.setattr(bench.api, "run_suite", lambda *a, **k: ExecutionReport([failed], executed=1))
    args = ("run", str(_suite(tmp_path)), "--results", str(tmp_path / "r"), "--quiet", "--no-report")
    code, said = _bench(capsys, *args)
    assert code == 1 and "failed lora seed=0: timed out after 10 s; killed\n" in said


# 8. a report that cannot be written


def test_a_failed_report_names_the_command_that_rebuilds_it_with_the_folders_given(tmp_path, monkeypatch, capsys):
    import bench.api
    from bench.execute import ExecutionReport

    monkeypatch.setattr(bench.api, "run_suite", lambda *a, **k: ExecutionReport([make_record("full", 0)]))
    monkeypatch.setitem(sys.modules, "bench.report.html", None)  # its import fails
    suite = _suite(tmp_path)
    args = ("run", str(suite), "--results", str(tmp_path / "r"), "--reports", str(tmp_path / "p"), "--quiet")
    code, said = _bench(capsys, *args)
    assert code == 0 and "Traceback" not in said
    assert f"rebuild it with: bench report {suite} --results {tmp_path / 'r'} --reports {tmp_path / 'p'}" in said


# 9. what a SIGKILL says about memory


def test_a_sigkill_is_out_of_memory_only_on_evidence(tmp_path):
    from bench.backends.local import outcome

    missing, log = tmp_path / "result.json", tmp_path / "run.log"
    unknown = outcome(missing, -signal.SIGKILL, log, None).failure
    assert unknown.startswith("worker killed by SIGKILL: the out-of-memory killer is the usual cause; check `dmesg`")
    assert "out of memory: the kernel's OOM killer ended 1 process" in outcome(missing, -9, log, 1).failure
    assert "not the kernel's OOM killer" in outcome(missing, -9, log, 0).failure


def test_a_stored_sigkill_record_does_not_claim_likely_out_of_memory(tmp_path, monkeypatch, stub):
    import bench.execute

    reason = "worker killed by SIGKILL: the out-of-memory killer is the usual cause\nlog tail"
    monkeypatch.setattr(stub, "OUTCOME", Outcome(None, reason))
    report = bench.execute.execute(_specs(tmp_path), ResultStore(tmp_path / "results"), machine=MACHINE)
    assert all("likely out of memory" not in record.reason for record in report.results)


def test_a_warm_server_killed_by_sigkill_is_not_called_out_of_memory_without_evidence(tmp_path, monkeypatch, stub):
    import bench.execute

    reason = "the warm server died (killed by SIGKILL) during this run; the next run starts a new one"
    monkeypatch.setattr(stub, "OUTCOME", Outcome(None, reason, start="warm", oom_kills=None))
    report = bench.execute.execute(_specs(tmp_path), ResultStore(tmp_path / "results"), machine=MACHINE)
    said = report.results[0].reason
    assert "likely out of memory" not in said and "the out-of-memory killer is the usual cause; check `dmesg`" in said
