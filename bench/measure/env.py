"""The environment a record came from: hardware, package versions, git state. Imports no torch."""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import NamedTuple

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


class GitState(NamedTuple):
    """The harness checkout's commit, whether its code differs from it, and a digest of how; Nones outside git."""

    commit: str | None
    dirty: bool | None  # changed, staged, deleted or untracked (not ignored) files under CODE_PATHSPEC
    commit_time: str | None
    diff_sha256: str | None = None  # None when clean (or outside git): uncommitted_digest


def _git(root: Path, *args: str) -> bytes:
    return subprocess.run(["git", "-C", str(root), *args], capture_output=True, timeout=10, check=True).stdout


def _changed_paths(status: bytes) -> list[str]:
    """Paths of `git status --porcelain -z --no-renames` output (each entry `XY PATH`), sorted."""
    return sorted({entry[3:].decode("utf-8", "surrogateescape") for entry in status.split(b"\0") if entry})


def uncommitted_digest(top: Path, paths: list[str]) -> str:
    """sha256 over each changed or untracked path (relative to the work tree's top) and what it holds now:
    its bytes, a link's target, or that it was deleted. With the commit, it names the code that ran:
    two dirty runs of one commit share it only when their changes are the same. Independent of diff
    settings (renames, context, prefixes), as it reads the files, not a diff."""
    digest = hashlib.sha256()
    for name in paths:
        path, kind, data = top / name, b"gone", b""  # deleted (or a submodule, whose own commit is not read)
        try:
            if path.is_symlink():
                kind, data = b"link", os.readlink(path).encode("utf-8", "surrogateescape")
            elif path.is_file():
                kind, data = (b"exec" if path.stat().st_mode & 0o111 else b"file"), path.read_bytes()
        except OSError:  # removed or unreadable since git listed it
            kind, data = b"gone", b""
        digest.update(b"%s\0%s\0%d\0" % (name.encode("utf-8", "surrogateescape"), kind, len(data)) + data)
    return digest.hexdigest()


def git_state(root: Path = SOURCE_ROOT) -> GitState:
    """GitState of the harness's checkout: untracked files count (a new module the code imports is code),
    ignored ones do not; ~12 ms on this repository (docs/report-and-compare.md)."""
    try:
        commit, commit_time = _git(root, "show", "-s", "--format=%H %cI", "HEAD").decode().split()
        status = _git(
            root, "status", "--porcelain", "-z", "--no-renames", "--untracked-files=all", "--", *CODE_PATHSPEC
        )
        paths = _changed_paths(status)
        top = Path(_git(root, "rev-parse", "--show-toplevel").decode().strip()) if paths else root
        return GitState(commit, bool(paths), commit_time, uncommitted_digest(top, paths) if paths else None)
    except (OSError, subprocess.SubprocessError, ValueError):
        return GitState(None, None, None)


def capture(machine: str | None = None) -> Environment:
    git = git_state()
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
        git_commit=git.commit,
        git_dirty=git.dirty,
        git_commit_time=git.commit_time,
        git_diff_sha256=git.diff_sha256,
        hardware=hardware(),
        omp=allowed_env(),  # an allow-list (bench/records/portable.py): never a token, key or secret
    )
