"""Validation experiments, kept compact: results/validation/<name>/ holds what a reader needs (README.md:
what it validates, the command that made it, the findings; summary.md and small text outputs) plus
everything the experiment's script wrote (its --out folder) in one archive, records.tar.xz.

    python scripts/validation.py list                 # the experiments, archive sizes
    python scripts/validation.py unpack NAME [NAME..]  # -> results/validation/NAME/records/ (git-ignored)
    python scripts/validation.py pack NAME            # records/ -> records.tar.xz, records migrated first

`bench report`, `compare`, `history`, `recommend` and `scaling` read an archive directly
(`bench history results/validation/history-sim/records.tar.xz`); the experiment scripts read the
unpacked folder (`python scripts/aa_experiment.py analyze --out results/validation/aa/records`).
Unpacking is also plain tar: `tar -xJf results/validation/NAME/records.tar.xz -C results/validation/NAME`.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tarfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.records.archives import pack  # noqa: E402
from bench.records.results import NotARecord  # noqa: E402
from bench.records.store import atomic_write_text, load_record, record_paths  # noqa: E402

VALIDATION = REPO / "results" / "validation"


def _migrate(folder: Path) -> int:
    """Rewrite the records below `folder` in the current schema (portable: no absolute path, no host)."""
    count = 0
    for path in record_paths(folder):
        try:
            text = load_record(path).model_dump_json(indent=2) + "\n"
        except NotARecord:
            continue
        if text != path.read_text(encoding="utf-8"):
            atomic_write_text(path, text)
        count += 1
    return count


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["list", "unpack", "pack"])
    parser.add_argument("names", nargs="*")
    args = parser.parse_args(argv)
    if args.action == "list":
        for archive in sorted(VALIDATION.glob("*/records.tar.xz")):
            print(f"{archive.parent.name:20} {archive.stat().st_size / 1e6:6.2f} MB  {archive.relative_to(REPO)}")
        return 0
    for name in args.names or ([] if args.action == "pack" else [p.name for p in VALIDATION.iterdir()]):
        home = VALIDATION / name
        archive, records = home / "records.tar.xz", home / "records"
        if args.action == "unpack":
            if not archive.is_file():
                continue
            with tarfile.open(archive) as tar:
                tar.extractall(home, filter="data")
            print(f"{records.relative_to(REPO)}/")
        else:
            if not records.is_dir():
                print(f"no {records.relative_to(REPO)}/ to pack", file=sys.stderr)
                return 2
            migrated = _migrate(records)
            size = pack(records, archive)
            shutil.rmtree(records)
            print(f"{archive.relative_to(REPO)}: {migrated} records, {size / 1e6:.2f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
