"""The meta device as the estimator uses it: a model with shapes and dtypes but no storage, attention
that keeps for backward what SDPA's efficient kernels keep, transformers' mask building told it is
traced, and the optimizer state per trainable element. bench.estimate.model (the policy) and
bench.estimate.alignment (the models a preference method holds) both build on it."""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# bytes of optimizer state per trainable element, as a multiple of the parameter's own bytes
# (None: fixed bytes per element), and what it stands for
OPTIMIZER_STATE: dict[str, tuple[float | None, float, str]] = {
    "adamw_torch": (2.0, 0.0, "two moments in the parameter's dtype"),
    "adamw_torch_fused": (2.0, 0.0, "two moments in the parameter's dtype"),
    "adamw_hf": (2.0, 0.0, "two moments in the parameter's dtype"),
    "adam": (2.0, 0.0, "two moments in the parameter's dtype"),
    "adamw_bnb_8bit": (None, 2.0, "two 8-bit moments (bitsandbytes, blockwise)"),
    "paged_adamw_8bit": (None, 2.0, "two 8-bit moments (bitsandbytes, paged)"),
    "adamw_8bit": (None, 2.0, "two 8-bit moments (bitsandbytes, blockwise)"),
    "sgd": (0.0, 0.0, "no state (no momentum)"),
}


def optimizer_bytes(model: Any, optimizer: str) -> tuple[int, str]:
    if optimizer not in OPTIMIZER_STATE:
        known = ", ".join(OPTIMIZER_STATE)
        raise ValueError(f"training.optimizer: the estimator does not know {optimizer!r} (known: {known})")
    multiple, per_element, what = OPTIMIZER_STATE[optimizer]
    trainable = [p for p in model.parameters() if p.requires_grad]
    if multiple is None:
        state = sum(int(p.numel() * per_element) + 8 * math.ceil(p.numel() / 2048) for p in trainable)
    else:
        state = sum(int(p.numel() * p.element_size() * multiple) for p in trainable)
    if multiple:  # torch's Adam keeps a float32 step counter per parameter tensor
        state += 4 * len(trainable)
    return state, what


def _efficient_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any):
    """Attention as SDPA's flash and memory-efficient kernels keep it for backward: q, k, v, the
    output and the row logsumexp, never the T x T weights. On meta, SDPA itself takes the math path,
    which keeps the weights: 2-3x the activations of a long-sequence run on a GPU or CPU."""
    output = _KeptLikeFlash.apply(query, key, value)
    return output.transpose(1, 2).contiguous(), None


def _kept_like_flash() -> type:
    import torch

    class KeptLikeFlash(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, query: Any, key: Any, value: Any) -> Any:
            output = query.new_empty((*query.shape[:-1], value.shape[-1]))
            logsumexp = query.new_empty(query.shape[:-1], dtype=torch.float32)
            ctx.save_for_backward(query, key, value, output, logsumexp)
            return output

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            query, key, value, _, _ = ctx.saved_tensors
            return torch.zeros_like(query), torch.zeros_like(key), torch.zeros_like(value)

    return KeptLikeFlash


_KeptLikeFlash: Any = None
ATTENTION = "bench_estimate_sdpa"


def register_attention() -> None:
    global _KeptLikeFlash
    if _KeptLikeFlash is not None:
        return
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.masking_utils import sdpa_mask

    _KeptLikeFlash = _kept_like_flash()
    AttentionInterface.register(ATTENTION, _efficient_attention)
    AttentionMaskInterface.register(ATTENTION, sdpa_mask)


def meta_model(config: Any, dtype: str) -> Any:
    """The model on the meta device. Attention keeps what SDPA keeps on a real device, unless the
    config asks for eager attention (which keeps the weights, on meta as on a GPU)."""
    import torch
    from transformers import AutoModelForCausalLM

    register_attention()
    config = copy.deepcopy(config)  # from_config sets the attention on the config: never on the caller's
    asked = getattr(config, "_attn_implementation_internal", None) or getattr(config, "_attn_implementation", None)
    attention = "eager" if asked == "eager" else ATTENTION
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, dtype=getattr(torch, dtype), attn_implementation=attention)


@contextmanager
def as_if_tracing() -> Iterator[None]:
    """transformers' mask building inspects tensor values (packed sequences, all-ones masks) unless
    it is being traced; meta tensors have no values, so it is told it is traced while we run."""
    from transformers import masking_utils

    original = masking_utils.is_tracing
    masking_utils.is_tracing = lambda *args, **kwargs: True
    try:
        yield
    finally:
        masking_utils.is_tracing = original
