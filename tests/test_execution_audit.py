"""Execution edge cases found in an audit: a killed run's whole process tree goes (torchrun's ranks
included), the warm server comes back after dying, a driver inside a distributed job does not pass
its rank to the runs, the warm server imports under the run's memory limit, and Rust's allocation
failure is named out of memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.backends import local, warm
from bench.measure import limits
from bench.records.store import load_records
from tests.conftest import REPO, bench_cli, fast_suite, write_suite

LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process trees and PDEATHSIG: Linux")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ")[-1][0] != "Z"  # a zombie is dead, only not reaped yet
    except OSError:
        return False


def _wait_dead(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _alive(pid)


# A run's process that starts a child in a session of its own, as torchrun starts each rank
TREE = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
print(child.pid, flush=True)
time.sleep(600)
"""


@LINUX
def test_killing_a_run_kills_the_processes_that_left_its_group(tmp_path: Path):
    run = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True, start_new_session=True)
    rank = int(run.stdout.readline())
    try:
        local.kill_group(run.pid)
        run.wait(timeout=10)
        assert _wait_dead(rank), "the process in its own session outlived the killed run"
    finally:
        for pid in (run.pid, rank):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# torchrun (the middle process) starts a rank in its own session; the rank follows its launcher
RANK = """
import os, sys, time
os.environ.update(RANK="1", WORLD_SIZE="2")
from bench.training import distributed
distributed.follow_launcher()
print("bound", flush=True)
time.sleep(600)
"""
LAUNCHER = """
import subprocess, sys, time
rank = subprocess.Popen([sys.executable, "-c", sys.argv[1]], start_new_session=True, stdout=subprocess.PIPE, text=True)
assert rank.stdout.readline().strip() == "bound"
print(rank.pid, flush=True)
time.sleep(600)
"""


@LINUX
def test_a_rank_dies_with_its_launcher_when_the_run_is_killed_outright():
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, RANK], stdout=subprocess.PIPE, text=True, cwd=REPO, env=_with_repo_path()
    )
    rank = int(launcher.stdout.readline())
    try:
        launcher.kill()  # SIGKILL: no handler of torchrun's runs
        launcher.wait(timeout=10)
        assert _wait_dead(rank), "a rank outlived its killed launcher"
    finally:
        try:
            os.kill(rank, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _with_repo_path() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def test_a_runs_environment_leaves_out_the_drivers_distributed_launch_variables(monkeypatch):
    for name, value in {
        "RANK": "1",
        "WORLD_SIZE": "2",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "2",
        "MASTER_ADDR": "10.0.0.1",
        "MASTER_PORT": "29500",
        "TORCHELASTIC_RUN_ID": "x",
        "BENCH_KEEP": "1",
    }.items():
        monkeypatch.setenv(name, value)
    environment = local.run_environment({"BENCH_START": "cold"})
    assert environment["BENCH_KEEP"] == "1" and environment["BENCH_START"] == "cold"
    left = {"RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"}
    assert not left & set(environment)


def test_a_driver_inside_a_distributed_job_still_gets_its_runs_records(tmp_path: Path):
    """A `bench run` started by torchrun (or under Slurm) as rank 1: its 1-process runs are not rank 1."""
    suite = write_suite(tmp_path, fast_suite("ranked", ["full"], execution={"backend": "local", "timeout_s": 300}))
    results = tmp_path / "results"
    environment = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2"}
    done = bench_cli("run", str(suite), "--results", str(results), "--quiet", env=environment)
    assert done.returncode == 0, done.stderr
    (record,) = load_records(results)
    assert record.status == "ok", record.reason
    assert record.budget["world_size"] == 1


# A warm server stand-in: the protocol's `ready`, then it dies when told (a run's request ends it)
FAKE_SERVER = """
import json, sys
print(json.dumps({"ready": 0.5}), flush=True)
for line in sys.stdin:
    sys.exit(0)
"""


def test_a_warm_server_that_died_between_runs_is_started_again(tmp_path: Path, monkeypatch):
    fake = tmp_path / "fake_server.py"
    fake.write_text(FAKE_SERVER)
    monkeypatch.setattr(warm.WarmBackend, "server_command", (str(fake),))
    backend = warm.WarmBackend()
    try:
        backend._start()
        first = backend.server
        first.kill()
        first.wait(timeout=10)
        time.sleep(0.2)  # its reader has seen the end
        backend._start()
        assert backend.cold_reason is None, backend.cold_reason
        assert backend.server is not first and backend.server.poll() is None
        for _ in range(warm.MAX_RESTARTS):  # a server that keeps dying is not started for ever
            backend.server.kill()
            backend.server.wait(timeout=10)
            backend._start()
        assert backend.cold_reason and "died" in backend.cold_reason
    finally:
        backend.close()


# Kills the warm server from the run it forked (as the kernel's OOM killer might pick the server)
SERVER_KILLER = """
import os, signal
from typing import ClassVar
from bench.strategies import STRATEGIES
from bench.strategies.base import StrategyOptions

class ServerKiller:
    objective: ClassVar = "sft"
    Options: ClassVar = StrategyOptions

    def prepare(self, model, options, context):
        if os.environ.get("BENCH_START", "").startswith("warm"):
            os.kill(os.getppid(), signal.SIGKILL)
        raise RuntimeError("planted: no warm server to kill")

    def save(self, model, directory):
        pass

STRATEGIES.add("server_killer", ServerKiller())
"""


def test_a_warm_server_killed_during_a_run_is_named_and_the_next_run_is_warm_again(tmp_path: Path):
    (tmp_path / "bench_server_killer.py").write_text(SERVER_KILLER)
    suite = write_suite(
        tmp_path,
        fast_suite(
            "server-dies", ["server_killer", "full"], plugins=["bench_server_killer"], execution={"timeout_s": 300}
        ),
    )
    results = tmp_path / "results"
    done = bench_cli("run", str(suite), "--results", str(results), "--quiet", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode in (0, 1), done.stderr
    records = {r.label: r for r in load_records(results)}
    killed = records["server_killer"]
    assert killed.status == "failed" and "warm server died" in killed.reason and "SIGKILL" in killed.reason
    # a plugin's os.kill, not the kernel: out of memory only on the cgroup's evidence (tests/test_run_failures.py)
    assert "likely out of memory" not in killed.reason
    assert records["full"].status == "ok" and records["full"].start == "warm"


def test_a_warm_run_under_a_memory_limit_has_the_headroom_of_a_cold_one(tmp_path: Path):
    """The warm server imported without the limit reserved 1 GiB more (pyarrow's mimalloc) than a
    worker that imports under it, and its children inherited that: 1.5 GiB failed every warm run."""
    execution = {"backend": "warm", "timeout_s": 300, "resources": {"memory_gib": 1.5}}
    suite = write_suite(tmp_path, fast_suite("limited", ["full"], execution=execution))
    results = tmp_path / "results"
    done = bench_cli("run", str(suite), "--results", str(results), "--quiet")
    assert done.returncode == 0, done.stderr
    (record,) = load_records(results)
    assert record.status == "ok", record.reason
    assert record.start == "warm"


def test_rusts_allocation_failure_is_named_out_of_memory():
    reason = "worker killed by SIGABRT\nmemory allocation of 262144 bytes failed\nstack backtrace:"
    named = limits.out_of_memory_reason(reason, 2**30)
    assert named and named.startswith("out of memory: the run exceeded its memory limit of 1 GiB")
    assert "memory allocation of 262144 bytes failed" in named


def test_a_rank_killed_by_the_oom_killer_is_named_likely_out_of_memory():
    """torchrun exits 1 when the kernel kills one rank; its summary says which signal, as torch's elastic
    errors word it."""
    reason = (
        "worker exited with code 1 without a result\n[stderr] torch.distributed.elastic.multiprocessing.errors."
        "ChildFailedError:\n  exitcode  : -9 (pid: 4242)\n  traceback : Signal 9 (SIGKILL) received by PID 4242"
    )
    named = limits.out_of_memory_reason(reason, None)
    assert named and named.startswith("likely out of memory: a rank was killed by SIGKILL")
    assert limits.out_of_memory_reason("worker exited with code 1 without a result", None) is None
