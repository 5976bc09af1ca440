"""Schema-valid RunResult records built in memory, for the report and comparison tests (no training)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from bench.records.results import Environment, Hardware, LossPoint, Metric, RunResult, TimingQuality, TimingStats
from bench.records.store import ResultStore

TASK, RETAINED = "cipher", ("next-letter", "copy")

# name -> (unit, higher_is_better, typical value per strategy label)
BASE_METRICS: dict[str, tuple[str, bool, dict[str, float]]] = {
    f"accuracy.{TASK}": ("acc", True, {"full": 0.70, "lora": 0.55}),
    f"accuracy_before.{TASK}": ("acc", True, {"full": 0.05, "lora": 0.05}),
    f"gain.{TASK}": ("acc", True, {"full": 0.65, "lora": 0.50}),
    "forgetting.next-letter": ("acc", True, {"full": -0.60, "lora": -0.20}),
    "forgetting.copy": ("acc", True, {"full": -0.40, "lora": -0.10}),
    "forgetting.mean": ("acc", True, {"full": -0.50, "lora": -0.15}),
    "memory.train.host_peak_mib": ("MiB", False, {"full": 650.0, "lora": 600.0}),
    "train.tokens_per_s": ("tokens/s", True, {"full": 2000.0, "lora": 1600.0}),
    "train.seconds": ("s", False, {"full": 1.3, "lora": 1.6}),
    "storage.bytes": ("bytes", False, {"full": 355912.0, "lora": 8000.0}),
    "params.trainable": ("count", False, {"full": 87872.0, "lora": 2048.0}),
    "latency.ttft_ms.p50": ("ms", False, {"full": 9.0, "lora": 13.0}),
    "latency.ttft_ms.p90": ("ms", False, {"full": 10.0, "lora": 15.0}),
    "latency.ttft_ms.p99": ("ms", False, {"full": 11.0, "lora": 17.0}),
}
STRUCTURAL = ("storage.bytes", "params.trainable")  # sizes: the same on every seed, as real runs record them
CUDA_REASON = "no CUDA device on this machine"
BASE_SHA = "95f97e3f6575a0d89ea921482aee04c10875e3c72a809bb7bcf8969faadde9e1"


def spec(label: str, seed: int, learning_rate: float = 3e-3) -> dict[str, Any]:
    return {
        "suite": "smoke",
        "strategy": label,
        "label": label,
        "options": {"learning_rate": learning_rate},
        "seed": seed,
        "model": {"preset": "tiny-llama", "dtype": "float32"},
        "task": {"name": TASK, "source": "synthetic", "train_size": 2000, "eval_limit": 100},
        "retain": [{"name": name, "source": "synthetic", "eval_limit": 100} for name in RETAINED],
        "budget": {"steps": 60, "batch_size": 8, "seq_len": 32},
    }


def timing(unit: str, samples: list[float]) -> TimingStats:
    ordered = sorted(samples)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return TimingStats(
        unit=unit,
        samples=samples,
        warmup_excluded=3,
        mean=sum(samples) / len(samples),
        p50=pick(0.5),
        p90=pick(0.9),
        p99=pick(0.99),
    )


def make_record(
    label: str,
    seed: int,
    *,
    scale: dict[str, float] | None = None,
    values: dict[str, float | None] | None = None,
    drop: tuple[str, ...] = (),
    timings: bool = True,
    status: str = "ok",
    reason: str | None = None,
    learning_rate: float = 3e-3,
    noise: float = 0.01,
    base_sha: str | None = BASE_SHA,
    cpu: str = "Test CPU",
    contaminated: str | None = None,
    reference: float | None = 0.007,
) -> RunResult:
    """One run: typical values times (1 + small seeded noise), `scale`d or replaced by `values` per metric.

    A metric in `values` set to None becomes a missing metric with a reason; names in `drop` are left out.
    Throughput scaling also scales the raw step-time samples (inverse), as a real slowdown would.
    """
    scale, values = scale or {}, values or {}
    rng = random.Random(f"{label}-{seed}")
    metrics: dict[str, Metric] = {}
    for name, (unit, higher, typical) in BASE_METRICS.items():
        if name in drop:
            continue
        if name in values and values[name] is None:
            metrics[name] = Metric.missing(unit, higher, "planted: not measured in this run")
            continue
        wobble = rng.uniform(-noise, noise)  # drawn for every metric, so that the others' draws stay put
        wobble = 0.0 if name in STRUCTURAL else wobble
        value = values.get(name, typical[label] * scale.get(name, 1.0) * (1 + wobble))
        metrics[name] = Metric(value=value, unit=unit, higher_is_better=higher)
    metrics["memory.train.cuda_allocated_peak_mib"] = Metric.missing("MiB", False, CUDA_REASON)
    slow = 1.0 / scale.get("train.tokens_per_s", 1.0)
    latency = scale.get("latency.ttft_ms.p50", 1.0)
    stats = {}
    if timings:
        step = 8 * 32 / BASE_METRICS["train.tokens_per_s"][2][label]
        stats["train.step_seconds"] = timing("s", [step * slow * (1 + rng.uniform(-0.05, 0.05)) for _ in range(40)])
        ttft = BASE_METRICS["latency.ttft_ms.p50"][2][label]
        stats["latency.ttft_ms"] = timing("ms", [ttft * latency * (1 + rng.uniform(-0.1, 0.1)) for _ in range(10)])
    loss = [LossPoint(step=s, loss=3.0 / (1 + 0.1 * s) + rng.uniform(0, 0.05)) for s in range(1, 61)]
    ok = status == "ok"
    return RunResult(
        run_id=f"{label}-{seed}-{learning_rate}",
        suite="smoke",
        strategy=label,
        label=label,
        seed=seed,
        status=status,  # type: ignore[arg-type]
        reason=reason,
        spec=spec(label, seed, learning_rate),
        budget={"resolved": {"steps": 60, "batch_size": 8, "seq_len": 32}, "steps_done": 60},
        metrics=metrics if ok else {},
        timings=stats if ok else {},
        loss_curve=loss if ok else [],
        model={"source": "preset", "name": "tiny-llama", "sha256": base_sha},
        timing_quality=TimingQuality(
            contaminated=bool(contaminated),
            reasons=[contaminated] if contaminated else [],
            reference_seconds=[reference, reference] if reference else [],
        )
        if ok
        else None,
        environment=Environment(
            machine="x86_64-2c-cpu",
            hostname="test",
            platform="Linux",
            python="3.11",
            cpu=cpu,
            cpu_count=2,
            hardware=Hardware(cpu=cpu, cores=2, isa=["avx2"], torch_threads=1),
            packages={"torch": "2.13.0+cpu", "peft": "0.21.2"},
            git_commit="abc1234",
            git_dirty=False,
        ),
        started_at="2026-11-23T17:00:00+00:00",
        finished_at="2026-11-23T17:00:05+00:00",
        wall_seconds=5.0,
    )


def make_set(seeds: tuple[int, ...] = (0, 1, 2), labels: tuple[str, ...] = ("full", "lora"), **kw: Any) -> list:
    return [make_record(label, seed, **kw) for label in labels for seed in seeds]


def store(records: list[RunResult], root: Path) -> Path:
    """Write records like `bench run` does; returns the machine folder."""
    result_store = ResultStore(root)
    for record in records:
        result_store.write(record)
    return root / "smoke" / "x86_64-2c-cpu"
