"""Rewrite every record below a results folder (or a record file) in the current schema, in place.

    python scripts/migrate_records.py results [more folders or files]

Schema 7 scrubs what must not leave the machine (absolute paths, the host name, secrets; bench/records/portable.py);
everything else (metrics, items, run ids, sessions) is kept as it was. Files that are not records are
left alone and listed. Writes atomically and only when the text changes.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.records.results import NotARecord
from bench.records.store import atomic_write_text, load_record, record_paths


def migrate_path(path: Path) -> bool:
    """True when the file was rewritten."""
    record = load_record(path)
    text = record.model_dump_json(indent=2) + "\n"
    if text == path.read_text(encoding="utf-8"):
        return False
    atomic_write_text(path, text)
    return True


def main(argv: list[str]) -> int:
    changed = skipped = kept = 0
    for target in map(Path, argv or ["results"]):
        for path in [target] if target.is_file() else record_paths(target):
            try:
                if migrate_path(path):
                    changed += 1
                else:
                    kept += 1
            except NotARecord as error:
                skipped += 1
                print(f"left alone {path}: {error}", file=sys.stderr)
    print(f"{changed} records rewritten, {kept} already current, {skipped} other JSON files left alone")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
