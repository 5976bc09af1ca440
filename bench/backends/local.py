"""Run each RunSpec in a fresh Python process on this machine, with a timeout.

The child runs in its own session so that a Ctrl-C reaches only the parent, which then kills the
child's whole process group; on Linux the child also dies if the parent is killed outright.

`execution.timeout_s` counts from the run's first event (its imports done: the same moment for a warm
and a cold start, RunClock); the driver owns the run's work folder (the child's TMPDIR, where the
worker, torchrun and the libraries put their files) and removes it however the run ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from bench.backends.base import EventHandler, Outcome
from bench.measure.limits import die_with_parent
from bench.plan import RunSpec
from bench.records.store import load_record
from bench.run.events import EVENT_PREFIX

# torch.distributed's launch variables: a run's process decides its own ranks (execution.processes).
# Inherited from a driver that itself runs inside a distributed job (torchrun, Slurm with torchrun, Ray
# Train), they would make a 1-process run believe it is one rank of a larger job (and rank 1 writes no
# record), and divide its threads and memory limit by a LOCAL_WORLD_SIZE that is not its own.
DISTRIBUTED_VARIABLES = (
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "GROUP_WORLD_SIZE",
    "ROLE_RANK",
    "ROLE_NAME",
    "ROLE_WORLD_SIZE",
    "MASTER_ADDR",
    "MASTER_PORT",
)
RUN_STARTUP_S = 300  # before its first event a run's process may take this long to start (imports, busy machine)
POLL_S = 1.0  # how often a waiting backend looks again at its run's deadline (the first event moves it)
T = TypeVar("T")


class RunClock:
    """One run's timeout and duration. `timeout_s` counts from the run's first event (its imports done),
    so a cold start's interpreter start-up counts no more than a warm one's; until that event the
    process may take `startup_s` more. `seconds()`: from its process's start (spawn or fork) to now."""

    def __init__(self, timeout_s: float, startup_s: float = RUN_STARTUP_S) -> None:
        self.timeout_s, self.startup_s = timeout_s, startup_s
        self.spawned = time.monotonic()
        self.began: float | None = None

    def watch(self, on_event: EventHandler) -> EventHandler:
        """`on_event`, noting when the first event came."""

        def seen(event: dict[str, Any]) -> None:
            if self.began is None:
                self.began = time.monotonic()
            on_event(event)

        return seen

    def deadline(self) -> float:
        start = self.began if self.began is not None else self.spawned + self.startup_s
        return start + self.timeout_s

    def wait(self, step: Callable[[float], T | None]) -> T | None:
        """`step(seconds)` (None: not yet) until it answers or the deadline passes (None)."""
        while (left := self.deadline() - time.monotonic()) > 0:
            answer = step(min(left, POLL_S))
            if answer is not None:
                return answer
        return None

    def seconds(self) -> float:
        return time.monotonic() - self.spawned

    def timed_out(self) -> str:
        if self.began is None:
            return (
                f"timed out: no progress {self.startup_s + self.timeout_s:g} s after its process started"
                f" (start-up allowance {self.startup_s:g} s + execution.timeout_s); killed"
            )
        return f"timed out after {self.timeout_s:g} s (execution.timeout_s) from the run's first event; killed"


def oom_kill_count() -> int | None:
    """Processes the kernel's OOM killer has ended in this process's memory cgroup (cgroup v2
    memory.events or v1 memory.oom_control, `oom_kill`), or None where that cannot be read."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            candidates += [f"/sys/fs/cgroup{path}/memory.events", "/sys/fs/cgroup/memory.events"]
        elif "memory" in controllers.split(","):
            candidates += [
                f"/sys/fs/cgroup/memory{path}/memory.oom_control",
                "/sys/fs/cgroup/memory/memory.oom_control",
            ]
    for candidate in candidates:
        try:
            fields = dict(line.split() for line in Path(candidate).read_text().splitlines() if line.count(" ") == 1)
        except (OSError, ValueError):
            continue
        if "oom_kill" in fields:
            return int(fields["oom_kill"])
    return None


def oom_kills_since(before: int | None) -> int | None:
    after = oom_kill_count() if before is not None else None
    return None if after is None or before is None else after - before


def sigkill_cause(oom_kills: int | None) -> str:
    """What a SIGKILL says about memory: the cgroup's OOM-kill count when it is known, else a possibility."""
    if oom_kills is None:
        return "the out-of-memory killer is the usual cause; check `dmesg` or the memory figures"
    if oom_kills > 0:
        return f"out of memory: the kernel's OOM killer ended {oom_kills} process(es) of this cgroup during the run"
    return "not the kernel's OOM killer (this cgroup's oom_kill count did not change): another process sent it"


def run_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """A run's process environment: this process's, less torch.distributed's launch variables, plus `extra`."""
    inherited = {
        name: value
        for name, value in os.environ.items()
        if name not in DISTRIBUTED_VARIABLES and not name.startswith("TORCHELASTIC_")
    }
    return {**inherited, "PYTHONUNBUFFERED": "1", **extra}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def relay(lines: Iterable[str], log: TextIO, on_event: EventHandler) -> None:
    """Events from a worker's stdout go to the progress display; any other output goes to the log."""
    for line in lines:
        if line.startswith(EVENT_PREFIX):
            try:
                on_event(json.loads(line[len(EVENT_PREFIX) :]))
                continue
            except json.JSONDecodeError:
                pass
        log.write(line)
        log.flush()


def kill_group(pid: int) -> None:
    """Kill a run's whole process tree: its process group (the run is its session's leader) and every
    process below it that left the group (torchrun starts each rank of a multi-process run in a
    session of its own, which a kill of the group alone would leave running, orphaned)."""
    descendants = []
    try:
        import psutil

        descendants = psutil.Process(pid).children(recursive=True)  # before the kill re-parents them
    except Exception:  # no such process any more, or psutil missing: the group is all there is to kill
        pass
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for process in descendants:
        try:
            process.kill()  # psutil checks the process is still the one listed (no reused pid is hit)
        except Exception:  # gone already
            pass


def outcome(out_path: Path, return_code: int, log_path: Path, oom_kills: int | None = None) -> Outcome:
    """The worker's record, or why there is none (`oom_kills`: oom_kills_since the run's start)."""
    if out_path.exists():
        return Outcome(load_record(out_path), oom_kills=oom_kills)
    if return_code < 0:
        name = _signal_name(-return_code)
        hint = f": {sigkill_cause(oom_kills)}" if name == "SIGKILL" else ""
        return Outcome(None, f"worker killed by {name}{hint}\n{_tail(log_path)}".strip(), oom_kills=oom_kills)
    failure = f"worker exited with code {return_code} without a result\n{_tail(log_path)}".strip()
    return Outcome(None, failure, oom_kills=oom_kills)


@dataclass
class Exited:
    """A run's process that exited by itself: its exit code, seconds from its start, OOM kills meanwhile."""

    code: int
    seconds: float
    oom_kills: int | None


def start_text(start: str, reason: str | None) -> str:
    """A record's `start`: warm or cold, with why a warm start was not possible (bench/run/recorder.py)."""
    return f"{start} ({reason})" if reason else start


OWNER_FILE = "bench-owner"  # "<host> <pid>" of the process that made a work folder


def work_folder(prefix: str = "bench-run-") -> tempfile.TemporaryDirectory:
    """The run's work folder, owned by the driver: the run's TMPDIR below it goes with it however the run ends.
    What a process killed outright (SIGKILL, a Ray worker shut down) could not remove is removed here, by the
    next run on this host: the folders whose owner is no longer alive."""
    remove_orphans(prefix)
    folder = tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True)
    Path(folder.name, OWNER_FILE).write_text(f"{socket.gethostname()} {os.getpid()} {_pid_namespace()}")
    return folder


def _pid_namespace() -> str:
    """This process's PID namespace (its inode): a pid means one process only within one namespace (containers
    that share /tmp and a host name have their own); "unknown" where it cannot be read."""
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return "unknown"


def remove_orphans(prefix: str = "bench-run-") -> list[Path]:
    """Remove the work folders under the temporary directory whose owner process has ended: one of this host
    and this PID namespace (another's pids cannot be told alive from here: its folders stay)."""
    removed, namespace = [], _pid_namespace()
    for folder in Path(tempfile.gettempdir()).glob(f"{prefix}*"):
        try:
            host, pid, owner_namespace = (folder / OWNER_FILE).read_text().split()
        except (OSError, ValueError):  # not ours, not readable, or made before owners were written
            continue
        ours = host == socket.gethostname() and owner_namespace == namespace != "unknown"
        if ours and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _exit_code(process: subprocess.Popen, seconds: float) -> int | None:
    try:
        return process.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None


class LocalBackend:
    """A fresh interpreter per run: the cold start (about 10 s of imports on 2 cores).

    `why_cold`: when another backend falls back to this one, the reason, recorded in each run's `start`.
    `env`: variables added to each run's environment (the memory limit, bench/measure/limits.py)."""

    def __init__(self, why_cold: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.start_env = {"BENCH_START": "cold", **({"BENCH_COLD_REASON": why_cold} if why_cold else {}), **(env or {})}
        self.start = start_text("cold", why_cold)

    def execute(self, spec: RunSpec, machine: str, timeout_s: float, log_path: Path, on_event: EventHandler) -> Outcome:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with work_folder() as folder:
            spec_path, out_path, scratch = Path(folder, "spec.json"), Path(folder, "result.json"), Path(folder, "tmp")
            spec_path.write_text(spec.model_dump_json())
            scratch.mkdir()
            log_path.write_text("")  # one log per attempt; appended to by the child and the relay
            command = [sys.executable, "-m", "bench.run.worker", str(spec_path), str(out_path), "--machine", machine]
            with open(log_path, "a", encoding="utf-8") as log:
                ended = self._watch(command, scratch, timeout_s, log, on_event)
            if isinstance(ended, Exited):  # its record, or why there is none
                seconds, ended = ended.seconds, outcome(out_path, ended.code, log_path, ended.oom_kills)
                ended.seconds = seconds
            ended.start = self.start
            return ended

    def _watch(
        self, command: list[str], scratch: Path, timeout_s: float, log: TextIO, on_event: EventHandler
    ) -> Outcome | Exited:
        """Start the worker (its TMPDIR: `scratch`) and wait for it to exit, or kill it at its timeout."""
        oom_before = oom_kill_count()
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            env=run_environment({**self.start_env, "TMPDIR": str(scratch)}),
        )
        clock = RunClock(timeout_s)
        reader = threading.Thread(target=relay, args=(process.stdout, log, clock.watch(on_event)), daemon=True)
        reader.start()
        try:
            return_code = clock.wait(lambda seconds: _exit_code(process, seconds))
            if return_code is None:
                self._kill(process)
                return Outcome(None, clock.timed_out(), seconds=clock.seconds(), oom_kills=oom_kills_since(oom_before))
        except BaseException:  # Ctrl-C or a kill of the suite: take the child down with us
            self._kill(process)
            raise
        finally:
            reader.join(timeout=5)
        return Exited(return_code, clock.seconds(), oom_kills_since(oom_before))

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        kill_group(process.pid)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
