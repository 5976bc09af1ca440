"""The training tracker's counter of memory by component (bench.measure.components), on the first
optimizer step of any trainer: driven by bench.training.train.MeasuringCallback's callback points."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench.measure.components import (
    Components,
    SavedTensorPeak,
    cache_bytes,
    count_gradients,
    count_optimizer_state,
    count_other_models,
    count_weights,
)


class ComponentProbe:
    """Counts training memory by component on the first optimizer step (bench.measure.components):
    weights as training starts, gradients just before the optimizer, optimizer state after it, and
    the activations autograd holds in between; the weights of the models the trainer holds beside
    the trained one (`held`), and the largest key/value cache a generating forward returns. The
    saved-tensor hooks cost that one step some time; `measure.throughput_warmup_steps` (default 2)
    leaves it out of throughput."""

    def __init__(self, held: Sequence[Any] = ()) -> None:
        self.components = Components()
        self._held = list(held)
        self._activations: SavedTensorPeak | None = None
        self._hooks: list[Any] = []

    def step_begin(self, model: Any) -> None:
        from transformers import PreTrainedModel

        count_weights(model, self.components)
        self.components.other_models = count_other_models(self._held, model)
        self.components.generation_cache = 0
        # the shape of the step's largest forward (sequences x tokens), so an estimate can be made for it
        self._hooks = [model.register_forward_pre_hook(self._record_shape, with_kwargs=True)]
        self._hooks += [
            module.register_forward_hook(self._record_cache)
            for module in model.modules()
            if isinstance(module, PreTrainedModel)
        ]
        self._activations = SavedTensorPeak(list(model.parameters())).__enter__()

    def _record_shape(self, module: Any, args: tuple, kwargs: dict) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        if hasattr(ids, "shape") and len(ids.shape) == 2:
            shape = (int(ids.shape[0]), int(ids.shape[1]))
            known = self.components.batch_shape
            if known is None or shape[0] * shape[1] > known[0] * known[1]:
                self.components.batch_shape = shape

    def _record_cache(self, module: Any, args: tuple, output: Any) -> None:
        cache = getattr(output, "past_key_values", None)
        if cache is not None:
            self.components.generation_cache = max(self.components.generation_cache or 0, cache_bytes(cache))

    def before_optimizer(self, model: Any) -> None:
        self.components.gradients = count_gradients(model)

    def step_end(self, optimizer: Any) -> None:
        if self._activations is None:
            return
        self._activations.__exit__(None, None, None)
        self.components.activations = self._activations.peak
        self._activations = None
        for hook in self._hooks:
            hook.remove()
        if optimizer is not None:
            self.components.optimizer = count_optimizer_state(optimizer)
        else:
            self.components.reasons["optimizer"] = "the trainer passed no optimizer to its callbacks"
