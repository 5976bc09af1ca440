"""Result sets kept as one compressed archive (results/validation/<name>/records.tar.xz): readers open
them as folders. Imports nothing of bench, no torch.

`as_folder(path)` gives a folder to read for a folder (itself) or an archive (extracted once per
process into a temporary folder, removed at exit). `pack` writes the deterministic archive that
scripts/validation.py commits: sorted members, no owners, no times.
"""

from __future__ import annotations

import atexit
import io
import lzma
import shutil
import tarfile
import tempfile
from pathlib import Path

SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar")
_OPENED: dict[Path, Path] = {}


def is_archive(path: Path | str) -> bool:
    path = Path(path)
    return path.name.endswith(SUFFIXES) and path.is_file()


def as_folder(path: Path | str) -> Path:
    """`path` itself, or for an archive the folder it was extracted into (once per process)."""
    path = Path(path)
    if not is_archive(path):
        return path
    key = path.resolve()
    if key not in _OPENED:
        target = Path(tempfile.mkdtemp(prefix=f"bench-{path.name.split('.')[0]}-"))
        atexit.register(shutil.rmtree, target, True)
        with tarfile.open(path) as archive:
            archive.extractall(target, filter="data")
        _OPENED[key] = target
    return _OPENED[key]


def pack(folder: Path, archive: Path) -> int:
    """Write `folder` (as `<folder name>/...` members) to an xz archive; same files, same bytes. Returns its size."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in [folder, *sorted(folder.rglob("*"))]:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(folder.parent)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            info.mode = 0o755 if path.is_dir() else 0o644
            if path.is_file():
                with open(path, "rb") as stream:
                    tar.addfile(info, stream)
            else:
                tar.addfile(info)
    data = lzma.compress(buffer.getvalue(), preset=9 | lzma.PRESET_EXTREME)
    archive.write_bytes(data)
    archive.chmod(0o644)
    return len(data)
