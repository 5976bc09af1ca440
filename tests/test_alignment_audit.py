"""Alignment audit: what DPO and RLHF build before they train, on the tiny preset (seconds each)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from bench.models.load import load_model
from bench.strategies import STRATEGIES, PrepareContext
from bench.suite import Budget, ModelSpec, Training
from bench.tasks.preference import build_preference
from bench.training.train import trainer_arguments

BUDGET = Budget(steps=2, batch_size=4, seq_len=16)


@pytest.fixture(scope="module")
def config_folder(tmp_path_factory) -> Path:
    """A `model.config` folder: the tiny preset's config and tokenizer, no weights (random initialisation)."""
    from bench.models.tiny import ensure_preset

    folder = tmp_path_factory.mktemp("config") / "tiny"
    folder.mkdir()
    for file in Path(ensure_preset("tiny-llama", lambda message: None)).iterdir():
        if file.is_file() and not file.name.endswith((".safetensors", ".bin")):
            shutil.copy(file, folder / file.name)
    return folder


def _prepared(folder: Path, name: str, options: dict):
    loaded = load_model(ModelSpec(config=str(folder)), "cpu", report=lambda message: None)
    strategy = STRATEGIES.get(name)
    validated = strategy.Options(**options)
    initial = {key: value.clone() for key, value in loaded.model.state_dict().items()}
    model = strategy.prepare(loaded.model, validated, PrepareContext(loaded.tokenizer, BUDGET, 0, "cpu"))
    return model, loaded.tokenizer, validated, initial


def _arguments(tmp_path: Path, learning_rate: float) -> dict:
    return trainer_arguments(BUDGET, Training(), learning_rate, 0, "cpu", tmp_path)


def test_full_dpo_on_a_model_from_config_uses_the_policy_as_reference(config_folder: Path, tmp_path: Path):
    """Before: TRL rebuilt the reference from the config folder, which has no weights: OSError, run failed."""
    from bench.training.alignment import dpo_trainer

    model, tokenizer, options, initial = _prepared(config_folder, "dpo", {"learning_rate": 1e-3})
    trainer = dpo_trainer(
        model, tokenizer, None, _arguments(tmp_path, 1e-3), BUDGET,
        options=options, preference=build_preference("cipher", 16, 4), artefacts={},
    )  # fmt: skip
    reference = trainer.ref_model.state_dict()
    assert all(torch.equal(reference[key], value) for key, value in initial.items())
    assert not any(parameter.requires_grad for parameter in trainer.ref_model.parameters())


def test_rlhf_reward_model_on_a_model_from_config_copies_the_policys_base(config_folder: Path, tmp_path: Path):
    """Before: the reward model was loaded from the config folder: OSError, run failed. LoRA policy: the
    reward model's backbone is the policy's base weights (the adapter left out)."""
    from bench.training.alignment import rlhf_phases

    lora = {"r": 4, "alpha": 8}
    model, tokenizer, options, initial = _prepared(config_folder, "rlhf", {"num_generations": 2, "lora": lora})
    phases = rlhf_phases(
        model, tokenizer, None, _arguments(tmp_path, 1e-3), BUDGET,
        options=options, preference=build_preference("cipher", 16, 4), artefacts={},
    )  # fmt: skip
    phase, trainer, _ = next(phases)
    assert phase == "reward"
    reward = trainer.model.state_dict()
    backbone = {key: value for key, value in initial.items() if key.startswith("model.")}
    assert backbone and all(torch.equal(reward[key], value) for key, value in backbone.items())


def test_heldout_pairs_that_are_training_pairs_are_not_scored():
    """Before: the align.* metrics scored every 'held-out' pair, though with suites/alignment.yaml's
    preference section 75 of cipher's 100 were exact training pairs (prompt, chosen and rejected)."""
    import json
    from types import SimpleNamespace

    from bench.run.alignment import load_preference_data
    from bench.suite import PreferenceSpec

    spec = SimpleNamespace(
        preference=PreferenceSpec(from_task=True, train_size=1000, heldout_size=100),
        task=SimpleNamespace(name="cipher"),
        seed=0,
    )
    run = SimpleNamespace(spec=spec, budget={})
    data = load_preference_data(run)
    trained = {json.dumps(pair.row(), sort_keys=True) for pair in data.train}
    assert data.heldout and not any(json.dumps(pair.row(), sort_keys=True) in trained for pair in data.heldout)
    recorded = run.budget["preference"]
    assert recorded["heldout"] == len(data.heldout) == 100 - recorded["heldout_dropped_as_training_pairs"]
    assert recorded["heldout_dropped_as_training_pairs"] > 0
