"""Where records live and how they are read back: one JSON file per run at
<root>/<suite>/<machine>/<run_id>.json, written atomically (a crash leaves the old file or the new one,
never half of one); a folder of them, or a packed set (records.tar.xz), read back with every file that is
not a record skipped and said. The record itself: bench/records/results.py.

This module must never import torch: reports and comparisons rebuild from records anywhere.
"""

from __future__ import annotations

import json
import lzma
import os
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

try:
    import fcntl
except ImportError:  # not on Windows: there one run writing a folder at a time is the user's to keep
    fcntl = None

from bench.records.archives import SUFFIXES, as_folder, is_archive
from bench.records.migrations import NotARecord
from bench.records.results import RunResult, parse_record


def current_umask() -> int:
    """This process's umask (0o022 by default), read without changing it where Linux allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write to a temporary file in the same folder, flush to disk, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~current_umask())  # mkstemp's 0600 would hide it from the team
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


LOCK_NAME = ".bench-run.lock"  # hidden: never read as a record


class FolderBusy(Exception):
    """Another process holds the folder's lock; `holder`: its pid and start, as it wrote them (or {})."""

    def __init__(self, folder: Path, holder: dict) -> None:
        super().__init__(f"{folder} is locked by pid {holder.get('pid', '?')}")
        self.folder, self.holder = folder, holder


class FolderLock:
    """One writer at a time for a folder: an exclusive flock on <folder>/.bench-run.lock, which holds the
    holder's pid and start. Released by release(), and by the OS when the process ends however it ends
    (a crash, kill -9). Where the file system cannot lock (ENOLCK on some NFS), nothing is locked."""

    def __init__(self, folder: Path | str) -> None:
        self.folder = Path(folder)
        self.handle = None

    def acquire(self) -> None:
        """Take the lock, or raise FolderBusy."""
        if fcntl is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        handle = open(self.folder / LOCK_NAME, "a+", encoding="utf-8")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = _holder(handle.read())
            handle.close()
            raise FolderBusy(self.folder, holder) from None
        except OSError:  # this file system cannot lock: go on unlocked
            handle.close()
            return
        from datetime import datetime

        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "started": datetime.now().astimezone().isoformat("T", "seconds")}))
        handle.flush()
        self.handle = handle

    def release(self) -> None:
        if self.handle is not None:
            self.handle.close()  # closing the file drops the lock; the file stays for the next writer
            self.handle = None


def _holder(text: str) -> dict:
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


class ResultStore:
    """Records live at <root>/<suite>/<machine>/<run_id>.json, written portable (bench/records/portable.py):
    paths relative to the root or the cache, no host name unless `record_host`."""

    def __init__(self, root: Path | str, record_host: bool = False) -> None:
        self.root = Path(root)
        self.record_host = record_host

    def path_for(self, suite: str, machine: str, run_id: str) -> Path:
        return self.root / suite / machine / f"{run_id}.json"

    def lock(self, suite: str, machine: str) -> FolderLock:
        """Taken (FolderBusy if another process holds it): one `bench run` at a time writes <suite>/<machine>."""
        lock = FolderLock(self.root / suite / machine)
        lock.acquire()
        return lock

    def write(self, result: RunResult) -> Path:
        path = self.path_for(result.suite, result.environment.machine, result.run_id)
        atomic_write_text(path, self.portable(result).model_dump_json(indent=2) + "\n")
        return path

    def portable(self, result: RunResult) -> RunResult:
        """The record as it is stored: paths relative to this root or the cache, no host name unless
        `record_host`, no secret (bench/records/portable.py)."""
        from bench.records.portable import scrub

        raw = scrub(result.model_dump(mode="json"), results_root=self.root, keep_host=self.record_host)
        return RunResult.model_validate(raw)

    def read(self, suite: str, machine: str, run_id: str) -> RunResult | None:
        path = self.path_for(suite, machine, run_id)
        return load_record(path) if path.exists() else None

    def records(self) -> Iterator[RunResult]:
        yield from load_records(self.root)


class DamagedRecord(NotARecord):
    """A file that is, or may be, a record and cannot be read: not text, empty, not JSON (truncated), or a
    JSON object with a run_id that does not parse (a newer schema, a field the schema refuses). Valid JSON
    that is no record (a summary, a comparison, another tool's output) is a plain NotARecord."""


def load_record(path: Path) -> RunResult:
    """The record in `path`; NotARecord (a ValueError) says why a file is not one, DamagedRecord where it may
    have been one."""
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DamagedRecord(f"not text: {error.reason}") from error
    if not text.strip():
        raise DamagedRecord("empty file")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise DamagedRecord(f"not JSON (truncated?): {str(error)[:200]}") from error
    try:
        return parse_record(raw)
    except NotARecord as error:
        if isinstance(raw, dict) and "run_id" in raw:
            raise DamagedRecord(str(error)) from error
        raise


# Folders beside the records that hold other files: run logs, and kept artefacts (model configs,
# tokenizers and task files are JSON too)
NOT_RECORDS = ("logs", "artefacts")


HISTORY_SUFFIX = ".history.json"  # scripts/nightly writes <store>/<suite>/<fingerprint>.history.json


def record_paths(root: Path | str) -> Iterator[Path]:
    """The JSON files below `root` that can be records: not hidden, not in logs/ or artefacts/, not in an
    unpacked copy of a packed set below it (`unpacked_copies`). An archive (`records.tar.xz`,
    bench/records/archives.py) is read as the folder it holds."""
    root = as_folder(root)
    found = sorted(root.rglob("*"))  # one walk of the tree: the JSON files and the archives
    copies = unpacked_copies(root, [path for path in found if path.name.endswith(SUFFIXES)])
    for path in found:
        if not path.name.endswith(".json") or path.name.endswith(HISTORY_SUFFIX):
            continue  # not JSON, or the nightly's own history of a store (never a record)
        if copies and any(folder in copies for folder in path.parents):
            continue
        parts = path.relative_to(root).parts
        if not any(part.startswith(".") for part in parts) and not set(parts[:-1]) & set(NOT_RECORDS):
            yield path


def unpacked_copies(root: Path, archives: list[Path]) -> set[Path]:
    """The folders below `root` that a packed set among `archives` below it unpacked to (`<set>/records/`
    beside `<set>/records.tar.xz`, as `scripts/validation.py unpack` leaves it), each told once on stderr. A
    folder reads a packed set only as its own (`load_records(<set>)`), never one below it, so its unpacked
    copy is left out too: what a folder holds does not change with what was unpacked (a validation
    experiment's repeats are not the published set of their suite)."""
    copies = set()
    for archive in archives:
        copy = archive.with_name(archive.name.removesuffix(next(s for s in SUFFIXES if archive.name.endswith(s))))
        if archive.parent == root or not copy.is_dir() or not is_archive(archive):
            continue
        copies.add(copy)
        if copy not in _LEFT_OUT:
            _LEFT_OUT.add(copy)
            print(
                f"bench: left out {copy}: unpacked from {archive.name} beside it; a packed set is read as "
                f"a folder of its own (give {archive.parent})",
                file=sys.stderr,
            )
    return copies


class Skipped(NamedTuple):
    path: Path
    reason: str
    damaged: bool = False  # it is, or may be, a record that could not be read (DamagedRecord, unreadable)


_SAID: set[tuple[Path, str]] = set()  # skips already told in this process (a folder read twice says them once)
_LEFT_OUT: set[Path] = set()  # unpacked copies already told in this process


def tell_skipped(root: Path | str, skipped: list[Skipped]) -> None:
    """A line per skipped file with its reason, then the count, on stderr (each file once per process).
    Files of one folder skipped for one reason (a folder of comparison summaries) are one line."""
    new = [one for one in skipped if (one.path, one.reason) not in _SAID]
    _SAID.update((one.path, one.reason) for one in new)
    groups: dict[tuple[Path, str], list[Path]] = {}
    for one in new:
        groups.setdefault((one.path.parent, one.reason), []).append(one.path)
    for (folder, reason), paths in groups.items():
        if len(paths) <= 2:
            for path in paths:
                print(f"bench: skipped {path}: {reason}", file=sys.stderr)
        else:
            print(f"bench: skipped {paths[0]} and {len(paths) - 1} more in {folder}: {reason}", file=sys.stderr)
    if new:
        print(f"bench: {len(skipped)} JSON file(s) under {root} skipped: not records", file=sys.stderr)


def scan_records(root: Path | str, skipped: list[Skipped] | None = None) -> Iterator[tuple[Path, RunResult]]:
    """(path, record) for every record below `root`; any other JSON file (not a record, truncated,
    empty, unreadable, a newer schema) is appended to `skipped` with the reason, or told on stderr
    when `skipped` is None. Never raises for a file's content. Inside an archive a skipped file is
    named by its member (`<archive>/<member>`), not by where the archive was extracted."""
    own = [] if skipped is None else skipped
    for path in record_paths(root):
        try:
            record = load_record(path)
        except (NotARecord, OSError) as error:
            reason = str(error) if isinstance(error, NotARecord) else f"unreadable: {error}"
            damaged = not isinstance(error, NotARecord) or isinstance(error, DamagedRecord)
            own.append(Skipped(_as_named(path, root), reason, damaged))
            continue
        yield path, record
    if skipped is None:
        tell_skipped(root, own)


def _as_named(path: Path, root: Path | str) -> Path:
    """`path` as the user knows it: inside an archive, the archive's path joined with the member's."""
    if not is_archive(root):
        return path
    return Path(root) / path.relative_to(as_folder(root))


def scan_packed(archive: Path, skipped: list[Skipped] | None = None) -> Iterator[tuple[Path, RunResult]]:
    """(path, record) for every record of a packed result set (`<set>/records.tar.xz`), each at the
    path it has once unpacked where the set's comment says: `<set>/<path in the archive without its
    top folder and the set's own name>`. An unreadable archive is told on stderr and gives nothing."""
    try:
        unpacked = as_folder(archive)
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError) as error:  # truncated, not an archive
        if skipped is None:
            print(f"bench: skipped {archive}: not a readable archive: {error}", file=sys.stderr)
        else:
            skipped.append(Skipped(archive, f"not a readable archive: {error}", damaged=True))
        return
    inner: list[Skipped] = []
    for path, record in scan_records(unpacked, inner):
        inside = path.relative_to(unpacked).parts[1:]  # without the top folder (records/)
        if inside[:1] == (archive.parent.name,):
            inside = inside[1:]
        yield archive.parent.joinpath(*inside), record
    named = [one._replace(path=archive / one.path.relative_to(unpacked)) for one in inner]  # not a temporary folder
    if skipped is None:
        tell_skipped(archive, named)
    else:
        skipped.extend(named)


def load_records(root: Path | str, skipped: list[Skipped] | None = None) -> Iterator[RunResult]:
    """Every record below `root` (a results folder, a suite folder or a machine folder, or an archive of
    one); other JSON files are skipped (see scan_records). A folder that holds its records packed
    (`results/<set>/records.tar.xz`) reads as the folder the archive unpacks to; a record also there
    loose (wherever it was unpacked: beside the archive, or as the archive's own records/<set>/...)
    counts once, as the same run (its run_id and start) is one run wherever its file lies."""
    found = list(scan_records(root, skipped))
    yield from (record for _, record in found)
    root = Path(root)
    archives = sorted(path for path in root.iterdir() if is_archive(path)) if root.is_dir() else []
    loose = {run_identity(record) for _, record in found}
    for archive in archives:
        for _, record in scan_packed(archive, skipped):
            if run_identity(record) not in loose:
                loose.add(run_identity(record))
                yield record


def run_identity(record: RunResult) -> tuple[str, str]:
    """What makes two record files the same run: its id (the spec's hash, seed included) and when it began."""
    return record.run_id, str(record.started_at)
