"""Isolation and resume: failures become records, the suite goes on, and an interrupted suite resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.records.store import load_records
from tests.conftest import REPO, bench_cli, fast_suite, write_suite

FAULTS = '''
import os, signal, time
from typing import ClassVar
from bench.strategies import STRATEGIES, NotApplicable
from bench.strategies.base import StrategyOptions

class Options(StrategyOptions):
    mode: str = "raise"

class Faulty:
    """Fails on purpose, in the way its `mode` names."""
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model, options, context):
        if options.mode == "raise":
            raise RuntimeError("planted failure in prepare")
        if options.mode == "hang":
            time.sleep(3600)
        if options.mode == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise NotApplicable("planted: does not apply to this model")

    def save(self, model, directory):
        pass

STRATEGIES.add("faulty", Faulty())
'''


def test_failures_become_records_and_the_suite_goes_on(tmp_path: Path):
    (tmp_path / "bench_faults.py").write_text(FAULTS)
    strategies = [
        {"faulty": {"mode": "raise", "label": "raises"}},
        {"faulty": {"mode": "hang", "label": "hangs"}},
        {"faulty": {"mode": "kill", "label": "killed"}},
        {"faulty": {"mode": "skip", "label": "skips"}},
        "full",
    ]
    suite = write_suite(
        tmp_path, fast_suite("faults", strategies, plugins=["bench_faults"], execution={"timeout_s": 12})
    )
    done = bench_cli(
        "run", str(suite), "--results", str(tmp_path / "results"), "--quiet", env={"PYTHONPATH": str(tmp_path)}
    )
    assert done.returncode == 1, done.stderr  # failed runs make the exit non-zero
    assert "failed raises seed=0: RuntimeError: planted failure in prepare" in done.stderr  # --quiet: still said
    assert "3 failed" in done.stderr and "step " not in done.stderr  # the summary; no progress
    records = {r.label: r for r in load_records(tmp_path / "results")}
    assert set(records) == {"raises", "hangs", "killed", "skips", "full"}
    assert records["raises"].status == "failed" and "planted failure in prepare" in records["raises"].reason
    assert records["hangs"].status == "failed" and records["hangs"].reason.startswith("timed out after 12 s")
    assert records["killed"].status == "failed" and "SIGKILL" in records["killed"].reason
    assert records["skips"].status == "skipped" and records["skips"].reason == "planted: does not apply to this model"
    assert records["full"].status == "ok" and records["full"].metrics["train.steps_per_s"].value > 0


def _as_a_terminal_starts_it() -> None:
    """SIGINT at its default, as for a command in a terminal's foreground. A test runner started in the
    background of a shell script inherits SIGINT ignored, and Python (so `bench run`) keeps it ignored,
    as Unix programs should: Ctrl-C at the terminal is not meant for background jobs."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_suite(suite: Path, results: Path) -> subprocess.Popen:
    """`bench run` in the background; its output goes to files (a pipe nobody reads could block it)."""
    output = results.parent / "bench-run.out"
    with open(output, "w") as stream:
        return subprocess.Popen(
            [sys.executable, "-m", "bench.cli", "run", str(suite), "--results", str(results), "--quiet"],
            cwd=REPO,
            stdout=stream,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_as_a_terminal_starts_it,
        )


def _wait_for_records(results: Path, count: int, process: subprocess.Popen, timeout: float = 300) -> list[Path]:
    deadline = time.monotonic() + timeout
    while len(found := sorted(results.rglob("*.json"))) < count:
        if process.poll() is not None or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    else:
        return found
    output = (results.parent / "bench-run.out").read_text()[-3000:]
    raise AssertionError(f"fewer than {count} records (exit {process.poll()}); bench run said:\n{output}")


def _interrupted_then_resumed(tmp_path: Path, interrupt: signal.Signals) -> tuple[int, list[str], dict]:
    suite = write_suite(tmp_path, fast_suite("resume", ["full"], seeds=[0, 1, 2]))
    results = tmp_path / "results"
    process = _start_suite(suite, results)
    first = _wait_for_records(results, 1, process)[0]
    first_text = first.read_text()
    os.kill(process.pid, interrupt)
    code = process.wait(timeout=60)
    stored_after_interrupt = len(list(results.rglob("*.json")))
    assert 1 <= stored_after_interrupt < 3
    json.loads(first_text)  # what was stored is whole
    resumed = bench_cli("run", str(suite), "--results", str(results))
    assert resumed.returncode == 0, resumed.stderr
    assert "reused" in resumed.stderr
    records = list(load_records(results))
    assert first.read_text() == first_text  # the stored record was reused, not rerun
    assert len({r.session for r in records}) == 2  # each invocation stamps its own session on what it stored
    return code, [f"{r.label}/{r.seed}" for r in records], {r.seed: r.status for r in records}


def test_ctrl_c_keeps_finished_records_and_the_rerun_resumes(tmp_path: Path):
    code, runs, statuses = _interrupted_then_resumed(tmp_path, signal.SIGINT)
    assert code == 130
    assert sorted(runs) == ["full/0", "full/1", "full/2"]  # none lost, none duplicated
    assert statuses == {0: "ok", 1: "ok", 2: "ok"}


def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path):
    code, runs, statuses = _interrupted_then_resumed(tmp_path, signal.SIGTERM)
    assert code == 143  # 128 + SIGTERM, as a shell reports a terminated job (Ctrl-C: 130)
    assert sorted(runs) == ["full/0", "full/1", "full/2"]
    assert statuses == {0: "ok", 1: "ok", 2: "ok"}


def test_a_killed_suite_resumes_without_loss_or_duplicates(tmp_path: Path):
    code, runs, statuses = _interrupted_then_resumed(tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert sorted(runs) == ["full/0", "full/1", "full/2"]
    assert statuses == {0: "ok", 1: "ok", 2: "ok"}
