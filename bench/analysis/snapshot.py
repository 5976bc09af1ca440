"""Result sets from a folder, optionally as committed at a git revision (read-only git commands)."""

from __future__ import annotations

import atexit
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from bench.records.results import RunResult
from bench.records.store import Skipped, load_records, tell_skipped


def git_snapshot(path: Path | str, rev: str) -> Path:
    """Extract `path` as it is at git revision `rev` into a temporary folder (read-only git commands)."""
    path = Path(path).resolve()
    anchor = path if path.is_dir() else next((p for p in path.parents if p.is_dir()), Path.cwd())
    found = subprocess.run(["git", "-C", str(anchor), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if found.returncode != 0:
        raise FileNotFoundError(f"{path} is not inside a git repository: {found.stderr.strip()}")
    top = Path(found.stdout.strip())
    relative = path.relative_to(top).as_posix()
    target = Path(tempfile.mkdtemp(prefix=f"bench-{re.sub(r'[^A-Za-z0-9]+', '-', rev)}-"))
    atexit.register(shutil.rmtree, target, True)
    archive = subprocess.run(
        ["git", "-C", str(top), "archive", "--format=tar", rev, "--", relative], capture_output=True
    )
    if archive.returncode != 0:
        message = archive.stderr.decode(errors="replace").strip()
        raise FileNotFoundError(f"git archive {rev} -- {relative}: {message}")
    with tempfile.TemporaryFile() as stream:
        stream.write(archive.stdout)
        stream.seek(0)
        with tarfile.open(fileobj=stream) as tar:
            tar.extractall(target, filter="data")
    return target / relative


def load_set(path: Path | str, rev: str | None = None, skipped: list[Skipped] | None = None) -> list[RunResult]:
    """Every record below a folder, optionally as committed at a git revision. The files skipped are told on
    stderr, and appended to `skipped` where given (`Skipped.damaged`: a record that could not be read)."""
    root = git_snapshot(path, rev) if rev else Path(path)
    own: list[Skipped] = []
    records = list(load_records(root, own)) if root.exists() else []
    tell_skipped(root, own)
    if skipped is not None:
        skipped.extend(own)
    if not records:
        where = f" at git revision {rev}" if rev else ("" if root.exists() else ": no such folder")
        raise FileNotFoundError(f"no result records under {root}{where}")
    return records
