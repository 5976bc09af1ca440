"""The model's per-step module walks over lists made once (bench/training/module_walks.py): the same modes and
gradients as the model's own methods, the class's methods back afterwards, the same training."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

import bench.training.train
from bench.training.module_walks import walks_listed_once
from tests.conftest import train_tiny_lora


def _nested() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4), nn.Sequential(nn.Dropout(0.5), nn.Linear(4, 2)))


def _backward(model: nn.Module) -> None:
    model(torch.ones(2, 3)).sum().backward()


def test_train_and_eval_reach_every_module_and_the_class_methods_return():
    model = _nested()
    with walks_listed_once(model):
        assert model.train() is model and all(module.training for module in model.modules())
        model.eval()  # nn.Module.eval calls self.train(False): the instance's method, then the model's own
        assert not any(module.training for module in model.modules())
        model[1][0].train()  # one submodule changed by hand: the next train() must still reach all
        model.eval()
        assert not model[1][0].training
        model.train()
        assert all(module.training for module in model.modules())
    assert "train" not in vars(model) and "zero_grad" not in vars(model)
    assert model.train.__func__ is nn.Module.train


def test_zero_grad_clears_every_gradient_or_zeroes_them_when_asked():
    model = _nested()
    with walks_listed_once(model):
        _backward(model)
        assert all(parameter.grad is not None for parameter in model.parameters())
        model.zero_grad()
        assert all(parameter.grad is None for parameter in model.parameters())
        _backward(model)
        model.zero_grad(set_to_none=False)
        assert all(parameter.grad is not None and not parameter.grad.any() for parameter in model.parameters())


def test_a_model_with_its_own_zero_grad_keeps_it():
    calls = []

    class Own(nn.Sequential):
        def zero_grad(self, set_to_none: bool = True) -> None:
            calls.append(set_to_none)
            super().zero_grad(set_to_none)

    model = Own(nn.Linear(3, 2))
    with walks_listed_once(model):
        _backward(model)
        model.zero_grad()
    assert calls == [True] and model[0].weight.grad is None


def _lora_losses(tmp_path: Path, walks, monkeypatch) -> list[tuple[int, float]]:
    monkeypatch.setattr(bench.training.train, "walks_listed_once", walks)
    return train_tiny_lora(tmp_path / getattr(walks, "__name__", "walks"), steps=8).losses


def test_training_with_the_listed_walks_is_identical(tmp_path: Path, tiny_folder: Path, monkeypatch):
    modes: list[bool] = []

    @contextmanager
    def counted(model):
        with walks_listed_once(model):
            listed = model.train

            def train(mode: bool = True):
                modes.append(mode)
                return listed(mode)

            model.train = train
            yield

    @contextmanager
    def without(model):
        yield

    listed = _lora_losses(tmp_path, counted, monkeypatch)
    assert len(modes) >= 16  # Trainer's train() once per micro-batch went through the listed walk
    own = _lora_losses(tmp_path, without, monkeypatch)
    assert len(listed) == 8 and listed == own
