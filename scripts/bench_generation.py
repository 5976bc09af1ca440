"""Interleaved speed benchmark: the harness's greedy generation (bench/evaluate/generation.py) against
lm-eval's own HFLM `generate_until`, on the same GSM8K items and the same model (SmolLM2-135M-Instruct,
packaged), at each batch size given. Each repeat runs every (path, batch size) once, the order reversed on
every other repeat, so that a drift of the machine's speed falls on both paths alike; the speed-up is the
median over repeats of each repeat's ratio. Every run's strings are checked to be identical.

    PYTHONPATH=. HF_HUB_OFFLINE=1 python scripts/bench_generation.py --items 32 --max-gen-toks 64 \
        --batch-sizes 1,4,16 --repeats 3 [--threads 1] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--max-gen-toks", type=int, default=64)
    parser.add_argument("--batch-sizes", default="1,4,16")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None)
    # 1 by default: on a shared 2-core machine two OpenMP threads spin-wait for a core a neighbour holds
    parser.add_argument("--threads", type=int, default=1)
    # ours: pooled (bench/evaluate/generation_pool.py, what the harness uses) or greedy (per-batch only)
    parser.add_argument("--ours", choices=["pooled", "greedy"], default="pooled")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from bench.evaluate.generation import GreedyGenerator
    from bench.evaluate.generation_pool import PooledGenerator
    from bench.models.load import load_model
    from bench.spec import ModelSpec, TaskSpec
    from bench.tasks import load_task

    loaded = load_model(ModelSpec(packaged="smollm2-135m-instruct"), "cpu", lambda message: None)
    model, tokenizer = loaded.model.eval(), loaded.tokenizer
    task = load_task(TaskSpec(name="gsm8k", source="olmo", eval_limit=args.items))
    settings = task.generation
    assert settings is not None
    kwargs = {"until": list(settings.until), "max_gen_toks": args.max_gen_toks, "do_sample": False, "temperature": 0.0}
    requests = [
        Instance("generate_until", {}, (item.context, dict(kwargs)), index) for index, item in enumerate(task.eval)
    ]
    sizes = [int(size) for size in args.batch_sizes.split(",")]
    paths: dict[str, Any] = {"lm-eval": HFLM, "ours": PooledGenerator if args.ours == "pooled" else GreedyGenerator}
    runs = [(path, size) for size in sizes for path in paths]
    seconds: dict[tuple[str, int], list[float]] = {run: [] for run in runs}
    outputs: dict[tuple[str, int], list[str]] = {}
    print(
        f"{len(requests)} GSM8K items, max_gen_toks {args.max_gen_toks}, stops {settings.until}, "
        f"{torch.get_num_threads()} torch threads, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    for repeat in range(args.repeats):
        for path, size in runs if repeat % 2 == 0 else list(reversed(runs)):
            language_model = paths[path](pretrained=model, tokenizer=tokenizer, batch_size=size)
            start = time.perf_counter()
            texts = language_model.generate_until(requests, disable_tqdm=True)
            seconds[(path, size)].append(time.perf_counter() - start)
            if outputs.setdefault((path, size), texts) != texts:
                raise SystemExit(f"{path} at batch {size} wrote different strings on repeat {repeat}")
            print(f"repeat {repeat} {path:8} batch {size:3} {seconds[(path, size)][-1]:7.1f} s", flush=True)
    reference = outputs[("lm-eval", sizes[0])]
    identical = {f"{path}@{size}": texts == reference for (path, size), texts in outputs.items()}
    median = {run: statistics.median(values) for run, values in seconds.items()}
    fastest = min(sizes, key=lambda size: median[("lm-eval", size)])
    ours_best = min(sizes, key=lambda size: median[("ours", size)])

    def speedup(lm_eval_size: int, ours_size: int) -> float:
        ratios = [a / b for a, b in zip(seconds[("lm-eval", lm_eval_size)], seconds[("ours", ours_size)])]
        return statistics.median(ratios)

    tokens = [len(tokenizer(text)["input_ids"]) for text in reference]
    summary = {
        "ours": args.ours,
        "threads": args.threads,
        "items": len(requests),
        "max_gen_toks": args.max_gen_toks,
        "repeats": args.repeats,
        "median_seconds": {f"{path}@{size}": round(value, 2) for (path, size), value in median.items()},
        "lm_eval_fastest_batch": fastest,
        "ours_fastest_batch": ours_best,
        "speedup_same_batch_at_lm_eval_fastest": round(speedup(fastest, fastest), 2),
        "speedup_ours_best_vs_lm_eval_fastest": round(speedup(fastest, ours_best), 2),
        "speedup_at_lm_eval_default_batch_1": round(speedup(1, 1), 2) if 1 in sizes else None,
        "speedup_ours_best_vs_lm_eval_batch_1": round(speedup(1, ours_best), 2) if 1 in sizes else None,
        "identical_strings": identical,
        "generated_tokens_after_cut": {"mean": round(statistics.mean(tokens), 1), "max": max(tokens)},
        "load_average_end": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(summary, indent=1))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
