"""Batches made ahead of their steps (bench/training/batches.py): the same batches in the same order, and the
same training, as batches made inside each step."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler

import bench.training.sft
from bench.training.batches import MadeAhead, batch_bytes
from tests.conftest import train_tiny_lora


def _loader(seed: int = 0) -> DataLoader:
    rows = [{"x": torch.tensor([i, i])} for i in range(20)]
    sampler = RandomSampler(rows, generator=torch.Generator().manual_seed(seed))
    return DataLoader(rows, batch_size=3, sampler=sampler, drop_last=True)


def _epochs(loader, epochs: int, needed: int) -> list[list[int]]:
    """What a trainer sees: `epochs` passes, stopping once `needed` batches were served."""
    served, seen = 0, []
    for _ in range(epochs):
        epoch = []
        for batch in loader:
            epoch.append(batch["x"][:, 0].tolist())
            served += 1
            if served == needed:
                break
        seen.append(epoch)
    return seen


@pytest.mark.parametrize("max_bytes", [2**30, 2 * 3 * 2 * 8])  # all held, or two batches held then lazy
def test_made_ahead_serves_the_loaders_batches_in_its_order(max_bytes: int):
    plain = _epochs(_loader(), 3, 14)
    ahead = MadeAhead(_loader(), needed=14, max_bytes=max_bytes)
    assert _epochs(ahead, 3, 14) == plain
    assert [len(epoch) for epoch in plain] == [6, 6, 2]  # the last epoch stops where the run does
    assert ahead.served == 14 and len(ahead) == 6 and ahead.batch_size == 3  # the rest is the loader's


def test_batch_bytes_counts_the_tensors():
    assert batch_bytes({"a": torch.zeros(2, 3, dtype=torch.int64), "b": torch.zeros(4, dtype=torch.bool)}) == 52


def _loss_curve(tmp_path: Path, ahead: bool, monkeypatch) -> list[tuple[int, float]]:
    made = bench.training.sft._lean_sft_trainer_class

    monkeypatch.setattr(
        bench.training.sft, "_lean_sft_trainer_class", lambda: type("T", (made(),), {"make_batches_ahead": ahead})
    )
    outcome = train_tiny_lora(tmp_path / str(ahead), steps=10)  # 10 x 4 x 2 examples: 3+ epochs of 24
    assert (outcome.batches_ahead_seconds is not None) == ahead
    return outcome.losses


def test_training_on_batches_made_ahead_is_identical(tmp_path: Path, tiny_folder: Path, monkeypatch):
    ahead = _loss_curve(tmp_path, True, monkeypatch)
    monkeypatch.undo()
    inside = _loss_curve(tmp_path, False, monkeypatch)
    assert len(ahead) == 10 and ahead == inside
