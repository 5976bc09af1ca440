"""bench.estimate against two published GPU memory measurements (docs/memory.md redoes this table).

    python scripts/estimate_published.py

1. torchtune README, "Optimization flags" table, row "+ Packed Dataset": full fine-tuning of
   Llama 3.2 3B, bf16, batch 2, every sequence packed to 4,096 tokens, AdamW, no activation
   checkpointing, A100: 60.0 GiB "Peak Memory Active".
2. LitGPT tutorials/resource-tables.md: LoRA (r=8, query and value) on Llama 2 7B, bf16-true,
   micro-batch 1, A100-SXM4-40GB; the longest Alpaca example is 1,304 tokens and is forced into
   the first batch: 21.30 GB, torch.cuda.max_memory_allocated() / 1e9.
"""

from __future__ import annotations

from pathlib import Path

from bench.estimate import config_from_file, estimate_run

CONFIGS = Path(__file__).resolve().parents[1] / "suites" / "model-configs"
PUBLISHED = [
    {
        "source": "torchtune README, Optimization flags, '+ Packed Dataset'",
        "config": "llama-3.2-3b",
        "strategy": "full",
        "options": {},
        "batch": 2,
        "tokens": 4096,
        "published_bytes": 60.0 * 2**30,
        "published": "60.0 GiB (peak memory active)",
    },
    {
        "source": "LitGPT resource-tables.md, Llama 2 7B LoRA, bf16-true, micro-batch 1",
        "config": "llama-2-7b",
        "strategy": "lora",
        "options": {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"]},
        "batch": 1,
        "tokens": 1304,
        "published_bytes": 21.30e9,
        "published": "21.30 GB (max_memory_allocated / 1e9)",
    },
]


def main() -> None:
    print("| measurement | estimate (GiB): weights + gradients + optimizer + activations | published | error |")
    print("|---|---|---|---|")
    for case in PUBLISHED:
        estimate = estimate_run(
            config_from_file(CONFIGS / case["config"]),
            dtype="bfloat16",
            strategy=case["strategy"],
            options=case["options"],
            batch_size=case["batch"],
            tokens=case["tokens"],
        )
        mib = estimate.components.mib()
        weights = (mib["weights_trainable"] or 0) + (mib["weights_frozen"] or 0)
        parts = f"{weights / 1024:.2f} + {mib['gradients'] / 1024:.2f} + {mib['optimizer'] / 1024:.2f}"
        parts += f" + {mib['activations'] / 1024:.2f} = **{mib['total'] / 1024:.2f}**"
        error = 100 * (estimate.components.total() / case["published_bytes"] - 1)
        print(f"| {case['source']} | {parts} | {case['published']} | {error:+.1f}% |")


if __name__ == "__main__":
    main()
