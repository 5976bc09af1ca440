"""The warm server behind the `warm` backend: imports the training stack once, then forks one child
per run. Usage (by bench/backends/warm.py only): python -m bench.backends.zygote

Protocol, one JSON object per line: requests on stdin ({"spec", "out", "machine", "log", "events", "tmp"}),
replies on stdout: {"ready": seconds} once, then per request {"pid": n, "start": how} and later {"exit": code},
or {"unsafe": reason} when forking is not safe (the backend then starts a fresh process).

Nothing that forking would share badly is set up here: no CUDA context, no OpenMP thread pool (torch
is imported, never run), no lm-eval task index, no tokenizer threads. Each child starts its own
session, so a crash, leak or hang in one run cannot touch the server or the next run.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import signal
import sys
import tempfile
import time
import traceback

from bench.measure.limits import apply_memory_limit, die_with_parent

# Modules every run imports; about 10 s of a fresh interpreter's start on 2 cores (docs/performance.md)
PRELOAD = (
    "torch",
    "transformers",
    "datasets",
    "lm_eval",
    "lm_eval.evaluator",
    "lm_eval.models.huggingface",
)
# Imported next, except where a GPU is visible: peft imports bitsandbytes, which reads every GPU's
# compute capability at import (bitsandbytes/cuda_specs.py) and so initialises CUDA, and a child
# forked after that cannot use CUDA. There each run imports these itself (about 2.5 s on 2 cores).
PRELOAD_UNLESS_GPU = (
    "peft",
    "trl",
    "bench.run.worker",
    "bench.training.train",
    "bench.training.sft",
    "bench.strategies",
    "bench.tasks",
    "bench.models.load",
    "bench.evaluate.accuracy",
)
PARTIAL = "warm (peft, trl and bitsandbytes imported in the run: on a GPU machine their import initialises CUDA)"


def gpu_visible() -> bool:
    import torch

    return torch.cuda.is_available()  # NVML-based here (main), so CUDA stays uninitialised


def preload() -> None:
    """The server's imports: all of them, or on a machine with a visible GPU those that leave CUDA
    uninitialised (tests/test_warm_gpu_imports.py traps CUDA's initialisation to check it on a CPU)."""
    # torch's availability check through NVML, which does not initialise CUDA (and so keeps forking safe)
    os.environ.setdefault("PYTORCH_NVML_BASED_CUDA_CHECK", "1")
    for name in PRELOAD:
        importlib.import_module(name)
    if not gpu_visible():
        for name in PRELOAD_UNLESS_GPU:
            importlib.import_module(name)


def unsafe_reason() -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        return "CUDA was initialised in the warm server"
    return None


def start_kind() -> str:
    """What a run forked now records as its `start`."""
    return "warm" if "peft" in sys.modules else PARTIAL


def _reply(message: dict) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _child(request: dict) -> None:
    """Runs in the forked child: becomes the run's process, then exits without returning."""
    code = 1
    try:
        os.setsid()
        die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        if request.get("tmp"):  # the run's TMPDIR, in a folder the driver removes however the run ends
            os.environ["TMPDIR"] = tempfile.tempdir = request["tmp"]
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644), 2)
        os.dup2(os.open(request["events"], os.O_WRONLY), 1)
        os.environ["BENCH_START"] = start_kind()
        from bench.run import worker

        arguments = [request["spec"], request["out"], "--machine", request["machine"]]
        sys.argv = ["bench.run.worker", *arguments]  # as a cold worker sees it (tools that read argv)
        code = worker.main(arguments)
    except BaseException:  # the child must never return into the server's loop
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> int:
    die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; Ctrl-C reaches it and it kills runs
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # so does a closing terminal: the parent ends this server
    started = time.perf_counter()
    # Under the run's memory limit from the start, as a cold worker imports under it: what the imports
    # reserve then adapts to the limit (pyarrow's mimalloc reserves 1 GiB without one, 0.15 GiB under
    # it), and the children, which inherit these mappings, keep the headroom a cold run has
    apply_memory_limit()
    preload()
    gc.freeze()  # the imported stack is permanent: children neither scan it in collections nor copy it
    _reply({"ready": round(time.perf_counter() - started, 3)})
    for line in sys.stdin:
        request = json.loads(line)
        reason = unsafe_reason()
        if reason:
            _reply({"unsafe": reason})
            continue
        pid = os.fork()
        if pid == 0:
            _child(request)
        _reply({"pid": pid, "start": start_kind()})
        _, status = os.waitpid(pid, 0)
        _reply({"exit": os.waitstatus_to_exitcode(status)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
