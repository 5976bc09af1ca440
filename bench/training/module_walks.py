"""The model's two per-step module walks, over lists made once, while Trainer trains it.

Trainer calls `model.train()` at the start of every `training_step` and `model.zero_grad()` after
every optimizer step. Both recurse through every module, and neither is behind an override point of
Trainer. LoRA multiplies the modules (tiny-llama: 33 without, 175 with), so on a small model the two
walks cost 0.4 ms a step (docs/performance.md). During training, the model instance gets two methods
that do the same over lists made once; the class's own methods are back when training ends.

- `train(mode)`: when every module is already in `mode`, there is nothing to change and the call
  returns at once. Otherwise it is the model's own `train`, overrides included.
- `zero_grad()`: each parameter's gradient is set to None, as `nn.Module.zero_grad` does, over the
  parameters listed once. Where the model's class overrides `zero_grad`, or a caller asks for
  zeroed tensors instead, the model's own method runs.

Hand-written because no library offers it; the model's structure does not change during training.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def walks_listed_once(model: Any) -> Iterator[None]:
    from torch import nn

    if not isinstance(model, nn.Module):
        yield
        return
    modules = list(model.modules())
    parameters = list(model.parameters())
    own_train, own_zero_grad = model.train, model.zero_grad
    plain_zero_grad = type(model).zero_grad is nn.Module.zero_grad  # it never calls the submodules' own

    def train(mode: bool = True) -> Any:
        if any(module.training != mode for module in modules):
            return own_train(mode)
        return model

    def zero_grad(set_to_none: bool = True) -> None:
        if not (set_to_none and plain_zero_grad):
            own_zero_grad(set_to_none)
            return
        for parameter in parameters:
            if parameter.grad is not None:
                parameter.grad = None

    model.train, model.zero_grad = train, zero_grad
    try:
        yield
    finally:
        del model.train, model.zero_grad  # the class's methods again
