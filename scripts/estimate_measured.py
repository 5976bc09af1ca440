"""Today's estimate against every committed memory measurement of transformers itself: the rows of
scripts/published_shapes_gpu.py (published-shapes.json, llama-3.2-1b.json) and of
scripts/preference_shapes.py (dpo-shapes.json, rlhf-shapes.json) under results/published-shapes/.

    python scripts/estimate_measured.py [results/published-shapes/MACHINE ...]

Per measured row: the counted activations and the measured peak against the current estimator's, so a
change to bench.estimate shows at once what it moves (docs/memory.md). A row's own `estimate_*` fields
are the code that ran then; this recomputes them. Skipped rows (too large for the machine) are left out.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "suites" / "model-configs"


def rows(folder: Path) -> list[dict[str, Any]]:
    """Every measured row of the folder's JSON files, with its objective ("sft" for the bare-loop rows)."""
    found = []
    for name in ("published-shapes.json", "llama-3.2-1b.json", "dpo-shapes.json", "rlhf-shapes.json"):
        path = folder / name
        if not path.exists():
            continue
        loaded = json.loads(path.read_text())
        for row in loaded if isinstance(loaded, list) else loaded.get("rows", []):
            if "components" in row and not row.get("tiny"):  # as estimate_published.measurements() skips them
                objective = row.get("objective") or ("dpo" if name == "dpo-shapes.json" else "sft")
                found.append({**row, "objective": objective, "file": name})
    return found


def compare(row: dict[str, Any]) -> dict[str, Any]:
    from bench.estimate.model import config_from_file, estimate_run

    config = config_from_file(CONFIGS / row["config"])
    for key, value in (row.get("overrides") or {}).items():
        setattr(config, key, value)
    strategy = row["strategy"] if row["objective"] == "sft" else row["objective"]
    estimate = estimate_run(
        config, dtype="bfloat16", strategy=strategy, options=row["options"], batch_size=row["batch"],
        tokens=row["tokens"], device=row.get("device", "cpu"),
    )  # fmt: skip
    phase = row.get("components_phase")
    counted = estimate.phases.get(phase, estimate.components) if phase else estimate.components
    peak = row.get("peak_without_leftover_bytes", row["peak_bytes"])
    return {
        "activations": 100 * (counted.activations / row["components"]["activations"] - 1),
        "peak": 100 * ((estimate.components.peak() or 0) / peak - 1),
    }


def main() -> None:
    folders = [Path(arg) for arg in sys.argv[1:]] or sorted(
        p for p in (ROOT / "results" / "published-shapes").iterdir() if p.is_dir()
    )
    print("| machine | file | shape | activations vs counted | peak vs measured |")
    print("|---|---|---|---|---|")
    errors = []
    for folder in folders:
        for row in rows(folder):
            error = compare(row)
            errors.append(abs(error["peak"]))
            what = row["strategy"] if row["objective"] == "sft" else row["objective"]
            variant = "lora" if "lora" in row["options"] or row.get("strategy") in ("lora", "qlora") else "full"
            shape = f"{row['config']} {what}{'' if what in ('lora', 'qlora', 'full') else '-' + variant}"
            shape += f" {row['batch']} x {row['tokens']}" + (f" {row['overrides']}" if row.get("overrides") else "")
            print(f"| {folder.name} | {row['file']} | {shape} | {error['activations']:+.2f}% | {error['peak']:+.2f}% |")
    if errors:
        ordered = sorted(errors)
        print(f"\n{len(errors)} rows: peak |error| median {ordered[len(ordered) // 2]:.2f}%, max {ordered[-1]:.2f}%")


if __name__ == "__main__":
    main()
