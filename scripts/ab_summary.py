"""Summarise an `scripts/ab_validation` folder: false alarms of the A/A runs and detections of the
slowed candidates, with exact (Clopper-Pearson) 95% intervals, and one row per A/B.

An A/B in which a round's timing was contaminated (another process used the CPU while it was timed,
bench/measure/contention.py) does not gate on timing, so its exit says nothing about the timing gate:
the rates are given over all A/Bs and over the clean ones.

    python scripts/ab_summary.py [results/validation/ab-validation/records] \
        > results/validation/ab-validation/summary.md
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from scipy.stats import binomtest


def _runs(folder: Path, kind: str) -> list[tuple[int, dict]]:
    found = []
    for path in folder.glob(f"{kind}-*.json"):
        match = re.fullmatch(rf"{kind}-(\d+)\.json", path.name)
        if match:
            found.append((int(match.group(1)), json.loads(path.read_text())))
    return sorted(found, key=lambda pair: pair[0])


def _contaminated(run: dict) -> list[str]:
    return [f"{i['strategy']}: {i['detail']}" for i in run["issues"] if i["kind"] == "timing contaminated"]


def _rate(hits: int, total: int) -> str:
    if not total:
        return "none"
    interval = binomtest(hits, total).proportion_ci(confidence_level=0.95, method="exact")
    return f"{hits} of {total} ({100 * hits / total:.1f}%, 95% CI {100 * interval.low:.1f}-{100 * interval.high:.1f}%)"


def _worse(run: dict) -> str:
    rows = [c for c in run["changes"] if c["verdict"] == "worse" and c["gating"]]
    tokens = [c for c in rows if c["metric"] == "train.tokens_per_s"]
    named = "; ".join(f"{c['strategy']} {c['metric']} {100 * c['change']:+.1f}%" for c in tokens)
    return f"{len(rows)}" + (f" ({named})" if named else "")


def main() -> int:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "results/validation/ab-validation/records")
    aa, slow = _runs(folder, "aa"), _runs(folder, "slow")
    if not aa and not slow:  # one kind alone is a validation too (KINDS=aa scripts/ab_validation)
        print(f"no aa-N.json or slow-N.json in {folder}", file=sys.stderr)
        return 2
    clean_aa = [run for _, run in aa if not _contaminated(run)]
    clean_slow = [run for _, run in slow if not _contaminated(run)]
    print(f"# `bench ab` validation: {folder}\n")
    print("A/A: the same code and environment on both sides (exit 1 is a false alarm). Slow: ~20% added to")
    print("every optimizer step of the candidate from outside the suite (exit 1 is a detection).\n")
    print("| | all A/Bs | A/Bs without contaminated timing |")
    print("|---|---|---|")
    alarms_all, alarms_clean = sum(r["failed"] for _, r in aa), sum(r["failed"] for r in clean_aa)
    caught_all, caught_clean = sum(r["failed"] for _, r in slow), sum(r["failed"] for r in clean_slow)
    print(f"| A/A false alarms | {_rate(alarms_all, len(aa))} | {_rate(alarms_clean, len(clean_aa))} |")
    print(f"| slowdowns caught | {_rate(caught_all, len(slow))} | {_rate(caught_clean, len(clean_slow))} |\n")
    print("| A/B | exit | gating rows worse (training tokens/s) | verdict counts | timing contaminated |")
    print("|---|---|---|---|---|")
    for kind, runs in (("aa", aa), ("slow", slow)):
        for number, run in runs:
            counts = ", ".join(f"{count} {verdict}" for verdict, count in sorted(run["counts"].items()))
            dirty = "; ".join(_contaminated(run)) or "-"
            print(f"| {kind}-{number} | {int(run['failed'])} | {_worse(run)} | {counts} | {dirty} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
