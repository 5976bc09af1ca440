"""The training path against a bare loop, interleaved (docs/performance.md): the variants of
tests/benchmarks/test_training_path.py run one after another within each round, their order turned
round by round, so a slow spell of a shared host falls on all of them. pytest-benchmark runs each
variant's rounds back to back, which on this VM moved ratios by 0.1 between invocations.

    python scripts/training_path.py [--rounds 9] [--shapes smoke full-64] [--strategies full lora] [--out F]

Prints, per shape, each variant's median seconds and the median over rounds of the per-round ratios
(bare / harness, bare-collating / harness, harness-no-trackers / harness: 1.0 means as fast).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.benchmarks.test_training_path import (  # noqa: E402
    SHAPES,
    STRATEGIES,
    VARIANTS,
    make_setting,
    subject_for,
    train_once,
)

RATIOS = {
    "bare / harness": "bare",
    "bare-collating / harness": "bare-collating",
    "trackers off / on": "harness-no-trackers",
}


def measure(setting: dict, strategy: str, rounds: int, name: str) -> dict:
    seconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
    for round_index in range(rounds + 1):  # the first round warms up and is dropped
        order = VARIANTS if round_index % 2 == 0 else VARIANTS[::-1]
        for variant in order:
            subject = subject_for(setting, variant, strategy)
            started = time.perf_counter()
            train_once(setting, variant, subject)
            if round_index:
                seconds[variant].append(time.perf_counter() - started)
    ratios = {
        label: statistics.median(s / h for s, h in zip(seconds[variant], seconds["harness"]))
        for label, variant in RATIOS.items()
    }
    print(f"{name}: " + ", ".join(f"{v} {1000 * statistics.median(s):.0f} ms" for v, s in seconds.items()))
    print(f"{name}: " + ", ".join(f"{label} {value:.3f}" for label, value in ratios.items()))
    return {
        "median_seconds": {v: statistics.median(s) for v, s in seconds.items()},
        "ratios": ratios,
        "seconds": seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    from bench.measure import env
    from bench.models.tiny import ensure_preset

    tiny = ensure_preset("tiny-llama", report=lambda message: None)
    report: dict = {"rounds": args.rounds, "shapes": {}}
    for shape in args.shapes:
        setting = make_setting(shape, tiny, Path(tempfile.mkdtemp(prefix="training-path-")))
        for strategy in args.strategies:
            report["shapes"][f"{shape} {strategy}"] = measure(setting, strategy, args.rounds, f"{shape} {strategy}")
    report["fingerprint"] = env.capture().fingerprint  # after make_setting set torch's threads
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
