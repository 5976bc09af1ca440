"""Evaluation speed on the same model, items and answers (docs/performance.md): lm-eval's own HFLM
path, bench's ContinuationScorer with one row per input (`unpacked`), and with the choices of an
item packed into one row (`bench`, the default path), and the positions the transformer body computes
on each (the speed-up follows their ratio). Writes JSON beside the other benchmarks.

    python scripts/eval_speed.py [--items 40] [--tasks boolq arc-easy] [--rounds 3] [--out ...]

Each path scores every task once per round (rounds interleave the paths, so a slow moment of the
machine falls on all of them) after one warm-up pass on a few items; the median round counts. The
per-item outcomes of every path must be identical (the script exits 1 otherwise).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from bench.evaluate.accuracy import evaluate_accuracy
from bench.evaluate.scorer import ContinuationScorer
from bench.measure import env
from bench.models.load import load_model
from bench.spec import ModelSpec, TaskSpec
from bench.tasks import load_task


def requests_of(tasks) -> int:
    return sum(len(item.choices) for task in tasks for item in task.eval)


def count_positions(model, tokenizer, tasks, folder: Path, batch_size: int) -> dict:
    """Positions the transformer body computes for these requests: every request's context and
    choice, identical inputs once (lm-eval runs an item's one-token choices once), and packed (each
    context once, each choice once). Counted on the requests lm-eval builds; nothing is scored."""
    counted: dict = {}

    def count(self, requests, disable_tqdm=False, override_bs=None):
        counted["every request"] = sum(len(context) + len(choice) - 1 for _, context, choice in requests)
        for name, pack in (("identical inputs once", False), ("packed", True)):
            self.pack = pack
            counted[name] = sum(len(row.tokens) for row in self._rows(requests))
        del self.pack
        return [(0.0, False)] * len(requests)

    real = ContinuationScorer._loglikelihood_tokens
    ContinuationScorer._loglikelihood_tokens = count
    try:
        evaluate_accuracy(model, tokenizer, tasks, folder, batch_size, True)
    finally:
        ContinuationScorer._loglikelihood_tokens = real
    return counted


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--tasks", nargs="+", default=["boolq", "arc-easy", "hellaswag"])
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    import torch

    loaded = load_model(ModelSpec(packaged="smollm2-135m-instruct"), "cpu", lambda message: None)
    torch.set_num_threads(env.available_cores())
    tasks = [load_task(TaskSpec(name=name, source="olmo", eval_limit=args.items)) for name in args.tasks]
    warm = [load_task(TaskSpec(name=name, source="olmo", eval_limit=2)) for name in args.tasks]
    count = requests_of(tasks)
    paths = {"lm-eval": (False, False), "unpacked": (True, False), "bench": (True, True)}  # (fast, pack)
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    runs: dict[str, dict] = {}
    for round_number in range(args.rounds):
        for name, (fast, pack) in paths.items():
            ContinuationScorer.pack = pack
            folder = Path(f"/tmp/eval-speed-{name}")
            if round_number == 0:
                evaluate_accuracy(loaded.model, loaded.tokenizer, warm, folder / "warm", args.batch_size, fast)
            start = time.perf_counter()
            scores = evaluate_accuracy(loaded.model, loaded.tokenizer, tasks, folder, args.batch_size, fast)
            seconds[name].append(time.perf_counter() - start)
            runs[name] = {
                "accuracy": {task: score.acc for task, score in scores.items()},
                "correct": {task: score.correct for task, score in scores.items()},
            }
            print(f"round {round_number + 1} {name}: {count} requests in {seconds[name][-1]:.1f} s")
    ContinuationScorer.pack = True
    for name in paths:
        median = statistics.median(seconds[name])
        runs[name] |= {"seconds": [round(s, 2) for s in seconds[name]], "requests_per_s": round(count / median, 2)}
        print(f"{name}: {runs[name]['requests_per_s']:.2f} requests/s (median of {args.rounds})")
    same = all(runs[name]["correct"] == runs["lm-eval"]["correct"] for name in paths)
    reference = statistics.median(seconds["lm-eval"])
    speedup = {name: round(reference / statistics.median(seconds[name]), 2) for name in paths}
    print(f"speed-up against lm-eval: {speedup}; per-item outcomes identical: {same}")
    folder = Path("/tmp/eval-speed-positions")
    positions = count_positions(loaded.model, loaded.tokenizer, tasks, folder, args.batch_size)
    print(f"positions the body computes: {positions}")
    out = args.out or Path("results/benchmarks") / env.hardware().fingerprint() / "eval-speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "model": "smollm2-135m-instruct",
        "tasks": args.tasks,
        "items_per_task": args.items,
        "requests": count,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "hardware": env.hardware().model_dump(),
        "runs": runs,
        "speedup": speedup,
        "identical": same,
        "positions": positions,
    }
    out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"written: {out}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
