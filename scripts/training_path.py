"""The training path against a bare loop, interleaved (docs/performance.md): the variants of
tests/benchmarks/test_training_path.py run one after another within each round, their order turned
round by round, so a slow spell of a shared host falls on all of them. pytest-benchmark runs each
variant's rounds back to back, which on this VM moved ratios by 0.1 between invocations.

    python scripts/training_path.py [--rounds 9] [--shapes smoke full-64] [--strategies full lora] [--out F]
    python scripts/training_path.py --device cuda --shapes llama-1b-1024 --variants bare harness --rounds 3

Prints, per shape, each variant's median seconds and the median over rounds of the per-round ratios
(bare / harness, bare-collating / harness, harness-no-trackers / harness: 1.0 means as fast). On CUDA
the clock stops after a synchronize, and each variant's median tokens/s and MFU are in the JSON too
(bench/measure/flops.py; the bare loop's MFU is the ceiling the harness is held to). `--model-config`
puts another config's model (random weights) in a shape with one: a tiny one tests this on CPU.
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
    ALL_SHAPES,
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


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _release(device: str) -> None:
    """Not timed: the last subject's model, gradients and optimizer state go before the next is made."""
    import gc

    gc.collect()
    if device.startswith("cuda"):
        import torch

        torch.cuda.empty_cache()


def measure(setting: dict, strategy: str, rounds: int, name: str, variants: list[str]) -> dict:
    device = setting.get("device", "cpu")
    seconds: dict[str, list[float]] = {variant: [] for variant in variants}
    for round_index in range(rounds + 1):  # the first round warms up and is dropped
        order = variants if round_index % 2 == 0 else variants[::-1]
        for variant in order:
            subject = subject_for(setting, variant, strategy)
            _synchronize(device)
            started = time.perf_counter()
            train_once(setting, variant, subject)
            _synchronize(device)
            if round_index:
                seconds[variant].append(time.perf_counter() - started)
            del subject
            _release(device)
    ratios = {
        label: statistics.median(s / h for s, h in zip(seconds[variant], seconds["harness"]))
        for label, variant in RATIOS.items()
        if variant in seconds
    }
    print(f"{name}: " + ", ".join(f"{v} {1000 * statistics.median(s):.0f} ms" for v, s in seconds.items()))
    print(f"{name}: " + ", ".join(f"{label} {value:.3f}" for label, value in ratios.items()))
    return {
        "median_seconds": {v: statistics.median(s) for v, s in seconds.items()},
        "ratios": ratios,
        "seconds": seconds,
        **throughput(setting, strategy, {v: statistics.median(s) for v, s in seconds.items()}),
    }


def throughput(setting: dict, strategy: str, median_seconds: dict[str, float]) -> dict:
    """Each variant's tokens/s (non-padding tokens of the same batches) and MFU on this device."""
    from bench.measure.flops import flops_per_token, mfu_metrics

    tokens = sum(int(batch["attention_mask"].sum()) for batch in setting["batches"])
    rows = sum(int(batch["attention_mask"].shape[0]) for batch in setting["batches"])
    model = subject_for(setting, "bare", strategy)  # the weights each variant trains, frozen or not
    flops = flops_per_token(model, tokens / rows)
    del model
    _release(setting.get("device", "cpu"))
    device_name, dtype = _device_name(setting.get("device", "cpu")), str(setting["model"].dtype).removeprefix("torch.")
    out: dict = {"tokens": tokens, "tokens_per_s": {}, "mfu": {}, "mfu_reason": None}
    for variant, seconds in median_seconds.items():
        metrics, info = mfu_metrics(flops, tokens / seconds, device_name, dtype)
        out["tokens_per_s"][variant] = tokens / seconds
        out["mfu"][variant] = metrics["train.mfu"].value
        out["mfu_reason"] = metrics["train.mfu"].reason
    out["flops"] = {
        key: info[key] for key in ("trainable_weights", "frozen_weights", "context", "peak_tflops_per_device")
    }
    out["flops_per_token"] = flops.method
    return out


def _device_name(device: str) -> str | None:
    if not device.startswith("cuda"):
        return None
    import torch

    return torch.cuda.get_device_name(torch.device(device))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(ALL_SHAPES))
    parser.add_argument("--strategies", nargs="+", default=STRATEGIES, choices=STRATEGIES)
    parser.add_argument("--variants", nargs="+", default=VARIANTS, choices=VARIANTS)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--model-config", help="a config folder for shapes with a model_config (random weights)")
    parser.add_argument("--steps", type=int, help="optimizer steps per variant and round (default: the shape's)")
    parser.add_argument("--batch-size", type=int, help="sequences per step (default: the shape's)")
    parser.add_argument("--seq-len", type=int, help="tokens per sequence at most (default: the shape's)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if "harness" not in args.variants:
        parser.error("--variants must include harness: every ratio is against it")
    from bench.measure import env
    from bench.models.tiny import ensure_preset

    tiny = ensure_preset("tiny-llama", report=lambda message: None)
    report: dict = {"rounds": args.rounds, "device": args.device, "shapes": {}}
    for shape in args.shapes:
        overrides = {"steps": args.steps, "batch_size": args.batch_size, "seq_len": args.seq_len}
        overrides = {key: value for key, value in overrides.items() if value}
        workdir = Path(tempfile.mkdtemp(prefix="training-path-"))
        setting = make_setting(shape, tiny, workdir, args.device, args.model_config, overrides)
        for strategy in args.strategies:
            name = f"{shape} {strategy}"
            report["shapes"][name] = measure(setting, strategy, args.rounds, name, args.variants)
            report["shapes"][name]["steps"] = len(setting["batches"])
            report["fingerprint"] = env.capture().fingerprint  # after make_setting set torch's threads
            report["device_name"] = _device_name(args.device)
            if args.out:  # after each strategy: a run cut by a time box keeps what it measured
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=1))
        del setting
        _release(args.device)
    return 0


if __name__ == "__main__":
    sys.exit(main())
