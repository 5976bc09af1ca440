"""The single training path: full SFT changes the base weights, LoRA leaves them bit-identical."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.models.load import load_model
from bench.strategies import STRATEGIES, PrepareContext
from bench.suite import Budget, ModelSpec, TaskSpec, Training
from bench.tasks import load_task
from bench.training.train import TrainRequest, train

BUDGET = Budget(steps=6, batch_size=8, seq_len=16)


def _train(name: str, learning_rate: float, tmp_path: Path, tiny_folder: Path):
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda m: None)
    before = {k: v.detach().clone() for k, v in loaded.model.state_dict().items()}
    strategy = STRATEGIES.get(name)
    options = strategy.Options(learning_rate=learning_rate)
    model = strategy.prepare(loaded.model, options, PrepareContext(loaded.tokenizer, BUDGET, 0, "cpu"))
    task = load_task(TaskSpec(name="cipher", train_size=64, eval_limit=4))
    outcome = train(
        TrainRequest(model, loaded.tokenizer, strategy.objective, task, BUDGET, Training(), options, 0, "cpu", tmp_path)
    )
    return before, model, outcome


def _base_weights(model) -> dict[str, torch.Tensor]:
    """Base-model weights by their original names (PEFT wraps them as base_layer)."""
    state = model.state_dict()
    base = {}
    for key, value in state.items():
        if "lora_" in key:
            continue
        name = key.removeprefix("base_model.model.").replace(".base_layer", "")
        base[name] = value
    return base


def test_lora_leaves_every_base_weight_bit_identical(tmp_path: Path, tiny_folder: Path):
    before, model, outcome = _train("lora", 1e-2, tmp_path, tiny_folder)
    after = _base_weights(model)
    assert set(after) == set(before)
    assert all(torch.equal(before[k], after[k]) for k in before)
    lora_weights = [v for k, v in model.named_parameters() if "lora_B" in k]
    assert lora_weights and any(v.abs().sum() > 0 for v in lora_weights)  # B starts at zero: it moved
    assert outcome.steps == BUDGET.steps and outcome.tokens > 0


def test_full_fine_tuning_changes_the_base_weights(tmp_path: Path, tiny_folder: Path):
    before, model, outcome = _train("full", 1e-3, tmp_path, tiny_folder)
    after = model.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert len(changed) == len(before)
    assert outcome.losses[-1][1] < 0.9 * outcome.losses[0][1]  # a margin no floating-point order undoes


def test_tokens_counted_are_the_non_padding_tokens(tmp_path: Path, tiny_folder: Path):
    _, _, outcome = _train("full", 1e-3, tmp_path, tiny_folder)
    # every cipher example is "code x = y <eos>": 5 tokens, no padding needed at batch 8
    assert outcome.step_tokens == [5 * BUDGET.batch_size] * BUDGET.steps
    assert len(outcome.step_seconds) == BUDGET.steps and all(s > 0 for s in outcome.step_seconds)


@pytest.mark.parametrize("cap", [{"max_tokens": 80}, {"max_seconds": 1e-9}])
def test_token_and_time_caps_stop_training_early(tmp_path: Path, tiny_folder: Path, cap: dict):
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda m: None)
    budget = Budget(steps=50, batch_size=8, seq_len=16, **cap)
    task = load_task(TaskSpec(name="cipher", train_size=64, eval_limit=4))
    options = STRATEGIES.get("full").Options(learning_rate=1e-3)
    outcome = train(
        TrainRequest(loaded.model, loaded.tokenizer, "sft", task, budget, Training(), options, 0, "cpu", tmp_path)
    )
    expected = {"max_tokens": 2, "max_seconds": 1}[next(iter(cap))]  # 40 tokens per step
    assert outcome.steps == expected and outcome.stop_reason == next(iter(cap))


def test_quantised_weights_are_counted_at_their_full_size(tiny_folder: Path):
    from bench.run.recorder import _logical_numel

    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda m: None)
    base_total = sum(p.numel() for p in loaded.model.parameters())
    strategy = STRATEGIES.get("qlora")
    model = strategy.prepare(loaded.model, strategy.Options(), PrepareContext(loaded.tokenizer, BUDGET, 0, "cpu"))
    adapter = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for p in model.parameters()) < base_total  # packed 4-bit storage undercounts
    assert sum(_logical_numel(p) for p in model.parameters()) == base_total + adapter
