"""Each run in its own process, forked from a warm server that imported the training stack once
(bench/backends/zygote.py): isolation as with `local`, without ~10 s of imports per run.

The server starts with the first run and ends with the suite. A run's child is in its own session;
on a timeout or Ctrl-C its whole process group is killed, as with `local`. Where forking is not
possible or not safe (no fork on this platform, the server died, or CUDA was initialised in it), the
run starts a fresh process instead, and its record says so (`start`).
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from bench.backends.base import EventHandler, Outcome
from bench.backends.local import (
    LocalBackend,
    RunClock,
    _signal_name,
    kill_group,
    oom_kill_count,
    oom_kills_since,
    outcome,
    relay,
    run_environment,
    work_folder,
)
from bench.measure.limits import die_with_parent
from bench.plan import RunSpec

START_TIMEOUT_S = 300  # importing the stack on a slow, busy machine
MAX_RESTARTS = 2  # a server that died (the kernel's OOM killer, a signal) is started again this often per suite


class WarmBackend:
    """`env`: variables added to each run's environment (the memory limit, bench/measure/limits.py); the
    server gets them and its forked children inherit them (the server itself does not apply the limit)."""

    server_command: tuple[str, ...] = ("-m", "bench.backends.zygote")  # after the interpreter (tests swap it)

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        self.env = dict(env or {})
        self.server: subprocess.Popen | None = None
        self.replies: queue.Queue[dict[str, Any]] = queue.Queue()  # the current server's; a new one per server
        self.restarts = 0
        self.cold_reason: str | None = None if hasattr(os, "fork") else "this platform cannot fork"

    def execute(self, spec: RunSpec, machine: str, timeout_s: float, log_path: Path, on_event: EventHandler) -> Outcome:
        if self.cold_reason is None:
            self._start()  # before the run's clock: a server's start-up is no part of the run
        if self.cold_reason is not None:
            return self._cold(spec, machine, timeout_s, log_path, on_event, self.cold_reason)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text("")
        with work_folder() as folder:
            spec_path, out_path, events = Path(folder, "spec.json"), Path(folder, "result.json"), Path(folder, "events")
            spec_path.write_text(spec.model_dump_json())
            Path(folder, "tmp").mkdir()  # the run's TMPDIR: removed with the folder however the run ends
            os.mkfifo(events)
            request = {"spec": str(spec_path), "out": str(out_path), "machine": machine, "log": str(log_path)}
            oom_before = oom_kill_count()
            self._send(request | {"events": str(events), "tmp": str(Path(folder, "tmp"))})
            reply = self._reply(60)
            if reply is None or "pid" not in reply:  # no answer, the server ended, or forking is unsafe
                if (reply or {}).get("unsafe"):
                    self._stop(reply["unsafe"])  # for the rest of the suite
                reason = (reply or {}).get("unsafe") or self._drop("the warm server stopped answering")
                return self._cold(spec, machine, timeout_s, log_path, on_event, reason)
            start, clock = reply.get("start", "warm"), RunClock(timeout_s)
            with open(log_path, "a", encoding="utf-8") as log:
                ended = self._follow(reply["pid"], clock, events, log, on_event)
            oom_kills = oom_kills_since(oom_before)
            if isinstance(ended, str):  # killed: timed out, or its server died
                return Outcome(None, ended, start=start, seconds=clock.seconds(), oom_kills=oom_kills)
            result = outcome(out_path, ended, log_path, oom_kills)
            result.start, result.seconds = start, clock.seconds()
            return result

    def _follow(self, pid: int, clock: RunClock, events: Path, log: TextIO, on_event: EventHandler) -> int | str:
        """Wait for the forked run `pid` to end: its exit code, or why it was killed (a timeout, the server died)."""
        reader = threading.Thread(target=self._relay_fifo, args=(events, log, clock.watch(on_event)), daemon=True)
        reader.start()
        try:
            ended = clock.wait(self._reply)
            if ended is None:
                kill_group(pid)
                if "exit" not in (self._reply(15) or {}):  # the server reaps the killed child and says so
                    self._drop("the warm server did not reap a killed run")  # the next run gets a new one
                return clock.timed_out()
            if ended.get("ended"):  # the server itself died: the run's child dies with it
                kill_group(pid)
                how = self._drop("the warm server died")
                return f"{how} during this run; the next run starts a new one"
            return ended.get("exit", 1)
        except BaseException:  # Ctrl-C or a kill of the suite: take the run down with us
            kill_group(pid)
            raise
        finally:
            self._unblock(events)
            reader.join(timeout=5)

    # -- the server -------------------------------------------------------------------------------

    def _start(self) -> None:
        if self.server is not None and self.server.poll() is None:
            return
        if self.server is not None:  # it died (during a run or between runs): a new one, within reason
            if self.restarts >= MAX_RESTARTS:
                self._stop(f"the warm server died {self.restarts + 1} times in this suite")
                return
            self.restarts += 1
        self.replies = queue.Queue()  # nothing the dead server said reaches the new one's runs
        self.server = subprocess.Popen(
            [sys.executable, *self.server_command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
            env=run_environment(self.env),
        )
        threading.Thread(target=self._read_replies, args=(self.server, self.replies), daemon=True).start()
        if "ready" not in (self._reply(START_TIMEOUT_S) or {}):
            self._stop("the warm server did not start")

    @staticmethod
    def _read_replies(server: subprocess.Popen, replies: queue.Queue) -> None:
        for line in server.stdout:
            replies.put(json.loads(line))
        replies.put({"ended": True})

    def _send(self, request: dict[str, Any]) -> None:
        try:
            self.server.stdin.write(json.dumps(request) + "\n")
            self.server.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the reply times out or reads None; the run then starts cold

    def _reply(self, timeout: float) -> dict[str, Any] | None:
        try:
            return self.replies.get(timeout=timeout)
        except queue.Empty:
            return None

    def _stop(self, reason: str) -> None:
        """No warm starts for the rest of the suite (forking is unsafe, the server cannot start)."""
        self.cold_reason = reason
        if self.server is not None and self.server.poll() is None:
            self.server.kill()

    def _drop(self, reason: str) -> str:
        """End this server (the next run starts a new one); `reason` with how it ended, if it died."""
        assert self.server is not None
        if self.server.poll() is None:
            self.server.kill()
        try:
            code = self.server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            return reason
        if code < 0 and "died" in reason:
            return f"{reason} (killed by {_signal_name(-code)})"
        return f"{reason} (exit code {code})" if "died" in reason else reason

    def close(self) -> None:
        """End the server: its input closes and it exits; killed if it has not within 10 s."""
        if self.server is None or self.server.poll() is not None:
            return
        try:
            self.server.stdin.close()
            self.server.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.server.kill()

    # -- one run ----------------------------------------------------------------------------------

    @staticmethod
    def _relay_fifo(events: Path, log: TextIO, on_event: EventHandler) -> None:
        with open(events, encoding="utf-8") as lines:  # blocks until the child opens its end
            relay(lines, log, on_event)

    @staticmethod
    def _unblock(events: Path) -> None:
        """If the child died before opening its end of the FIFO, the reader still waits: open and close
        a writer so that it sees the end."""
        try:
            os.close(os.open(events, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass  # no reader waiting (the usual case: it saw the child's end)

    def _cold(self, spec, machine, timeout_s, log_path, on_event, reason: str) -> Outcome:
        return LocalBackend(why_cold=reason, env=self.env).execute(spec, machine, timeout_s, log_path, on_event)
