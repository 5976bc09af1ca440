"""A simulated history made of real runs: `scripts/nightly` on the smoke suite, night after night,
at one commit on this machine (docs/history.md).

    python scripts/history_experiment.py [--nights 12] [--slow-from 8] [--weak-night 10] \
        [--out results/validation/history-sim/records]

Nights --slow-from and later run with about 20% added to every optimizer step; on night
--weak-night, LoRA alone also learns with a tenth of its learning rate. Both faults come from
outside the suite: scripts/faults/site (a sitecustomize) on PYTHONPATH with BENCH_FAULTS=slow_step,
weak_lr and BENCH_FAULT_LABEL_WEAK_LR=lora. Each night's exit code is kept
in <out>/nights.json; finished nights are skipped, so an interrupted experiment resumes. At the end
`bench history` over the store is written to <out>/history.json and <out>/history.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nights", type=int, default=12)
    parser.add_argument("--slow-from", type=int, default=8)
    parser.add_argument("--weak-night", type=int, default=10)
    parser.add_argument("--out", type=Path, default=REPO / "results" / "validation" / "history-sim" / "records")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "nights.json"
    nights = json.loads(log.read_text()) if log.exists() else []
    for night in range(len(nights) + 1, args.nights + 1):
        env, faults = dict(os.environ), []
        if night >= args.slow_from:
            faults.append("slow_step")
        if night == args.weak_night:
            faults.append("weak_lr")
            env["BENCH_FAULT_LABEL_WEAK_LR"] = "lora"
        if faults:
            env["BENCH_FAULTS"] = ",".join(faults)
            path = [str(REPO / "scripts" / "faults" / "site"), env.get("PYTHONPATH", "")]
            env["PYTHONPATH"] = os.pathsep.join(filter(None, path))
        fault = "+".join(faults) or None
        command = [sys.executable, str(REPO / "scripts" / "nightly"), "--store", str(args.out / "store")]
        command += ["--reports", str(args.out / "reports")]
        done = subprocess.run(command, cwd=REPO, env=env)
        nights.append({"night": night, "fault": fault, "exit": done.returncode})
        log.write_text(json.dumps(nights, indent=1))
        print(f"night {night} ({fault or 'clean'}): exit {done.returncode}", flush=True)
    history = [
        sys.executable,
        "-m",
        "bench.cli",
        "history",
        str(args.out / "store"),
        "--json",
        str(args.out / "history.json"),
    ]
    with open(args.out / "history.txt", "w") as stream:
        subprocess.run(history, cwd=REPO, stdout=stream, env={**os.environ, "COLUMNS": "200"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
