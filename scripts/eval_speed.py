"""Evaluation speed, lm-eval's own HFLM path against bench's ContinuationScorer, on the same model,
items and answers (docs/performance.md). Writes JSON beside the other benchmarks.

    python scripts/eval_speed.py [--items 40] [--tasks boolq arc-easy] [--out results/benchmarks/...]

Each path scores every task once after one warm-up pass on a few items; the per-item outcomes of
the two paths must be identical (the script exits 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench.evaluate.accuracy import evaluate_accuracy
from bench.measure import env
from bench.models.load import load_model
from bench.spec import ModelSpec, TaskSpec
from bench.tasks import load_task


def requests_of(tasks) -> int:
    return sum(len(item.choices) for task in tasks for item in task.eval)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--tasks", nargs="+", default=["boolq", "arc-easy", "hellaswag"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    loaded = load_model(ModelSpec(packaged="smollm2-135m-instruct"), "cpu", lambda message: None)
    torch.set_num_threads(env.available_cores())
    tasks = [load_task(TaskSpec(name=name, source="olmo", eval_limit=args.items)) for name in args.tasks]
    warm = [load_task(TaskSpec(name=name, source="olmo", eval_limit=2)) for name in args.tasks]
    count, runs = requests_of(tasks), {}
    for fast in (False, True):
        evaluate_accuracy(
            loaded.model, loaded.tokenizer, warm, Path(f"/tmp/eval-speed-warm-{fast}"), args.batch_size, fast
        )
        start = time.perf_counter()
        scores = evaluate_accuracy(
            loaded.model, loaded.tokenizer, tasks, Path(f"/tmp/eval-speed-{fast}"), args.batch_size, fast
        )
        seconds = time.perf_counter() - start
        runs["bench" if fast else "lm-eval"] = {
            "seconds": round(seconds, 2),
            "requests_per_s": round(count / seconds, 2),
            "accuracy": {name: score.acc for name, score in scores.items()},
            "correct": {name: score.correct for name, score in scores.items()},
        }
        print(f"{'bench' if fast else 'lm-eval'}: {count} requests in {seconds:.1f} s = {count / seconds:.2f}/s")
    same = runs["bench"]["correct"] == runs["lm-eval"]["correct"]
    speedup = runs["lm-eval"]["seconds"] / runs["bench"]["seconds"]
    print(f"speed-up {speedup:.2f}x; per-item outcomes identical: {same}")
    out = args.out or Path("results/benchmarks") / env.hardware().fingerprint() / "eval-speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": "smollm2-135m-instruct",
        "tasks": args.tasks,
        "items_per_task": args.items,
        "requests": count,
        "batch_size": args.batch_size,
        "hardware": env.hardware().model_dump(),
        "runs": runs,
        "speedup": round(speedup, 2),
        "identical": same,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {out}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
