"""A run's memory limit (suite field `execution.resources.memory_gib`), enforced in the run's own process.

The backend that starts a run's process puts the limit in that process's environment
(`BENCH_MEMORY_LIMIT_BYTES`, see `child_env`); the worker calls `apply_memory_limit()` first, which
sets it with `resource.setrlimit`. An allocation past it then fails inside the run (Python's
`MemoryError`, torch's "can't allocate memory", C++'s `std::bad_alloc`), the run becomes a `failed`
record, and the driver names the cause with `out_of_memory_reason`.

Which limit: RLIMIT_DATA, not RLIMIT_AS. Since Linux 4.7 RLIMIT_DATA counts every private writable
mapping (the heap, anonymous mmaps: what tensors and Python objects take), which is what "the run's
memory" means. RLIMIT_AS counts address space that is only reserved, never used: glibc reserves
64 MiB per malloc arena (up to 8 per core), each thread 8 MiB of stack, and CUDA reserves tens of GiB
at initialisation, so an address-space limit fails CUDA runs at start and, on a many-core machine,
CPU runs far below their real use. Both are per process: with several processes per run (torchrun),
each rank gets an equal share (`LOCAL_WORLD_SIZE`).
"""

from __future__ import annotations

import os
import re
import resource
import signal
from collections.abc import Mapping

MEMORY_LIMIT_VARIABLE = "BENCH_MEMORY_LIMIT_BYTES"
LIMITED = resource.RLIMIT_DATA
GIB = 2**30

# What a failed allocation leaves in a traceback or a log tail, checked in this order (torch's and Ray's
# OutOfMemoryError contain "MemoryError"): the GPU's memory, Ray's OOM killer (the node ran low), then
# what a limit on the process's own memory shows: Python, torch's CPU allocator, C++ (an uncaught
# std::bad_alloc aborts the process after printing it), and, under a limit, a thread that got no stack.
GPU_SIGNS = ("CUDA out of memory",)
NODE_SIGNS = ("OutOfMemoryError",)
PROCESS_SIGNS = (
    "MemoryError",
    "std::bad_alloc",
    "can't allocate memory",
    "Cannot allocate memory",
)
# Rust's allocator (tokenizers, safetensors) prints this, then aborts the process (SIGABRT)
RUST_ALLOCATION = re.compile(r"memory allocation of \d+ bytes failed")
# torchrun's summary of a rank the kernel killed (torch.distributed.elastic's ProcessFailure message)
RANK_KILLED = re.compile(r"Signal 9 \(SIGKILL\) received by PID \d+")
UNDER_LIMIT_SIGNS = ("can't start new thread", "pthread_create failed")


def limit_bytes(memory_gib: float | None) -> int | None:
    return None if memory_gib is None else max(1, int(memory_gib * GIB))


# Under a limit, what is only reserved must stay small: RLIMIT_DATA counts private writable mappings
# whether touched or not, and pyarrow's allocator (mimalloc, on `import datasets`) reserves a 1 GiB
# arena when the limit leaves room for it (counted after `import datasets`: 1.34 GiB with it, 0.25 without).
# 64 MiB arenas leave the limit to what the run uses; a value the user set is kept.
SMALL_RESERVATIONS = {"MIMALLOC_ARENA_RESERVE": "64MiB"}


def child_env(memory_gib: float | None) -> dict[str, str]:
    """The environment variables a backend adds to a run's process (none without a limit)."""
    limit = limit_bytes(memory_gib)
    if limit is None:
        return {}
    kept = {name: os.environ.get(name, value) for name, value in SMALL_RESERVATIONS.items()}
    return {MEMORY_LIMIT_VARIABLE: str(limit), **kept}


def apply_memory_limit(environ: Mapping[str, str] = os.environ) -> int | None:
    """Set this process's memory limit from its environment; the bytes set, or None without a limit.

    Call it first in the run's process, before the run allocates anything large. Lowering a limit is
    always allowed, so calling it again (a torchrun rank after its launcher) only narrows it."""
    raw = environ.get(MEMORY_LIMIT_VARIABLE)
    if not raw:
        return None
    limit = int(raw) // max(1, int(environ.get("LOCAL_WORLD_SIZE", "1")))
    soft, hard = resource.getrlimit(LIMITED)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft != resource.RLIM_INFINITY:
        limit = min(limit, soft)
    resource.setrlimit(LIMITED, (limit, hard))
    return limit


def _gib(limit: int) -> str:
    return f"{limit / GIB:.3g} GiB"


def out_of_memory_reason(failure: BaseException | str | int | None, limit: int | None = None) -> str | None:
    """One line naming out-of-memory when `failure` shows it, else None.

    `failure`: the exception a run raised (MemoryError, a RuntimeError naming std::bad_alloc or
    "can't allocate memory"), a failure text (a traceback, a reason with a log tail), or a child's
    return code (-9: killed by SIGKILL, which is how the kernel's and Ray's OOM killers end a process).
    `limit`: the run's limit in bytes (execution.resources.memory_gib), named in the line when set."""
    if isinstance(failure, BaseException):
        failure = f"{type(failure).__name__}: {failure}"
    elif isinstance(failure, int):
        failure = "killed by SIGKILL" if failure == -signal.SIGKILL else None
    if not failure:
        return None
    limit_note = f"; the run's memory limit was {_gib(limit)}" if limit else ""
    if any(sign in failure for sign in GPU_SIGNS):
        return "out of memory on the GPU (CUDA out of memory)"
    if any(sign in failure for sign in NODE_SIGNS):
        return f"out of memory: the node ran low and an OOM killer ended the run (OutOfMemoryError){limit_note}"
    sign = next((s for s in PROCESS_SIGNS + (UNDER_LIMIT_SIGNS if limit else ()) if s in failure), None)
    rust = RUST_ALLOCATION.search(failure)
    sign = sign or (rust.group(0) if rust else None)
    if sign is not None and limit:
        return (
            f"out of memory: the run exceeded its memory limit of {_gib(limit)}"
            f" (execution.resources.memory_gib, set with setrlimit): {sign}"
        )
    if sign is not None:
        return f"out of memory: {sign}"
    if "killed by SIGKILL" in failure:
        return f"likely out of memory: killed by SIGKILL, as an OOM killer ends a process{limit_note}"
    if RANK_KILLED.search(failure):  # one rank of a multi-process run: torchrun itself exits 1
        return f"likely out of memory: a rank was killed by SIGKILL, as an OOM killer ends a process{limit_note}"
    return None


def die_with_parent() -> None:
    """Linux: be killed when the parent process ends, however it ends (PR_SET_PDEATHSIG). The warm server,
    each run's process, torchrun and each rank it starts (in a session of its own) call it, so that a run
    killed for its timeout, or a suite killed outright, leaves no process behind."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
