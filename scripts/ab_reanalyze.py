"""Re-run `bench ab`'s comparison on stored A/B rounds with this checkout's rules (no training): how the
committed A/A and slowdown A/Bs fare under the current statistics.

    python scripts/ab_reanalyze.py FOLDER [--alpha 0.05]

FOLDER holds `<kind>-<n>/{baseline,candidate}/round-<k>/` (results/validation/ab-validation/records.tar.xz
unpacked). Prints one line per A/B and the false-alarm and detection rates, over all A/Bs and over those
whose timing no other process disturbed in any round (the clean ones).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    from bench.analysis.ab import compare_rounds, contaminated_round, load_rounds

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    tally: dict[tuple[str, bool], list[bool]] = {}
    folders = [p for p in args.folder.iterdir() if (p / "baseline").is_dir()]
    for ab in sorted(folders, key=lambda p: (p.name.split("-")[0], int(p.name.split("-")[-1]))):
        sides = [
            sorted(  # the rounds compared: not the contaminated tries kept aside (round-K.contaminated-N)
                (p for p in (ab / side).glob("round-*") if "." not in p.name), key=lambda p: int(p.name.split("-")[1])
            )
            for side in ("baseline", "candidate")
        ]
        base, cand = load_rounds(sides[0]), load_rounds(sides[1])
        result = compare_rounds(base, cand, alpha=args.alpha)
        clean = not any(contaminated_round(runs) for runs in base + cand)
        kind = ab.name.split("-")[0]
        tally.setdefault((kind, True), []).append(result.failed)
        if clean:
            tally.setdefault((kind, False), []).append(result.failed)
        gated = sorted({f"{c.strategy}:{c.metric}" for c in result.regressions})
        print(f"{ab.name:8} clean={clean!s:5} exit={int(result.failed)} {', '.join(gated)[:150]}")
    for (kind, everything), exits in sorted(tally.items()):
        label = "all" if everything else "clean"
        print(f"{kind} ({label}): exit 1 in {sum(exits)} of {len(exits)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
