"""Which strategies of a learning-and-forgetting result set differ beyond noise (issue 24, item 8).

For the seeds every strategy completed: each strategy's learned-task accuracy and forgetting (per retained
task and the mean) with 95% intervals, then every pair of strategies on the learned task's accuracy and
`forgetting.mean`: the difference, its interval and minimum detectable effect (bench.analysis.items: item
and seed noise, as the report computes them; every strategy ran the same seeds, so seed k of one is paired
with seed k of the other and items within each seed, as bench compare pairs), a two-sided p, and
Benjamini-Hochberg over all the pairs' tests (the family `bench compare` uses). Markdown on stdout.

    PYTHONPATH=. python scripts/forgetting_comparison.py results/smollm2-forgetting-sized/records.tar.xz [--alpha 0.05]

A results folder works as well as an archive (the committed sized run is packed: loose it would take
results/ over its 10 MB budget).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.analysis.items import metric_difference, metric_interval  # noqa: E402
from bench.analysis.stats import benjamini_hochberg  # noqa: E402
from bench.analysis.variance import Interval
from bench.records.results import learned_task, retained_tasks  # noqa: E402
from bench.records.store import load_records  # noqa: E402


def points(value: Interval) -> str:
    return f"{100 * value.mean:+.2f} ({100 * value.low:+.2f} to {100 * value.high:+.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--alpha", type=float, default=0.05)
    args = parser.parse_args()
    records = [r for r in load_records(args.results) if r.status == "ok"]
    by_strategy: dict[str, list] = collections.defaultdict(list)
    for record in records:
        by_strategy[record.label].append(record)
    seeds = set.intersection(*({r.spec["seed"] for r in runs} for runs in by_strategy.values()))
    runs = {s: [r for r in rs if r.spec["seed"] in seeds] for s, rs in sorted(by_strategy.items())}
    task, retained = learned_task(records), retained_tasks(records)
    metrics = [f"accuracy.{task}", *(f"forgetting.{t}" for t in retained), "forgetting.mean"]
    print(f"{len(records)} ok records; seeds every strategy completed: {sorted(seeds)} ({len(seeds)})\n")
    print("| strategy | " + " | ".join(metrics) + " |")
    print("|---|" + "---|" * len(metrics))
    for strategy, chosen in runs.items():
        cells = [metric_interval(chosen, metric) for metric in metrics]  # one strategy: seeds x items
        print(f"| {strategy} | " + " | ".join(points(c) if c else "n/a" for c in cells) + " |")
    print(
        "\npoints, 95% interval (item and seed noise); forgetting = retained accuracy after minus before:"
        " below 0, forgotten; above 0, improved\n"
    )
    tests = []
    for metric in (f"accuracy.{task}", "forgetting.mean"):
        for a, b in itertools.combinations(runs, 2):
            difference = metric_difference(runs[a], runs[b], metric)
            if difference is not None:
                tests.append((metric, f"{a} - {b}", difference))
    q_values = benjamini_hochberg([d.p_value for _, _, d in tests])
    print("| metric | difference | points (95% interval) | MDE | p | q (BH) | verdict |")
    print("|---|---|---|---|---|---|---|")
    for (metric, pair, difference), q in zip(tests, q_values):
        verdict = "beyond noise" if q <= args.alpha else "within noise"
        print(
            f"| {metric} | {pair} | {points(difference)} | {100 * difference.mde:.2f} | "
            f"{difference.p_value:.4f} | {q:.4f} | {verdict} |"
        )
    print(f"\nBenjamini-Hochberg over the {len(tests)} tests above at alpha {args.alpha}.")


if __name__ == "__main__":
    main()
