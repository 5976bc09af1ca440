"""The execution backends as a user drives them (audit of 2026-12-07, user13): a Ray worker shut down left its
run's work folder in /tmp; SIGTERM under Ray exited 130, not 143; `parallel: fsdp` with one process trained
plainly without a word; a Ray run's record did not say Ray ran it; runs of 2 processes asking Ray for 1 CPU."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.backends.local import OWNER_FILE, _pid_namespace, remove_orphans, work_folder
from bench.cli import main as cli
from bench.executors.base import Job
from bench.plan import plan
from bench.spec import Resources
from bench.suite import SuiteError, parse_suite
from tests.conftest import fast_suite


def _owned(root: Path, name: str, host: str, pid: int, namespace: str | None = None) -> Path:
    folder = root / name
    (folder / "tmp").mkdir(parents=True)
    (folder / OWNER_FILE).write_text(f"{host} {pid} {namespace or _pid_namespace()}")
    return folder


def test_work_folders_whose_owner_died_are_removed_by_the_next_run(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    here = socket.gethostname()
    dead = _owned(tmp_path, "bench-run-dead", here, ended.pid)
    alive = _owned(tmp_path, "bench-run-alive", here, os.getpid())
    elsewhere = _owned(tmp_path, "bench-run-elsewhere", "another-host", ended.pid)  # /tmp shared with another host
    # a container sharing /tmp and the host name, with pids of its own: its pid says nothing here
    contained = _owned(tmp_path, "bench-run-contained", here, ended.pid, namespace="4026531836")
    unowned = tmp_path / "bench-run-old"  # made before owners were written: left alone
    unowned.mkdir()
    with work_folder() as folder:
        assert Path(folder, OWNER_FILE).read_text() == f"{here} {os.getpid()} {_pid_namespace()}"
        assert not dead.exists() and alive.exists() and elsewhere.exists() and unowned.exists()
        assert contained.exists() or _pid_namespace() == "4026531836"
    assert not Path(folder).exists()
    assert remove_orphans() == []


def test_a_stop_signal_a_library_turned_into_a_plain_interrupt_keeps_its_exit_code(monkeypatch) -> None:
    def handler(args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 5)  # the handler raises here
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # as ray.wait does with the exception a handler raised
        return 0

    parser = argparse.ArgumentParser()
    parser.set_defaults(handler=handler, command="test")
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    monkeypatch.setattr(cli, "output_problem", lambda args: None)
    before = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        assert cli.main([]) == 143
    finally:
        for sig, action in before.items():
            signal.signal(sig, action)


def test_fsdp_with_one_process_is_refused_naming_the_fields() -> None:
    suite = fast_suite("fsdp-one", ["full"])
    suite["execution"]["parallel"] = "fsdp"
    with pytest.raises(SuiteError, match="parallel: fsdp shards the model across processes, and processes is 1"):
        parse_suite(suite)
    suite["execution"]["processes"] = 2
    assert parse_suite(suite).execution.parallel == "fsdp"


def test_runs_of_more_processes_than_the_cpus_they_ask_ray_for_are_warned_of(tmp_path: Path) -> None:
    from bench.executors.ray import cores_warning

    suite = fast_suite("two", ["lora"], budget={"steps": 2, "batch_size": 4, "seq_len": 16})
    suite["execution"]["processes"] = 2
    jobs = [Job(0, 1, spec, tmp_path / "log") for spec in plan(parse_suite(suite))]
    assert "set execution.resources.cpus to at least 2" in (cores_warning(jobs, Resources(cpus=1)) or "")
    assert cores_warning(jobs, Resources(cpus=2)) is None


def test_a_ray_runs_record_names_the_executor() -> None:
    pytest.importorskip("ray")
    from bench.executors.ray import RayExecutor

    assert RayExecutor(backend="local").start == "cold (a Ray task)"
    assert RayExecutor(backend="warm").start.startswith("cold (the ray executor")


def test_a_run_no_ray_node_can_take_says_no_process_started(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from bench.executors.base import Progress
    from bench.executors.ray import RayExecutor

    executor = RayExecutor(backend="local")
    executor.connected, executor.unfit = True, "no node of the Ray cluster can take a run that needs 64 CPUs"
    spec = plan(parse_suite(fast_suite("unfit", ["full"])))[0]
    (finished,) = executor.run([Job(0, 1, spec, tmp_path / "log")], "x86_64-2c-cpu", Progress())
    assert finished.outcome.start is None and finished.outcome.result is None  # was "cold": no process started
    assert "no node of the Ray cluster can take" in str(finished.outcome.failure)
