"""How fast is this machine right now? A fixed reference workload, timed beside every run.

A shared virtual machine changes speed under us: in the A/A experiment the same commit's training
throughput fell about 10% over six quiet minutes (no steal, no other process), enough to fail a 10%
gate. Nothing in the run's own numbers can tell that from a slower commit. So every run also times
this workload, which never changes: a seeded two-layer MLP trained with hand-written SGD (no
torch.optim, no transformers, no peft: none of the code a suite compares), with the run's threads.
`bench compare` divides timings by it (docs/statistics.md), so a machine that is 10% slower tonight
is not a regression, while a slower optimizer, model or library still is.
"""

from __future__ import annotations

import statistics

from bench.measure.timing import clock

WIDTH, BATCH, ITERATIONS, REPEATS = 64, 256, 20, 7  # ~0.35 ms an iteration: ~50 ms in all (AMD EPYC, 1 thread)


def reference_seconds() -> float:
    """Median seconds of ITERATIONS training iterations of the fixed workload, over REPEATS repeats."""
    import torch

    generator = torch.Generator().manual_seed(0)
    first = torch.randn(WIDTH, 2 * WIDTH, generator=generator).mul_(0.1).requires_grad_()
    second = torch.randn(2 * WIDTH, WIDTH, generator=generator).mul_(0.1).requires_grad_()
    inputs = torch.randn(BATCH, WIDTH, generator=generator)

    def iteration() -> None:
        loss = (torch.tanh(inputs @ first) @ second).pow(2).mean()
        loss.backward()
        with torch.no_grad():
            for weight in (first, second):
                weight -= 1e-3 * weight.grad
                weight.grad = None

    iteration()  # warm-up: allocator and dispatcher caches
    times = []
    for _ in range(REPEATS):
        start = clock()
        for _ in range(ITERATIONS):
            iteration()
        times.append(clock() - start)
    return statistics.median(times)
