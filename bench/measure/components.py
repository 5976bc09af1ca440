"""Training memory by component, counted from the tensors themselves, on any device.

    weights      every parameter's storage, split trainable / frozen and by dtype; a bitsandbytes
                 4-bit weight counts its packed bytes plus its quantisation state (absmax, code)
    gradients    the `.grad` tensors present just before the optimizer step
    optimizer    every tensor in the optimizer's state after its first step (AdamW: two moments
                 per trainable parameter, in the parameter's dtype, plus a step counter)
    activations  the peak of what autograd holds for backward during one training step, from
                 `torch.autograd.graph.saved_tensors_hooks`: each saved tensor's storage counts once
                 while it is alive; parameters saved for backward are weights, not activations
    other_models the weights of models the method holds but does not train (DPO's and RLHF's
                 reference copy, RLHF's reward model while the policy trains and the policy while the
                 reward model trains); storage shared with the trained model counts once, there
    generation_cache  the largest key/value cache a generating forward returned during the step
                 (online RL generates before its training forward; 0 for methods that never generate)

The total counts the generation cache OR the activations, the larger: the cache is dropped when
generation ends, before the forward whose tensors backward keeps.

Beside them, the estimator (bench.estimate.model) predicts one thing no hook here sees:
    loss_gradients  the gradients the loss's backward makes over the logits before any parameter
                 has one: transformers' causal-LM loss upcasts the logits to float32, and its
                 backward holds nll's dense gradient and log-softmax's at once, 8 bytes per logit,
                 on top of every saved activation (measured on CPU at phi-1.5's shape: docs/memory.md).
                 For DPO and RLHF's policy, whose loss is TRL's fused LM head (no logits), the head's
                 tile workspace takes their place (bench.estimate.fused_head).
                 `peak()` holds them with the activations, against the parameter gradients (which
                 appear as backward frees the activations); `total()` stays what the hooks count, so
                 estimate and measurement compare like for like. Under gradient checkpointing it also
                 knows what is kept (`activations_at_loss`) and what would be without checkpointing
                 (`activations_without_checkpointing`), which bounds the checkpointed peak.

The sum is what training needs beyond the process itself: it leaves out the allocator's slack,
temporaries that die within one operation, the CUDA context and, on CPU, the interpreter and
libraries (which the host RSS peak includes). Nothing here imports torch at module level.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from bench.records.components import COMPONENTS  # the record contract names them; counted here

MIB = 1024 * 1024
# a recomputed layer's backward holds, beside its activations, the gradients of its intermediate outputs
# (SwiGLU: the product's, the gate's and the up projection's): measured on CPU over 14 Llama shapes, 0.23
# to 0.27 of the layer's activations where a layer's backward was the peak (docs/memory.md); 1/4 is added
LAYER_BACKWARD_EXTRA = 4


def _storage_key(tensor: Any) -> tuple[str, int]:
    """What identifies a tensor's memory; meta tensors have none, so their base tensor stands in."""
    if tensor.device.type == "meta":
        return ("meta", id(tensor._base if tensor._base is not None else tensor))
    return (str(tensor.device), tensor.untyped_storage().data_ptr())


def _storage_bytes(tensor: Any) -> int:
    if tensor.device.type == "meta":  # no storage to share: what its base spans, as a real view holds it all
        base = tensor._base if tensor._base is not None else tensor  # in its own dtype: Llama 4's rotary
        return base.numel() * base.element_size()  # embedding views complex numbers as pairs of reals
    return tensor.untyped_storage().nbytes()


def quant_state_bytes(state: Any) -> int:
    """Bytes of a bitsandbytes QuantState's tensors (absmax, code, the nested state's too)."""
    if state is None:
        return 0
    total = 0
    for name in ("absmax", "code", "offset"):
        value = getattr(state, name, None)
        if value is not None and hasattr(value, "element_size"):
            total += value.numel() * value.element_size()
    return total + quant_state_bytes(getattr(state, "state2", None))


def parameter_bytes(parameter: Any) -> int:
    """Storage of one parameter as held: packed 4-bit bytes plus their quantisation state; 8-bit weights plus
    their float32 scale per output row (bitsandbytes' `Int8Params.SCB`, which the estimate counts too)."""
    scales = getattr(parameter, "SCB", None)
    scale_bytes = scales.numel() * scales.element_size() if scales is not None else 0
    held = parameter.numel() * parameter.element_size() + scale_bytes
    return held + quant_state_bytes(getattr(parameter, "quant_state", None))


def _dtype_name(parameter: Any) -> str:
    if getattr(parameter, "quant_state", None) is not None:
        return f"{getattr(parameter.quant_state, 'quant_type', '4bit')}(4-bit)"
    return str(parameter.dtype).removeprefix("torch.")


@dataclass
class Components:
    """Bytes per component, and the weights by dtype; None where a component was not measured."""

    weights_trainable: int | None = None
    weights_frozen: int | None = None
    gradients: int | None = None
    optimizer: int | None = None
    activations: int | None = None
    other_models: int | None = None
    generation_cache: int | None = None
    loss_gradients: int | None = None  # estimate only (module docstring): not among COMPONENTS
    activations_at_loss: int | None = None  # estimate only: under checkpointing, the kept layer inputs
    activations_without_checkpointing: int | None = None  # estimate only: what the same step keeps unchecked
    gradients_transient: int | None = None  # estimate only: held beside every gradient as backward ends
    weights_by_dtype: dict[str, int] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)
    batch_shape: tuple[int, int] | None = None  # (sequences, tokens) of the step the activations are of
    phase: str | None = None  # the training phase counted, for methods with several (rlhf: reward, policy)

    def total(self) -> int | None:
        """Everything held at the step's peak: the cache and the activations are never held together."""
        values = {name: getattr(self, name) for name in COMPONENTS}
        if any(value is None for value in values.values()):
            return None
        transient = max(values.pop("activations"), values.pop("generation_cache"))
        return sum(values.values()) + transient

    def peak(self) -> int | None:
        """The step's peak where the loss's gradients are known, beside the weights and optimizer state:
        backward starts with the activations and the loss's gradients held, then frees each layer's
        activations as its parameters' gradients appear, so the larger of the two ends: activations +
        loss gradients, or every parameter gradient (plus `gradients_transient`: a trained tied embedding's
        two extra gradient buffers as backward ends). Under gradient checkpointing: `_checkpointed`.
        Measured on CPU (docs/memory.md, tests/test_estimate_batches.py). Without the loss's gradients:
        the total."""
        total = self.total()
        if total is None or self.loss_gradients is None:
            return total
        held = max(self.activations or 0, self.generation_cache or 0)
        gradients = self.gradients or 0
        unchecked = self.activations_without_checkpointing
        if self.activations_at_loss is not None and unchecked is not None:
            held_unchecked = max(unchecked, self.generation_cache or 0)
        else:
            held_unchecked = held
        ending = gradients + (self.gradients_transient or 0)
        plain = total - held - gradients + max(held_unchecked + self.loss_gradients, ending)
        if self.activations_at_loss is None:
            return plain
        checkpointed = total - held - gradients + self._checkpointed(gradients)
        return checkpointed if unchecked is None else min(checkpointed, plain)

    def _checkpointed(self, gradients: int) -> int:
        """What a checkpointed step holds at its peak beyond weights, optimizer state and held models: the
        larger of the loss's backward (the kept layer inputs and the loss's gradients), generation's cache,
        the end of backward (every gradient and `gradients_transient`), and a layer's backward: its
        recomputed activations (`activations` - kept), about a quarter of them
        again in gradients of its intermediates (`LAYER_BACKWARD_EXTRA`), and the kept inputs of the layers
        below it or the gradients of those above, the larger (the one falls as the other grows: the first
        layer's backward holds nearly every gradient and one kept input). No moment holds every kept input
        and every gradient at once. The plain step holds at least as much at each moment (its activations
        include the kept inputs and the recomputed layer), so `peak` takes the smaller of the two."""
        kept = self.activations_at_loss or 0
        layer = max((self.activations or 0) - kept, 0)
        backward = max(kept, gradients) + layer + layer // LAYER_BACKWARD_EXTRA
        ending = gradients + (self.gradients_transient or 0)
        return max(kept + (self.loss_gradients or 0), backward, ending, self.generation_cache or 0)

    def mib(self) -> dict[str, float | None]:
        out = {name: _mib(getattr(self, name)) for name in (*COMPONENTS, "loss_gradients")}
        out["total"] = _mib(self.total())
        out["peak"] = _mib(self.peak())
        return out


def _mib(value: int | None) -> float | None:
    return None if value is None else value / MIB


def count_weights(model: Any, components: Components) -> None:
    """Trainable and frozen weights, each shared storage once (tied embeddings count once)."""
    seen: set[tuple[str, int]] = set()
    trainable = frozen = 0
    by_dtype: dict[str, int] = {}
    for parameter in model.parameters():
        key = _storage_key(parameter)
        if key in seen:
            continue
        seen.add(key)
        size = parameter_bytes(parameter)
        by_dtype[_dtype_name(parameter)] = by_dtype.get(_dtype_name(parameter), 0) + size
        if parameter.requires_grad:
            trainable += size
        else:
            frozen += size
    components.weights_trainable, components.weights_frozen = trainable, frozen
    components.weights_by_dtype = by_dtype


def count_other_models(models: Any, trained: Any) -> int:
    """Weights of the held models, storage shared with the trained model or with each other once."""
    seen = {_storage_key(parameter) for parameter in trained.parameters()}
    total = 0
    for model in models:
        for parameter in model.parameters():
            key = _storage_key(parameter)
            if key not in seen:
                seen.add(key)
                total += parameter_bytes(parameter)
    return total


def cache_bytes(cache: Any, depth: int = 4) -> int:
    """Bytes of the tensors a key/value cache holds (a transformers Cache, or tuples of tensors)."""
    seen: set[tuple[str, int]] = set()

    def walk(value: Any, level: int) -> int:
        if hasattr(value, "untyped_storage") and hasattr(value, "element_size"):
            key = _storage_key(value)
            if key in seen:
                return 0
            seen.add(key)
            return _storage_bytes(value)
        if level == 0:
            return 0
        if isinstance(value, (list, tuple)):
            return sum(walk(item, level - 1) for item in value)
        if isinstance(value, dict):
            return sum(walk(item, level - 1) for item in value.values())
        if hasattr(value, "__dict__") and not callable(value):
            return sum(walk(item, level - 1) for item in vars(value).values())
        return 0

    return walk(cache, depth)


def count_gradients(model: Any) -> int:
    return sum(p.grad.numel() * p.grad.element_size() for p in model.parameters() if p.grad is not None)


def count_optimizer_state(optimizer: Any) -> int:
    """Every tensor in the optimizer's per-parameter state (accelerate's wrapper exposes `.state`), each
    memory once: bitsandbytes' 8-bit optimizers give every parameter's state the same quantisation maps."""
    inner = getattr(optimizer, "optimizer", optimizer)
    counted: dict[tuple[str, int], int] = {}
    for state in inner.state.values():
        for value in state.values():
            if hasattr(value, "element_size"):
                key = _storage_key(value)
                counted[key] = max(counted.get(key, 0), value.numel() * value.element_size())
    return sum(counted.values())


class SavedTensorPeak:
    """Peak bytes autograd holds for backward while active: `with SavedTensorPeak(model) as peak:`.

    Each saved tensor's storage counts once while any saved tensor on it is alive (a weakref
    finalizer releases it when autograd drops it), so recomputation under gradient checkpointing
    is counted as it really is held. Storages of the `exclude` tensors (the parameters) never count.
    """

    def __init__(self, exclude: Any = ()) -> None:
        self._excluded = {_storage_key(t) for t in exclude}
        self._refs: dict[tuple[str, int], int] = {}
        self._sizes: dict[tuple[str, int], int] = {}
        self.live = 0
        self.peak = 0
        self._context: Any = None

    def _release(self, key: tuple[str, int]) -> None:
        self._refs[key] -= 1
        if self._refs[key] == 0:
            self.live -= self._sizes.pop(key)
            del self._refs[key]

    def _pack(self, tensor: Any) -> Any:
        key = _storage_key(tensor)
        if key in self._excluded:
            return tensor
        if key not in self._refs:
            self._refs[key] = 0
            self._sizes[key] = _storage_bytes(tensor)
            self.live += self._sizes[key]
            self.peak = max(self.peak, self.live)
        self._refs[key] += 1
        weakref.finalize(tensor, self._release, key)
        return tensor

    def __enter__(self) -> SavedTensorPeak:
        import torch

        self._context = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda tensor: tensor)
        self._context.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._context.__exit__(*exc_info)
