"""Timers and sample summaries. CUDA work is synchronised before each clock read."""

from __future__ import annotations

import math
import sys
import time

from bench.records.results import TimingStats


def cuda_in_use() -> bool:
    """Whether this process has started CUDA: only then can GPU work be pending or a CUDA peak mean
    anything. A CPU run on a GPU machine never starts it (its first synchronize would: a CUDA context of
    hundreds of MiB in the run's host memory and seconds in its first step)."""
    torch = sys.modules.get("torch")  # never import torch here: only measure what the run uses
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def synchronize() -> None:
    if cuda_in_use():
        sys.modules["torch"].cuda.synchronize()


def clock() -> float:
    """A monotonic time in seconds, taken after pending GPU work has finished."""
    synchronize()
    return time.perf_counter()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    position = (len(sorted_values) - 1) * fraction
    low, high = math.floor(position), math.ceil(position)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)


def summarize(samples: list[float], unit: str, warmup_excluded: int) -> TimingStats:
    if not samples:
        raise ValueError("no timing samples to summarize")
    ordered = sorted(samples)
    return TimingStats(
        unit=unit,
        samples=[round(value, 6) for value in samples],
        warmup_excluded=warmup_excluded,
        mean=sum(samples) / len(samples),
        p50=percentile(ordered, 0.50),
        p90=percentile(ordered, 0.90),
        p99=percentile(ordered, 0.99),
    )
