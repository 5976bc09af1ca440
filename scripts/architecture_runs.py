"""`bench run` of every supervised strategy on tiny random configs of the architectures
tests/tiny_architectures.py names: what trains, what is skipped and why, what fails, and each record's
estimate against its counted components. The tests prepare, estimate and train a few of these pairs;
this runs all of them end to end (about 10 s an architecture on 2 cores, 44 architectures).

    python scripts/architecture_runs.py [--only gpt2,mixtral] [--alignment] [--keep DIR]

Each architecture gets a config folder (width 64, 2 layers, SmolLM2's tokenizer, whose 49,152 ids set the
vocabulary) and a suite: cipher, 3 steps of 2 x 32 tokens, accuracy off, one seed. `--alignment` runs DPO
(with a LoRA adapter and in full) and RLHF (LoRA, two generations a prompt) instead, on preference pairs
made from the task (about 15 s an architecture).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STRATEGIES = ["full", "lora", "qlora", "dora", "ia3", "prompt", "prefix", "bitfit", "adapter", "vera", "loha", "freeze"]
ALIGNMENT = {
    "dpo-lora": {"dpo": {"label": "dpo-lora", "lora": {"r": 4, "alpha": 8}}},
    "dpo-full": {"dpo": {"label": "dpo-full"}},
    "rlhf-lora": {"rlhf": {"label": "rlhf-lora", "num_generations": 2, "lora": {"r": 4, "alpha": 8}}},
}


def suite_for(architecture: str, folder: Path, alignment: bool = False) -> dict:
    from transformers import AutoConfig

    from tests.tiny_architectures import ARCHITECTURES

    shape = {**ARCHITECTURES[architecture]}
    for wide in ("hidden_size", "n_embd"):  # narrower than the tests' 128: the vocabulary is 49,152 here
        if wide in shape:
            shape[wide] = 64
    if "word_embed_proj_dim" in shape:
        shape["word_embed_proj_dim"] = 64
    if "head_dim" in shape:
        shape["head_dim"] = 16
    AutoConfig.for_model(architecture, vocab_size=49152, **shape).save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(ROOT / "suites" / "model-configs" / "smollm2-135m" / name, folder)
    suite = {
        "name": f"arch-{architecture}" + ("-alignment" if alignment else ""),
        "model": {"config": str(folder), "dtype": "float32"},
        "task": {"name": "cipher", "train_size": 64},
        "budget": {"steps": 3, "batch_size": 2, "seq_len": 32},
        "seeds": [0],
        "measure": {"accuracy": False, "latency_repeats": 1, "latency_new_tokens": 4, "latency_warmup": 0},
        "strategies": STRATEGIES,
    }
    if alignment:
        suite["preference"] = {"from_task": True, "train_size": 64, "heldout_size": 8}
        suite["strategies"] = list(ALIGNMENT.values())
    return suite


def main() -> int:
    from tests.tiny_architectures import ARCHITECTURES

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated architectures (model types)")
    parser.add_argument("--alignment", action="store_true", help="DPO and RLHF instead of the supervised strategies")
    parser.add_argument(
        "--keep", type=Path, help="where the configs, suites and records go (default: a new temporary folder)"
    )
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else list(ARCHITECTURES)
    unknown = [name for name in chosen if name not in ARCHITECTURES]
    if unknown:
        print(f"--only: unknown {unknown}; known: {', '.join(ARCHITECTURES)}", file=sys.stderr)
        return 2
    work = args.keep or Path(tempfile.mkdtemp(prefix="architecture-runs-"))
    counts = {"ok": 0, "skipped": 0, "failed": 0}
    columns = list(ALIGNMENT) if args.alignment else STRATEGIES
    print("| architecture | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for architecture in chosen:
        folder = work / "configs" / architecture
        folder.mkdir(parents=True, exist_ok=True)
        name = f"arch-{architecture}" + ("-alignment" if args.alignment else "")
        suite = work / f"{name}.yaml"
        suite.write_text(yaml.safe_dump(suite_for(architecture, folder, args.alignment), sort_keys=False))
        subprocess.run(
            [sys.executable, "-m", "bench.cli", "run", str(suite), "--results", str(work / "results"), "--no-report"],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        cells = {}
        for path in (work / "results" / name).glob("*/*.json"):
            record = json.loads(path.read_text())
            counts[record["status"]] = counts.get(record["status"], 0) + 1
            error = (record.get("memory") or {}).get("estimate_error_percent")
            if record["status"] == "ok":
                cells[record["label"]] = "no estimate" if error is None else f"{error:+.1f}%"
            else:
                cells[record["label"]] = record["status"]
        print(f"| {architecture} | " + " | ".join(cells.get(name, "-") for name in columns) + " |")
    print(f"\n{sum(counts.values())} runs: " + ", ".join(f"{n} {status}" for status, n in counts.items()))
    print("cells: the record's estimate against its counted components, or the run's status; records in", work)
    return 1 if counts.get("failed") else 0


if __name__ == "__main__":
    sys.exit(main())
