"""Several processes per run (suite field `execution.processes`), launched by torchrun.

A run's worker process, asked for N > 1 processes, launches `torch.distributed.run` (torchrun)
with N copies of itself and waits; every backend and executor therefore gets multi-process runs
without knowing about them. Under torchrun each rank trains its share of the global batch through
the same training path (transformers' Trainer wraps the model in DistributedDataParallel: gloo on
CPU, nccl on CUDA); rank 0 gathers every rank's memory, evaluates, measures latency and writes
the record; the other ranks write nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from typing import Any

from bench.measure.limits import die_with_parent


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched() -> bool:
    """True inside a process torchrun started."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def launch(processes: int, worker_argv: list[str]) -> int:
    """Run `python -m bench.run.worker <worker_argv>` as `processes` ranks on this machine; the exit code.

    Standalone rendezvous (a free local port), so several runs never collide. stdout (progress
    events, printed by rank 0 only) and stderr go where this process's go. torchrun's log folder is
    ours, removed when it ends (under TMPDIR, which the driver removes should this process be killed).
    """
    with tempfile.TemporaryDirectory(prefix="torchrun-", ignore_cleanup_errors=True) as logs:
        return _torchrun(processes, worker_argv, logs)


def _torchrun(processes: int, worker_argv: list[str], logs: str) -> int:
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={processes}",
        f"--log-dir={logs}",
        "-m",
        "bench.run.worker",
        *worker_argv,
    ]
    # one OpenMP thread per rank unless the suite says otherwise; torchrun would print a warning
    environment = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    bound = die_with_parent if sys.platform.startswith("linux") else None  # torchrun dies with this process
    return subprocess.run(command, env=environment, check=False, preexec_fn=bound).returncode


def follow_launcher() -> None:
    """In a rank torchrun started: die with torchrun (and so with the run's process). A rank whose
    launcher already ended before this took effect ends at once."""
    if not (launched() and sys.platform.startswith("linux")):
        return
    parent = os.getppid()  # torchrun, or init if torchrun has died already
    die_with_parent()
    if parent == 1 or os.getppid() != parent:
        os._exit(1)


def device_for_rank(device: str) -> str:
    """Each rank on its own GPU (LOCAL_RANK); CPU ranks share the CPU."""
    if device == "cuda" and launched():
        return f"cuda:{os.environ.get('LOCAL_RANK', '0')}"
    return device


def gather(value: Any) -> list[Any]:
    """Every rank's `value`, in rank order (just [value] when not distributed)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return [value]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, value)
    return gathered
