"""What the data files a run reads held when it ran: one sha256 per file (or dataset folder) the spec
names, and of the module of a strategy a plugin defines, kept in the record as `model["data_sha256"]`.
A run id hashes the spec, and so a file's path but not its contents: a stored run is reused only while
these digests still match (bench/execute.py), and an edited file (or plugin) runs its runs again.

Keys are roles ("task:NAME", "retain:NAME", "preference", "plugin:MODULE"), never paths, so a record stays
free of the author's folders (bench/records/portable.py)."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path
from typing import Any, Protocol

from bench.spec import PreferenceSpec, TaskSpec

DIGEST_KEY = "data_sha256"
MISSING = "missing"  # a file named by the spec that is not there (the run then fails and says why)
CHUNK = 1 << 20


class ReadsData(Protocol):
    """What names a run's data: a RunSpec (bench/plan.py), which this folder does not import."""

    strategy: str
    task: TaskSpec
    retain: list[TaskSpec]
    preference: PreferenceSpec | None


def data_files(spec: ReadsData) -> dict[str, str]:
    """Role -> path of every data file or folder the run reads (tasks from jsonl or dataset files, and
    preference pairs from a file); synthetic and packaged tasks have none."""
    files = {}
    for role, task in [(f"task:{spec.task.name}", spec.task), *((f"retain:{t.name}", t) for t in spec.retain)]:
        if task.source in ("jsonl", "dataset") and task.path:
            files[role] = task.path
    if spec.preference is not None and spec.preference.jsonl:
        files["preference"] = spec.preference.jsonl
    if plugin := plugin_source(spec.strategy):
        files[f"plugin:{plugin[0]}"] = plugin[1]
    return files


def plugin_source(strategy: str) -> tuple[str, str] | None:
    """(module, file) of the code of a strategy a plugin defines (its class outside bench), whose edit must run
    its runs again as a data file's does; None for bench's own and for a name not registered."""
    from bench.strategies import STRATEGIES

    try:
        found = STRATEGIES.get(strategy)
    except Exception:  # unknown, or its module fails to import: the run says why
        return None
    module = found.__module__ if isinstance(found, type) else type(found).__module__  # a class, or an instance
    source = getattr(sys.modules.get(module), "__file__", None)
    return None if module.split(".")[0] == "bench" or not source else (module, source)


def digest(path: str, cache: dict[str, str] | None = None) -> str:
    """sha256 of a file's bytes, or of a folder's files (relative names and bytes, in sorted order);
    MISSING where there is neither. `cache`: digests already taken in this call, by path."""
    if cache is not None and path in cache:
        return cache[path]
    target = Path(path).expanduser()
    if target.is_file():
        found = _hash_files([(target.name, target)])
    elif target.is_dir():
        found = _hash_files([(str(f.relative_to(target)), f) for f in sorted(target.rglob("*")) if f.is_file()])
    else:
        found = MISSING
    if cache is not None:
        cache[path] = found
    return found


def _hash_files(files: list[tuple[str, Path]]) -> str:
    hasher = hashlib.sha256()
    for name, file in files:
        hasher.update(name.encode() + b"\0")
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                hasher.update(chunk)
    return hasher.hexdigest()


def data_fingerprint(spec: ReadsData, cache: dict[str, str] | None = None) -> dict[str, str]:
    """Role -> sha256 of each data file the run reads (empty where it reads none)."""
    return {role: digest(path, cache) for role, path in data_files(spec).items()}


def changed_data(model_info: dict[str, Any], spec: ReadsData, cache: dict[str, str] | None = None) -> list[str]:
    """The roles whose file differs from what a stored run read ("task:dates"); empty where all match or
    the record predates data digests (nothing to hold it against)."""
    stored = model_info.get(DIGEST_KEY)
    if not isinstance(stored, dict):
        return []
    now = data_fingerprint(spec, cache)
    now = {role: found for role, found in now.items() if not role.startswith("plugin:") or role in stored}  # older
    return sorted(role for role in stored.keys() | now.keys() if stored.get(role) != now.get(role))
