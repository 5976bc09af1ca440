"""The A/A experiment: how often does `bench compare` cry wolf, and does it catch a real regression?

    python scripts/aa_experiment.py run [--repeats 16] [--slow-repeats 8] [--weak-repeats 4] \
        [--out results/validation/aa/records]
    python scripts/aa_experiment.py analyze [--out results/validation/aa/records]

`run` repeats the smoke suite on this machine under three conditions, interleaved (A, S, W, A, S,
W, ...; repeats still pending are interleaved the same way) so that a slow drift of the machine
touches every condition alike:

  baseline   the commit as it is;
  slow-step  the same, with 20% added to every optimizer step by a sitecustomize on
             PYTHONPATH (scripts/faults/site with BENCH_FAULTS=slow_step), a stand-in for a library regression;
  weak-lr    the same, with each optimizer step taking a tenth of its learning rate
             (BENCH_FAULTS=weak_lr): a change that learns less.

Each repeat is one `bench run` into its own folder, `<out>/<condition>/rep-<k>/`. Nothing in the
harness, the suite or the run ids changes between conditions. Already finished repeats are kept,
so an interrupted `run` resumes.

`analyze` runs `bench compare`'s machinery on every pair and writes `<out>/summary.json` and
`<out>/summary.md`: the false-alarm rate over all baseline/baseline pairs, and the detection
rates over all baseline/slow-step and baseline/weak-lr pairs (which metrics caught it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SUITE = REPO / "suites" / "smoke.yaml"
FAULTS = {"baseline": None, "slow-step": "slow_step", "weak-lr": "weak_lr"}


def run_repeat(out: Path, condition: str, index: int) -> None:
    folder = out / condition / f"rep-{index}"
    if (folder / ".done").exists():
        print(f"{condition} rep-{index}: done already", flush=True)
        return
    env = dict(os.environ)
    fault = FAULTS[condition]
    if fault:
        env["BENCH_FAULTS"] = fault
        env["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(REPO / "scripts" / "faults" / "site"), env.get("PYTHONPATH")])
        )
    started = time.perf_counter()
    command = [sys.executable, "-m", "bench.cli", "run", str(SUITE), "--results", str(folder), "--quiet", "--no-report"]
    subprocess.run(command, cwd=REPO, env=env, check=True)
    (folder / ".done").write_text("")
    print(f"{condition} rep-{index}: {time.perf_counter() - started:.0f} s", flush=True)


def run(out: Path, repeats: dict[str, int]) -> None:
    """Round-robin over the conditions' pending repeats, so new runs of each condition interleave."""
    pending = {
        condition: [i for i in range(count) if not (out / condition / f"rep-{i}" / ".done").exists()]
        for condition, count in repeats.items()
    }
    for turn in range(max(map(len, pending.values()), default=0)):
        for condition, indices in pending.items():
            if turn < len(indices):
                run_repeat(out, condition, indices[turn])


def _load(folder: Path):
    from bench.records.store import load_records

    return list(load_records(folder))


def analyze(out: Path) -> dict:
    from bench.analysis.compare import compare_records

    def index(path: Path) -> int:
        return int(path.name.removeprefix("rep-"))

    # in the order they ran, so that every baseline/baseline pair holds an earlier run against a later
    # one, as a nightly does: a machine that drifts slower shows up as false alarms, not hidden
    done = {
        condition: sorted((p for p in (out / condition).glob("rep-*") if (p / ".done").exists()), key=index)
        for condition in FAULTS
    }
    sets = {condition: {path.name: _load(path) for path in paths} for condition, paths in done.items()}
    baseline = sets["baseline"]

    def verdicts(pairs: list[tuple[str, list, str, list]], adjust: bool = True) -> dict:
        failed, caught_by = [], {}
        for base_name, base, cand_name, cand in pairs:
            comparison = compare_records(
                base, cand, baseline_name=base_name, candidate_name=cand_name, adjust_timing=adjust
            )
            if comparison.failed:
                failed.append(f"{base_name} -> {cand_name}")
            for change in comparison.regressions:
                key = f"{change.strategy}: {change.metric}"
                caught_by[key] = caught_by.get(key, 0) + 1
        return {
            "pairs": len(pairs),
            "exit_1": len(failed),
            "rate": round(len(failed) / len(pairs), 4) if pairs else None,
            "failed_pairs": failed,
            "regressions_by_metric": dict(sorted(caught_by.items(), key=lambda item: -item[1])),
        }

    aa = [(f"baseline/{a}", baseline[a], f"baseline/{b}", baseline[b]) for a, b in itertools.combinations(baseline, 2)]
    summary = {
        "suite": str(SUITE.relative_to(REPO)),
        "repeats": {condition: len(runs) for condition, runs in sets.items()},
        "false_alarms": verdicts(aa),
        "false_alarms (raw timing)": verdicts(aa, adjust=False),
    }
    for condition in ("slow-step", "weak-lr"):
        pairs = [
            (f"baseline/{a}", baseline[a], f"{condition}/{b}", sets[condition][b])
            for a in baseline
            for b in sets[condition]
        ]
        summary[f"detection:{condition}"] = verdicts(pairs)
        summary[f"detection:{condition} (raw timing)"] = verdicts(pairs, adjust=False)
    # The same gate on repeats that ran next to each other only (round k of the interleaving against
    # round k+1, and round k's baseline against round k's fault): what an interleaved A/B run sees
    names = list(baseline)
    adjacent = {
        "false_alarms": [(f"baseline/{a}", baseline[a], f"baseline/{b}", baseline[b]) for a, b in zip(names, names[1:])]
    }
    for condition in ("slow-step", "weak-lr"):
        adjacent[f"detection:{condition}"] = [
            (f"baseline/{a}", baseline[a], f"{condition}/{b}", sets[condition][b])
            for a, b in zip(names, sets[condition])
        ]
    summary["adjacent"] = {key: verdicts(pairs) for key, pairs in adjacent.items()}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    return summary


def markdown(summary: dict) -> str:
    lines = [
        "# A/A experiment: `bench compare` on repeated runs of the same commit",
        "",
        f"Suite `{summary['suite']}`; repeats per condition: {summary['repeats']}.",
        "Redo with `python scripts/aa_experiment.py run && python scripts/aa_experiment.py analyze`.",
        "",
        "Pairs hold an earlier repeat (baseline) against a later one (candidate), as a nightly does.",
        "`bench compare` defaults: timings at equal machine speed (the reference workload); the",
        "raw-timing rows show the same pairs with that adjustment turned off (`--raw-timing`).",
        "",
        "| comparison | pairs | exit 1 | rate | exit 1, raw timing | rate, raw timing |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in (
        ("false_alarms", "baseline vs baseline (false alarms)"),
        ("detection:slow-step", "baseline vs slow-step (+20% per optimizer step)"),
        ("detection:weak-lr", "baseline vs weak-lr (learning rate x0.1)"),
    ):
        block, raw = summary[key], summary[f"{key} (raw timing)"]
        rate = "n/a" if block["rate"] is None else f"{block['rate']:.1%}"
        raw_rate = "n/a" if raw["rate"] is None else f"{raw['rate']:.1%}"
        lines.append(f"| {label} | {block['pairs']} | {block['exit_1']} | {rate} | {raw['exit_1']} | {raw_rate} |")
    if "adjacent" in summary:
        lines += [
            "",
            "The same gate on repeats that ran next to each other in time (round k against round k+1 for",
            "baseline pairs, round k's baseline against round k's fault): what an interleaved A/B run sees.",
            "",
            "| comparison | adjacent pairs | exit 1 | rate |",
            "|---|---|---|---|",
        ]
        for key, block in summary["adjacent"].items():
            rate = "n/a" if block["rate"] is None else f"{block['rate']:.1%}"
            lines.append(f"| {key} | {block['pairs']} | {block['exit_1']} | {rate} |")
    for key in ("false_alarms", "detection:slow-step", "detection:weak-lr", "false_alarms (raw timing)"):
        top = list(summary[key]["regressions_by_metric"].items())[:8]
        if top:
            lines += ["", f"Gating regressions in {key} (metric: pairs):", ""]
            lines += [f"- {metric}: {count}" for metric, count in top]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["run", "analyze"])
    parser.add_argument("--out", type=Path, default=REPO / "results" / "validation" / "aa" / "records")
    parser.add_argument("--repeats", type=int, default=16, help="baseline repeats")
    parser.add_argument("--slow-repeats", type=int, default=8)
    parser.add_argument("--weak-repeats", type=int, default=4)
    args = parser.parse_args()
    if args.command == "run":
        run(args.out, {"baseline": args.repeats, "slow-step": args.slow_repeats, "weak-lr": args.weak_repeats})
    else:
        print(markdown(analyze(args.out)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
