"""The embedded base model is one file, the same on every machine: its sha256 is pinned here.

Pretraining is not bit-reproducible across CPUs (AMD EPYC and Intel Xeon built different weights
from the same recipe and seed), so the weights ship with the package. If the recipe changes,
rebuild with `python -m bench.models.tiny build` and update the pins: a conscious, reviewed change
of the base model, which `bench compare` then reports as "base model changed".
"""

from __future__ import annotations

import hashlib

import pytest

from bench.models.load import load_model
from bench.models.tiny import PRESETS, ensure_preset, recipe_key, shipped_folder, shipped_recipe_key
from bench.suite import ModelSpec

WEIGHTS = {  # sha256 of model.safetensors
    "tiny-llama": "95f97e3f6575a0d89ea921482aee04c10875e3c72a809bb7bcf8969faadde9e1",
    "tiny-llama-nobias": "bf29b9c90127fd6b89592f74e0e220eb2c3272eddeb3d6654e9927528c0dec39",
}
TOKENIZER = "00cfe70cfd23e7a5baf996ab2f6c0ee45bf74f2a9eddd9f62ed187fb74e10577"  # both presets share it


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_weights_are_pinned(name: str) -> None:
    folder = shipped_folder(name)
    assert sha256(folder / "model.safetensors") == WEIGHTS[name]
    assert sha256(folder / "tokenizer.json") == TOKENIZER


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_shipped_weights_match_the_recipe_in_the_code(name: str) -> None:
    """A change to the recipe without rebuilding the shipped weights would silently build locally."""
    assert shipped_recipe_key(name) == recipe_key(name)
    assert ensure_preset(name, report=lambda message: pytest.fail(f"built locally: {message}")) == shipped_folder(name)


def test_records_name_the_base_weights() -> None:
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)
    assert loaded.info["sha256"] == WEIGHTS["tiny-llama"]
    assert loaded.info["folder"] == str(shipped_folder("tiny-llama"))
