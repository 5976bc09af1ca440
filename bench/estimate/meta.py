"""The meta device as the estimator uses it: a model with shapes and dtypes but no storage, attention
that keeps for backward what SDPA's efficient kernels keep, transformers' mask building told it is
traced, the optimizer state per trainable element, and what autograd keeps for backward (with and without
gradient checkpointing). bench.estimate.model (the policy) and
bench.estimate.alignment (the models a preference method holds) both build on it."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from bench.measure.components import SavedTensorPeak
from bench.strategies.base import base_model_of, runs_folder_code


@dataclass(frozen=True)
class OptimizerState:
    """What an optimizer keeps per trainable tensor. `kind`: "torch" (torch's Adam: the moments in the
    parameter's dtype and a float32 step counter per tensor), "float32" (bitsandbytes' 32-bit optimizers:
    float32 moments whatever the parameter's dtype), "8bit" (bitsandbytes' blockwise 8-bit moments,
    `_eight_bit_state`), "factored" (Adafactor, `_factored_state`), "none"."""

    kind: str
    moments: int
    what: str


TORCH_ADAM = OptimizerState("torch", 2, "two moments in the parameter's dtype")
OPTIMIZER_STATE: dict[str, OptimizerState] = {
    "adamw_torch": TORCH_ADAM,
    "adamw_torch_fused": TORCH_ADAM,
    "adamw_hf": TORCH_ADAM,
    "adam": TORCH_ADAM,
    "adamw_bnb_8bit": OptimizerState("8bit", 2, "two 8-bit moments (bitsandbytes, blockwise)"),
    "adamw_8bit": OptimizerState("8bit", 2, "two 8-bit moments (bitsandbytes, blockwise)"),
    "paged_adamw_8bit": OptimizerState("8bit", 2, "two 8-bit moments (bitsandbytes, paged)"),
    "paged_adamw_32bit": OptimizerState("float32", 2, "two float32 moments (bitsandbytes, paged)"),
    "lion_8bit": OptimizerState("8bit", 1, "one 8-bit momentum (bitsandbytes Lion, blockwise)"),
    "paged_lion_8bit": OptimizerState("8bit", 1, "one 8-bit momentum (bitsandbytes Lion, paged)"),
    "lion_32bit": OptimizerState("float32", 1, "one float32 momentum (bitsandbytes Lion)"),
    "paged_lion_32bit": OptimizerState("float32", 1, "one float32 momentum (bitsandbytes Lion, paged)"),
    "adafactor": OptimizerState("factored", 0, "factored second moments: a float32 row and column per matrix"),
    "sgd": OptimizerState("none", 0, "no state (no momentum)"),
}
# bitsandbytes' 8-bit optimizers (0.50): a tensor under 4,096 elements keeps its moments in float32; a
# larger one keeps them in uint8 with a float32 absmax per 256 elements each; the 256-entry float32
# quantisation maps (one per moment) are shared by every tensor
EIGHT_BIT_MIN_SIZE, EIGHT_BIT_BLOCK, EIGHT_BIT_MAP = 4096, 256, 256 * 4


def _eight_bit_state(numel: int, moments: int) -> int:
    """Bytes bitsandbytes' 8-bit optimizer keeps for one parameter tensor of `numel` elements."""
    if numel < EIGHT_BIT_MIN_SIZE:
        return moments * 4 * numel
    return moments * (numel + 4 * math.ceil(numel / EIGHT_BIT_BLOCK))


def _factored_state(shape: tuple[int, ...]) -> int:
    """Bytes transformers' Adafactor keeps for one tensor (float32): a matrix (or more dimensions) its
    row and column second moments, a vector all of them; and its RMS, a float32 scalar."""
    if len(shape) < 2:
        return 4 * math.prod(shape) + 4
    rows, columns = math.prod(shape[:-1]), math.prod(shape[:-2]) * shape[-1]
    return 4 * (rows + columns) + 4


def optimizer_bytes(model: Any, optimizer: str) -> tuple[int, str]:
    """Bytes of optimizer state for the model's trainable tensors, and what they are."""
    if optimizer not in OPTIMIZER_STATE:
        known = ", ".join(OPTIMIZER_STATE)
        raise ValueError(f"training.optimizer: the estimator does not know {optimizer!r} (known: {known})")
    rule = OPTIMIZER_STATE[optimizer]
    trainable = [p for p in model.parameters() if p.requires_grad]
    if rule.kind == "torch":  # and torch's Adam keeps a float32 step counter per tensor
        state = sum(rule.moments * p.numel() * p.element_size() + 4 for p in trainable)
    elif rule.kind == "float32":
        state = sum(rule.moments * 4 * p.numel() for p in trainable)
    elif rule.kind == "8bit":
        state = sum(_eight_bit_state(p.numel(), rule.moments) for p in trainable)
        if any(p.numel() >= EIGHT_BIT_MIN_SIZE for p in trainable):
            state += rule.moments * EIGHT_BIT_MAP
    elif rule.kind == "factored":
        state = sum(_factored_state(tuple(p.shape)) for p in trainable)
    else:
        state = 0
    return state, rule.what


# The device an estimate is for (estimate_run sets it): attention with dropout keeps more on a CPU.
ESTIMATE_DEVICE: ContextVar[str] = ContextVar("bench_estimate_device", default="cuda")


@contextmanager
def estimating_for(device: str) -> Iterator[None]:
    token = ESTIMATE_DEVICE.set(device)
    try:
        yield
    finally:
        ESTIMATE_DEVICE.reset(token)


def _efficient_attention(module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any):
    """Attention as SDPA's flash and memory-efficient kernels keep it for backward: q, k, v, the
    output and the row logsumexp, never the T x T weights. On meta, SDPA itself takes the math path,
    which keeps the weights: 2-3x the activations of a long-sequence run on a GPU or CPU. Except
    with attention dropout on a CPU, whose flash kernel takes none: SDPA runs its math kernel there,
    so the estimate does too (GPT-2, whose attention dropout is 0.1: measured, tests/test_architectures.py);
    CUDA's kernels take dropout."""
    if kwargs.get("dropout") and ESTIMATE_DEVICE.get() == "cpu":
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    output = _KeptLikeFlash.apply(query, key, value, attention_mask)
    return output.transpose(1, 2).contiguous(), None


def _kept_like_flash() -> type:
    import torch

    class KeptLikeFlash(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, query: Any, key: Any, value: Any, mask: Any) -> Any:
            # laid out as the query is, as SDPA's flash kernel lays it out (measured on CPU): a query
            # viewed (batch, tokens, heads, dim) and transposed (Llama) gives an output the caller
            # transposes back without a copy, which the output projection saves (one storage, not
            # two: a copy here counted one more a layer for full fine-tuning); a contiguous query
            # (phi's, after its partial rotary) gives a contiguous output, which the caller copies
            output = torch.empty_like(query, memory_format=torch.preserve_format)
            if value.shape[-1] != query.shape[-1]:
                output = query.new_empty((*query.shape[:-1], value.shape[-1]))
            logsumexp = query.new_empty(query.shape[:-1], dtype=torch.float32)
            kept = [query, key, value, output, logsumexp]
            if mask is not None:  # a mask transformers materialised (Falcon always does; padding, sliding
                # windows): SDPA keeps it, a boolean one converted to the query's dtype, a copy per layer
                # (measured on CPU; torch converts before choosing a kernel, so CUDA's kernels get the same)
                kept.append(mask.to(query.dtype) if mask.dtype == torch.bool else mask)
            ctx.save_for_backward(*kept)
            return output

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            query, key, value = ctx.saved_tensors[:3]
            return torch.zeros_like(query), torch.zeros_like(key), torch.zeros_like(value), None

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


def attention_for(model_class: Any, config: Any) -> str:
    """The attention a run of this model would use, for the meta model: a default load takes SDPA where
    the class supports it and eager where it does not (Gemma 2's soft-capping, BLOOM's ALiBi); eager
    keeps the attention weights, on meta as on a GPU, and SDPA becomes ours, which keeps what SDPA keeps."""
    register_attention()
    asked = getattr(config, "_attn_implementation_internal", None) or getattr(config, "_attn_implementation", None)
    if asked == "eager" or not getattr(model_class, "_supports_sdpa", False):
        return "eager"
    return ATTENTION


def causal_lm_class(config: Any) -> Any:
    """transformers' causal LM class for the config, or the model folder's own where the config is one
    (a trusted folder's `auto_map`, loaded as a dynamic module: model.trust_remote_code)."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return MODEL_FOR_CAUSAL_LM_MAPPING[type(config)]
    reference = (getattr(config, "auto_map", None) or {}).get("AutoModelForCausalLM")
    if reference is None:
        raise ValueError(f"{type(config).__name__}: neither transformers nor its auto_map names a causal LM class")
    return get_class_from_dynamic_module(reference, config._name_or_path)


def meta_model(config: Any, dtype: str) -> Any:
    """The model on the meta device, with the attention a run would use (`attention_for`)."""
    import torch
    from transformers import AutoModelForCausalLM

    config = copy.deepcopy(config)  # from_config sets the attention on the config: never on the caller's
    model_class = causal_lm_class(config)
    attention = attention_for(model_class, config)
    own_code = runs_folder_code(model_class)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(
            config, dtype=getattr(torch, dtype), attn_implementation=attention, trust_remote_code=own_code
        )


@contextmanager
def on_meta() -> Iterator[None]:
    """A forward on the meta device as on a real one, where library code asks what meta tensors cannot say:
    - transformers inspects values unless it is being traced (mask building: packed sequences, all-ones
      masks; a model given a pad id looks for padding in the ids): it is told it is traced, and that its
      batch packs no sequences (as the estimate's does not), or every layer would keep a causal mask no
      real run of these models keeps (with it, SDPA runs is_causal);
    - `torch.autocast` refuses the meta device, which PEFT names when it turns autocast off around a LoRA
      of fused expert weights (Mixtral's): on meta, where autocast never runs, turning it off is nothing;
    - torch's meta grouped matrix product takes bfloat16 only (CUDA's rule), so a mixture of experts'
      float32 experts (QLoRA's preparation upcasts them) take transformers' own fallback, which keeps
      the same tensors for backward (its input and the weights) and runs on a CPU.
    """
    import torch
    from transformers import masking_utils, modeling_utils
    from transformers.integrations import moe

    autocast, grouped = torch.autocast, moe._can_use_grouped_mm

    def meta_autocast(device_type: str, *args: Any, **kwargs: Any) -> Any:
        return nullcontext() if device_type == "meta" else autocast(device_type, *args, **kwargs)

    def can_use_grouped_mm(input: Any, weight: Any, offs: Any) -> bool:
        if weight.device.type == "meta" and weight.dtype != torch.bfloat16:
            return False
        return grouped(input, weight, offs)

    patches = [
        (masking_utils, "is_tracing", lambda *args, **kwargs: True),
        (modeling_utils, "is_tracing", lambda *args, **kwargs: True),
        (torch, "autocast", meta_autocast),
        (moe, "_can_use_grouped_mm", can_use_grouped_mm),
        (masking_utils, "find_packed_sequence_indices", lambda position_ids: None),
    ]
    originals = [getattr(owner, name) for owner, name, _ in patches]
    for owner, name, replacement in patches:
        setattr(owner, name, replacement)
    try:
        yield
    finally:
        for (owner, name, _), original in zip(patches, originals):
            setattr(owner, name, original)


class LanguageModelLoss:
    """The model's own causal-LM loss, as the harness's SFT trains with it; remembers how many logits
    the largest forward made, for the loss's backward (bench.measure.components, loss_gradients)."""

    def __init__(self) -> None:
        self.logits = 0

    def __call__(self, model: Any, ids: Any) -> Any:
        output = model(input_ids=ids, labels=ids, use_cache=False)
        self.logits = max(self.logits, output.logits.numel())
        return output.loss

    def gradient_bytes(self) -> int:
        """transformers' ForCausalLMLoss upcasts the logits to float32; backward then holds nll's dense
        gradient and log-softmax's together: 2 x 4 bytes per logit, whatever the model's dtype."""
        return 2 * 4 * self.logits


def activation_peak(model: Any, sequences: int, tokens: int, loss: Callable[[Any, Any], Any]) -> int:
    """What autograd keeps for backward over one `sequences` x `tokens` step of `loss` (meta device):
    `loss(model, ids)` returns the step's loss (LanguageModelLoss, bench.estimate.fused_head's, ...)."""
    import torch

    ids = torch.zeros(sequences, tokens, dtype=torch.long, device="meta")
    model.train()
    try:
        with on_meta(), SavedTensorPeak(list(model.parameters())) as tracker:
            loss(model, ids).backward()
    except NotImplementedError as error:  # DBRX's experts: torch.nonzero over the router's choices
        if "data-independent" not in str(error):
            raise
        raise ValueError(
            f"{type(base_model_of(model)).__name__} sizes its tensors by their values (torch.nonzero, as in expert"
            " routing that loops over experts), which the estimate's meta-device forward cannot follow"
        ) from error
    return tracker.peak


def checkpointed_peaks(
    model: Any, sequences: int, tokens: int, config: Any, loss: Callable[[Any, Any], Any]
) -> tuple[int, int, int]:
    """(the activations' peak under gradient checkpointing, what is kept without the recomputed layer:
    what the loss's backward sees, the activations without checkpointing). Under checkpointing autograd
    keeps each layer's input; during backward one layer at a time is recomputed and its activations are
    held until its gradients are done. The saved-tensor hooks do not see the recomputation (torch's
    checkpoint stores it under its own hooks), so that layer is added: (activations without
    checkpointing - with) / layers. The last bounds the checkpointed peak (Components.peak)."""
    plain = activation_peak(model, sequences, tokens, loss)
    enable_checkpointing(model)
    kept = activation_peak(model, sequences, tokens, loss)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    layers = max(int(getattr(text, "num_hidden_layers", 1) or 1), 1)
    return kept + max(plain - kept, 0) // layers, kept, plain


def enable_checkpointing(model: Any) -> None:
    """Gradient checkpointing as the trainer turns it on (non-reentrant), by its transformers 5 name where
    the model has it (`gradient_checkpointing_enable` warns that it is deprecated)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def can_checkpoint(model: Any) -> bool:
    return hasattr(model, "activation_checkpointing_enable") or hasattr(model, "gradient_checkpointing_enable")
