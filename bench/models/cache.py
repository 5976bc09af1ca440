"""Where built and converted models live on this machine, how a build is serialised across
processes, and how weights are identified (sha256). Imported by tiny.py and load.py alike."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """`BENCH_CACHE_DIR` if set, else ~/.cache/fine-tune-bench."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "fine-tune-bench")


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing): one process builds, the others wait."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    return digest.hexdigest()
