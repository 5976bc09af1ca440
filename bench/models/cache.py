"""Where built and converted models live on this machine, how a build is serialised across
processes, and how weights are identified (sha256). Imported by tiny.py and load.py alike."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from bench.records.store import atomic_write_text


def cache_root() -> Path:
    """`BENCH_CACHE_DIR` if set, else ~/.cache/fine-tune-bench."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "fine-tune-bench").expanduser()


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


# files at least this large keep their sha256 beside the cache (`sha256/`), keyed on what `stat` says of
# them: a 13 GB model's weights took ~30 s to hash on every `bench run` and in every run of it
REMEMBERED_FROM_BYTES = 64 << 20


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    """The file's sha256. A large one is hashed once per version of it: the digest is remembered under the
    cache, keyed on its resolved path, size, modification time (ns) and inode, as git's index trusts stat;
    a file rewritten in place keeping all four (a deliberate `touch -d` to its old time) is not noticed."""
    info = path.stat()
    memo = None
    if info.st_size >= REMEMBERED_FROM_BYTES:
        key = f"{path.resolve()}\0{info.st_size}\0{info.st_mtime_ns}\0{info.st_ino}"
        memo = cache_root() / "sha256" / f"{hashlib.sha256(key.encode()).hexdigest()}.txt"
        remembered = memo.read_text().strip() if memo.is_file() else ""
        if len(remembered) == 64 and all(c in "0123456789abcdef" for c in remembered):
            return remembered
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(chunk):
            digest.update(block)
    found = digest.hexdigest()
    if memo is not None:
        with contextlib.suppress(OSError):  # a read-only cache only costs the next hash
            atomic_write_text(memo, found + "\n")
    return found
