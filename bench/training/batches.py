"""Make an epoch's training batches before its steps, so that the steps measure training alone.

A bare PyTorch loop is handed its batches; a trainer makes each one inside the step: rows read from
the Arrow table, TRL's collator pads them and builds the completion mask. On tiny-llama at 8 x 64
that was 0.7-0.9 ms of a 9 ms step, the whole gap between the harness and a bare loop
(docs/performance.md), and it is the same for every strategy, so it only dilutes their differences.
`MadeAhead` wraps the trainer's own prepared DataLoader: when the trainer starts an epoch, it draws
that epoch's batches (as many as the run still needs, up to `max_bytes`) from the same iterator, then
serves them, then goes on lazily if there is more. Same loader, same sampler asked at the same moment,
same batches in the same order; the time it took is kept (`seconds`) and recorded with the run.
Hand-written: DataLoader's own prefetching needs worker processes, which cost more than the batches
on a small model (tried: 0.9 -> 1.6 ms a step).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any

MAX_BYTES = 256 * 2**20  # batches held at once; beyond this the rest of the epoch is made step by step


def batch_bytes(batch: Any) -> int:
    values = batch.values() if isinstance(batch, dict) else ()
    return sum(value.numel() * value.element_size() for value in values if hasattr(value, "element_size"))


class MadeAhead:
    """Iterating it (one epoch) yields the wrapped loader's batches, the first ones made before the first
    is served. `needed`: batches the run will take in all (steps x gradient accumulation)."""

    def __init__(self, loader: Any, needed: int, max_bytes: int = MAX_BYTES) -> None:
        self.loader = loader
        self.needed = needed
        self.max_bytes = max_bytes
        self.served = 0
        self.seconds = 0.0

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:  # set_epoch, sampler, batch_size, dataset, ...
        return getattr(self.loader, name)

    def __iter__(self) -> Iterator[Any]:
        started = time.perf_counter()
        iterator = iter(self.loader)
        made: deque[Any] = deque()
        held = 0
        # Never the epoch's last batch: accelerate's loader marks the end of its data when it hands that
        # one out (GradientState.end_of_dataloader, read by accelerate's gradient accumulation); made
        # lazily, the mark comes when the trainer reaches that batch, as without this class.
        ahead = min(self.needed - self.served, self._length() - 1)
        while len(made) < ahead and held < self.max_bytes:
            batch = next(iterator, None)
            if batch is None:
                break
            made.append(batch)
            held += batch_bytes(batch)
        self.seconds += time.perf_counter() - started
        while made:  # released as served
            self.served += 1
            yield made.popleft()
        for batch in iterator:
            self.served += 1
            yield batch

    def _length(self) -> int:
        try:
            return len(self.loader)
        except TypeError:  # an iterable dataset of unknown length: nothing is made ahead
            return 0
