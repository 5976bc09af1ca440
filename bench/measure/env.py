"""The environment a record came from: hardware, package versions, git state. Imports no torch."""

from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from bench.records.portable import allowed_env
from bench.records.results import Environment, Hardware

PACKAGES = (
    "bench",
    "torch",
    "transformers",
    "peft",
    "trl",
    "bitsandbytes",
    "lm_eval",
    "datasets",
    "accelerate",
    "tokenizers",
    "numpy",
    "pandas",
    "pydantic",
    "jinja2",
)
SOURCE_ROOT = Path(__file__).resolve().parents[2]


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def gpu_names() -> tuple[str, ...]:
    torch = sys.modules.get("torch")
    if torch is not None:
        if torch.cuda.is_available():
            return tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return ()
    if shutil.which("nvidia-smi"):
        try:
            output = subprocess.run(
                ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                capture_output=True,
                text=True,
                timeout=20,
                check=True,
            ).stdout
            return tuple(line.strip() for line in output.splitlines() if line.strip())
        except (OSError, subprocess.SubprocessError):
            return ()
    return ()


# SIMD extensions that decide which kernels torch and bitsandbytes run (and so the floating-point order).
ISA_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "avx512_fp16", "amx_tile", "asimd", "sve")


def cpu_flags() -> list[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                present = set(line.split(":", 1)[1].split())
                return [flag for flag in ISA_FLAGS if flag in present]
    except OSError:
        pass
    return []


def available_cores() -> int:
    """CPUs this process may run on (its affinity mask), which containers and taskset can narrow."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Below this size intra-op threads buy nothing on CPU and cost much beside a neighbour. Measured on
# tiny-llama (88k parameters) full SFT, 2-core AMD EPYC: 2 threads 8,442 tokens/s, 1 thread 8,280;
# with one busy neighbouring process 2 threads fell to 2,617 (3.2x slower), 1 thread held 8,746.
SINGLE_THREAD_BELOW_PARAMETERS = 10_000_000


def default_threads(parameters: int) -> int:
    """torch threads when the suite leaves `execution.threads` unset (docs/statistics.md); with
    several processes on this machine (torchrun), each takes its share of the cores."""
    if parameters < SINGLE_THREAD_BELOW_PARAMETERS:
        return 1
    return max(1, available_cores() // int(os.environ.get("LOCAL_WORLD_SIZE", "1")))


def hardware(torch_threads: int | None = None) -> Hardware:
    torch = sys.modules.get("torch")
    threads = torch_threads or (torch.get_num_threads() if torch else None)
    capability = torch.backends.cpu.get_cpu_capability() if torch else None
    return Hardware(
        cpu=cpu_name(),
        cores=available_cores(),
        isa=cpu_flags(),
        gpus=list(gpu_names()),
        torch_threads=threads,
        cpu_capability=capability,
    )


def machine_id() -> str:
    """Results are stored per machine kind: architecture, core count and GPUs (not the hostname)."""
    gpus = gpu_names()
    accelerator = f"{len(gpus)}x-{_slug(gpus[0])}" if gpus else "cpu"
    return f"{platform.machine()}-{os.cpu_count()}c-{accelerator}"


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


# What "dirty" is about: the code. Results and reports are the harness's own output (a run rewrites
# reports/<suite>.html, an experiment appends to its summary), so changes there do not make a record dirty.
CODE_PATHSPEC = (".", ":(exclude)results", ":(exclude)reports")


def git_state(root: Path = SOURCE_ROOT) -> tuple[str | None, bool | None, str | None]:
    """(commit, dirty, committer date) of the harness's checkout; Nones outside git."""
    try:
        commit, commit_time = subprocess.run(
            ["git", "-C", str(root), "show", "-s", "--format=%H %cI", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split()
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", *CODE_PATHSPEC],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError, ValueError):
        return None, None, None
    return commit, bool(status.strip()), commit_time


def capture(machine: str | None = None) -> Environment:
    commit, dirty, commit_time = git_state()
    torch = sys.modules.get("torch")
    return Environment(
        machine=machine or machine_id(),
        hostname=socket.gethostname(),
        platform=platform.platform(),
        python=platform.python_version(),
        cpu=cpu_name(),
        cpu_count=os.cpu_count() or 0,
        gpus=list(gpu_names()),
        cuda=getattr(getattr(torch, "version", None), "cuda", None) if torch else None,
        torch_threads=torch.get_num_threads() if torch else None,
        packages=package_versions(),
        git_commit=commit,
        git_dirty=dirty,
        git_commit_time=commit_time,
        hardware=hardware(),
        omp=allowed_env(),  # an allow-list (bench/records/portable.py): never a token, key or secret
    )
