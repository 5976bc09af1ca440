"""One `bench ab` output folder, round by round in the order the rounds ran: each side's training
tokens/s per strategy, the reference workload, the contention readings, page faults and, where the records have
them (cpu_busy, since 2026-12-06), the CPU each round's runs trained on. For finding why an A/A
gated: a slow stretch of the machine slows both sides' rounds around it, a slow process or CPU only
its own.

    python scripts/ab_rounds.py results/validation/ab-validation-7rounds/records/aa-7
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def _placement(runs: list[dict]) -> str:
    """Where the runs' training ran: each CPU busier than half a core, with how many runs it held."""
    counts: dict[str, int] = defaultdict(int)
    for run in runs:
        busy = ((run.get("timing_quality") or {}).get("phases", {}).get("train") or {}).get("cpu_busy")
        if busy:
            counts["+".join(f"cpu{i}" for i, value in enumerate(busy) if value > 0.5) or "none"] += 1
    return ", ".join(f"{where} x{count}" for where, count in sorted(counts.items())) or "not recorded"


def _round_row(side: str, folder: Path) -> tuple[str, str] | None:
    runs = [json.loads(path.read_text()) for path in folder.glob("*/*/*.json")]
    runs = [run for run in runs if run.get("status") == "ok"]
    if not runs:
        return None
    speeds: dict[str, list[float]] = defaultdict(list)
    for run in runs:
        value = (run["metrics"].get("train.tokens_per_s") or {}).get("value")
        if value is not None:
            speeds[run["label"]].append(value)
    train = [((r.get("timing_quality") or {}).get("phases", {}).get("train") or {}) for r in runs]
    references = [s for r in runs for s in (r.get("timing_quality") or {}).get("reference_seconds", [])]
    cells = [
        f"{side} {folder.name.removeprefix('round-')}",
        ", ".join(f"{label} {statistics.median(values):,.0f}" for label, values in sorted(speeds.items())),
        f"{1000 * statistics.median(references):.2f}" if references else "-",
        f"{max((t.get('others_cpu') or 0.0) for t in train):.2f}",
        f"{max((t.get('steal') or 0.0) for t in train):.3f}",
        f"{statistics.median(t.get('minor_faults') or 0 for t in train):,.0f}",
        _placement(runs),
    ]
    return min(run["started_at"] for run in runs), "| " + " | ".join(cells) + " |"


def main(folder: Path) -> None:
    rows = [
        row
        for side in ("baseline", "candidate")
        for round_folder in sorted((folder / side).glob("round-*"))
        if (row := _round_row(side[0].upper(), round_folder)) is not None
    ]
    print("| round (B baseline, C candidate) | tokens/s, median per strategy | reference ms ", end="")
    print("| others' CPU (max) | steal (max) | minor faults (median) | trained on |")
    print("|---|---|---|---|---|---|---|")
    for _, row in sorted(rows):
        print(row)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
