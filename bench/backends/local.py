"""Run each RunSpec in a fresh Python process on this machine, with a timeout.

The child runs in its own session so that a Ctrl-C reaches only the parent, which then kills the
child's whole process group; on Linux the child also dies if the parent is killed outright.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TextIO

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


def outcome(out_path: Path, return_code: int, log_path: Path) -> Outcome:
    """The worker's record, or why there is none."""
    if out_path.exists():
        return Outcome(load_record(out_path))
    if return_code < 0:
        name = _signal_name(-return_code)
        hint = " (likely out of memory)" if name == "SIGKILL" else ""
        return Outcome(None, f"worker killed by {name}{hint}\n{_tail(log_path)}".strip())
    return Outcome(None, f"worker exited with code {return_code} without a result\n{_tail(log_path)}".strip())


class LocalBackend:
    """A fresh interpreter per run: the cold start (about 10 s of imports on 2 cores).

    `why_cold`: when another backend falls back to this one, the reason, recorded in each run's `start`.
    `env`: variables added to each run's environment (the memory limit, bench/measure/limits.py)."""

    def __init__(self, why_cold: str | None = None, env: Mapping[str, str] | None = None) -> None:
        self.start_env = {"BENCH_START": "cold", **({"BENCH_COLD_REASON": why_cold} if why_cold else {}), **(env or {})}

    def execute(self, spec: RunSpec, machine: str, timeout_s: float, log_path: Path, on_event: EventHandler) -> Outcome:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="bench-run-") as folder:
            spec_path, out_path = Path(folder, "spec.json"), Path(folder, "result.json")
            spec_path.write_text(spec.model_dump_json())
            log_path.write_text("")  # one log per attempt; appended to by the child and the relay
            with open(log_path, "a", encoding="utf-8") as log:
                process = subprocess.Popen(
                    [sys.executable, "-m", "bench.run.worker", str(spec_path), str(out_path), "--machine", machine],
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                    start_new_session=True,
                    preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
                    env=run_environment(self.start_env),
                )
                reader = threading.Thread(target=relay, args=(process.stdout, log, on_event), daemon=True)
                reader.start()
                try:
                    return_code = process.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    self._kill(process)
                    return Outcome(None, f"timed out after {timeout_s:g} s (execution.timeout_s); killed")
                except BaseException:  # Ctrl-C or a kill of the suite: take the child down with us
                    self._kill(process)
                    raise
                finally:
                    reader.join(timeout=5)
            return outcome(out_path, return_code, log_path)

    @staticmethod
    def _kill(process: subprocess.Popen) -> None:
        kill_group(process.pid)
        deadline = time.monotonic() + 10
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
