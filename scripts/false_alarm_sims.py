"""Simulations behind two false-alarm tables of docs/statistics.md (numbers, not tests: tests/ checks one row of each).

    python scripts/false_alarm_sims.py sessions [--draws 4000]   # a nightly's timing row: tonight vs 7 nights
    python scripts/false_alarm_sims.py report [--draws 1000]     # a report's "beyond noise" over equal strategies
    python scripts/false_alarm_sims.py nightly DIR               # the same gate on recorded repeats (not simulated)

`sessions`: each night is one session of 3 runs; session means spread by s (log-normal), runs within a session
by 3%; one timing row (higher is better), bench compare's ±10% threshold, alpha 0.05, 'worse' only. The runs
test (tonight's runs against the pooled runs, before 2026-12-06) beside the prediction test of session means.

`report`: equal strategies on the same seeds, 100 items of the learned task and of two retained ones, a
per-seed shift the strategies share and a wobble of their own; the share of reports whose difference table
calls any row beyond noise (bench/report/family.py).

`nightly DIR`: DIR holds an A/A experiment's records (`python scripts/validation.py unpack aa-sessions`, or
scripts/aa_experiment.py's output): each baseline repeat against the 7 (and 4) repeats before it, as a nightly
holds tonight against its window, and each slow-step repeat against the baselines of the rounds up to its own.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.analysis import stats  # noqa: E402
from bench.analysis.items import item_record  # noqa: E402
from bench.report.family import decide, table_pairs  # noqa: E402


def sessions(draws: int) -> None:
    rng = np.random.default_rng(0)

    def night(spread: float, factor: float = 1.0) -> list[float]:
        speed = math.exp(rng.normal(0, spread)) * factor
        return [speed * math.exp(rng.normal(0, 0.03)) for _ in range(3)]

    print("| s | slower by | runs test | prediction test |\n|---|---|---|---|")
    for spread in (0.03, 0.05, 0.08, 0.13):
        for factor in (1.0, 0.8):
            runs_test = prediction = 0
            for _ in range(draws):
                nights, tonight = [night(spread) for _ in range(7)], night(spread, factor)
                pooled = [value for one in nights for value in one]
                if np.mean(tonight) / np.mean(pooled) - 1 >= -0.10:  # within the threshold (or better): passes
                    continue
                runs_test += bool(stats.differs(tonight, pooled, 0.05)[0])
                means = [float(np.mean(one)) for one in nights]
                prediction += stats.prediction_p(float(np.mean(tonight)), means, increased=False) <= 0.05
            slower = f"{1 - factor:.0%}"
            print(f"| {spread:.0%} | {slower} | {runs_test / draws:.1%} | {prediction / draws:.1%} |", flush=True)


TASKS = ("cipher", "r1", "r2")
ITEMS = 100


def marks(outcomes: np.ndarray) -> str:
    """Per-item outcomes as a run record writes them ("1" right, "0" wrong)."""
    return "".join("1" if x else "0" for x in outcomes)


def record(seed: int, outcomes: dict[str, tuple[np.ndarray, np.ndarray]]) -> SimpleNamespace:
    """A run with per-item outcomes (after, before) per task and the metrics they give."""
    items, metrics = {}, {}
    for task, (after, before) in outcomes.items():
        items[task] = item_record([f"{task}-{i}" for i in range(len(after))], marks(before), marks(after))
        metrics[f"accuracy.{task}"] = SimpleNamespace(value=float(after.mean()), unit="acc")
        if task != "cipher":
            metrics[f"forgetting.{task}"] = SimpleNamespace(value=float(after.mean() - before.mean()), unit="acc")
    return SimpleNamespace(seed=seed, items=items, metrics=metrics, started_at="", run_id=str(seed), status="ok")


def equal_strategies(rng: np.random.Generator, strategies: int, seeds: int) -> dict[str, list[SimpleNamespace]]:
    """Strategies with no true difference on the same seeds (the learned task `cipher`, retained r1 and r2):
    seed k shifts every strategy and task alike (it sets the data order they all train on), each strategy
    adds a wobble of its own. tests/test_seed_tails.py draws from it too."""
    logits = {task: np.log((p := rng.beta(2, 2, ITEMS)) / (1 - p)) for task in TASKS}
    before = {task: rng.random(ITEMS) < 1 / (1 + np.exp(-logits[task])) for task in TASKS}
    shared = rng.normal(0, 0.3, seeds)
    keyed = {}
    for strategy in range(strategies):
        runs = []
        for seed in range(seeds):
            shift = shared[seed] + rng.normal(0, 0.1)
            chance = {t: 1 / (1 + np.exp(-(logits[t] + shift))) for t in TASKS}
            runs.append(record(seed, {t: (rng.random(ITEMS) < chance[t], before[t]) for t in TASKS}))
        keyed[f"s{strategy}"] = runs
    return keyed


def report(draws: int) -> None:
    rng = np.random.default_rng(11)

    def one_report(strategies: int, seeds: int) -> bool:
        keyed = equal_strategies(rng, strategies, seeds)
        _, _, pairs = table_pairs(keyed, "cipher", ["r1", "r2"])
        family = decide(keyed, pairs)
        return any(family.verdict(a, b, metric).beyond for a, b, metric in pairs)

    print("| strategies x seeds | reports with a row beyond noise |\n|---|---|")
    for strategies, seeds in ((2, 2), (2, 3), (4, 3), (6, 3), (4, 5), (6, 5)):
        hits = sum(one_report(strategies, seeds) for _ in range(draws))
        print(f"| {strategies} x {seeds} | {hits / draws:.1%} ({hits} of {draws}) |", flush=True)


def nightly(folder: Path) -> None:
    from bench.analysis.compare import compare_records
    from bench.records.store import load_records

    def repeats(condition: str) -> list[list]:
        found = sorted((folder / condition).glob("rep-*"), key=lambda path: int(path.name.removeprefix("rep-")))
        return [list(load_records(path)) for path in found]

    baseline, slow = repeats("baseline"), repeats("slow-step")
    if not baseline:
        raise SystemExit(f"nightly: no baseline/rep-* folders under {folder}")
    for window in (7, 4):
        alarms = [
            compare_records([r for rep in baseline[i - window : i] for r in rep], baseline[i]).failed
            for i in range(window, len(baseline))
        ]
        caught = []
        for index, repeat in enumerate(slow):
            pool = [r for rep in baseline[max(0, index + 1 - window) : index + 1] for r in rep]
            if len({r.session for r in pool}) >= 2:
                caught.append(compare_records(pool, repeat).failed)
        found = f"A/A exit 1 in {sum(alarms)} of {len(alarms)}; slow-step caught {sum(caught)} of {len(caught)}"
        print(f"window {window}: {found}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("which", choices=("sessions", "report", "nightly"))
    parser.add_argument("folder", nargs="?", type=Path, help="nightly: the unpacked A/A records")
    parser.add_argument("--draws", type=int, default=None, help="simulated nights or reports a row")
    args = parser.parse_args()
    if args.draws is not None and args.draws < 1:
        parser.error(f"--draws must be at least 1, not {args.draws}")
    if args.which == "nightly":
        if args.folder is None or not args.folder.is_dir():
            parser.error(f"nightly needs the folder of unpacked A/A records, not {args.folder}")
        nightly(args.folder)
    elif args.which == "sessions":
        sessions(args.draws or 4000)
    else:
        report(args.draws or 1000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
