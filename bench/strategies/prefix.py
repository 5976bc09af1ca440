"""Prefix tuning (Li & Liang 2021, PEFT): trainable key/value prefixes in every attention layer.

The cache trap (FINDINGS.md): PEFT hands the prefixes to the model as `past_key_values`, and a
forward with `use_cache=False` (TRL's SFTTrainer always passes it) drops them while the attention
mask still counts them: "The size of tensor a (21) must match the size of tensor b (15)". A
forward pre-hook on the PEFT model forces `use_cache=True`; the cache is only the prefixes plus
this batch's keys/values, so the cost is small. Gradient checkpointing cannot apply: transformers drops
the cache (so the prefixes) in every checkpointed layer; with `training.gradient_checkpointing` the run is
skipped with that reason (NO_CHECKPOINTING, read by bench/training/train.py) instead of failing.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bench.spec import PositiveInt
from bench.strategies.base import (
    LearningRate,
    NotApplicable,
    PrepareContext,
    StrategyOptions,
    VirtualTokenAdapter,
    virtual_token_shape,
)


class Options(StrategyOptions):
    learning_rate: LearningRate = 1e-2  # PEFT's prefix-tuning examples; far above LoRA's rate
    num_virtual_tokens: PositiveInt = 8  # prefix length; Li & Liang used 10-200 on longer inputs
    projection: bool = False  # reparameterise through an MLP (Li & Liang); off keeps it small


NO_CHECKPOINTING = (
    "prefix tuning cannot train with gradient checkpointing: transformers drops the cache, which holds the "
    "prefixes, in every checkpointed layer (set training.gradient_checkpointing: false)"
)


# Measured on tiny Mixtral and Qwen2-MoE configs (transformers 5.25, PEFT 0.21, TRL 1.16): "The size of
# tensor a (10) must match the size of tensor b (26)" in the first step.
MIXTURE_OF_EXPERTS = (
    "prefix tuning cannot train a mixture of experts here: the router's load-balancing loss, which the trainer"
    " turns on for these models, weighs the router's tokens by an attention mask that also counts the prefix"
)


LATENT_ATTENTION = (
    "prefix tuning cannot apply to multi-head latent attention (DeepSeek-V2/V3): transformers caches the"
    " compressed latent, one head wide, where PEFT's prefixes are per-head keys and values"
)
NOT_ALL_ATTENTION = (
    "prefix tuning needs an attention cache in every layer (PEFT's prefixes are attention keys and values);"
    " this model has {what}"
)


def refuse_architecture(model: Any) -> None:
    """NotApplicable where PEFT's prefixes cannot reach the model's attention. Measured on tiny configs
    (transformers 5.25, PEFT 0.21): the shapes in the first step (MLA, a mixture of experts' auxiliary
    loss), or a cache that is not attention's (LFM2's convolution layers); a model without attention
    (Mamba) has no head count for PEFT to shape a prefix with."""
    text = model.config.get_text_config()
    if hasattr(text, "output_router_logits") and getattr(text, "router_aux_loss_coef", 0.0):
        raise NotApplicable(MIXTURE_OF_EXPERTS)
    if getattr(text, "kv_lora_rank", None):
        raise NotApplicable(LATENT_ATTENTION)
    kinds = sorted({kind for kind in getattr(text, "layer_types", None) or () if "attention" not in kind})
    if kinds or getattr(text, "num_attention_heads", None) is None:
        raise NotApplicable(NOT_ALL_ATTENTION.format(what=f"{', '.join(kinds)} layers" if kinds else "no attention"))


def keep_cache_on(model: Any) -> None:
    def hook(module: Any, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        return args, {**kwargs, "use_cache": True}

    model.register_forward_pre_hook(hook, with_kwargs=True)


class PrefixTuning(VirtualTokenAdapter):
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import PrefixTuningConfig, get_peft_model

        refuse_architecture(model)
        config = PrefixTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=options.num_virtual_tokens,
            prefix_projection=options.projection,
            **virtual_token_shape(model),
        )
        peft_model = get_peft_model(model, config)
        keep_cache_on(peft_model)
        peft_model.bench_no_gradient_checkpointing = NO_CHECKPOINTING  # train.py: skipped, not crashed
        return peft_model

    def restore(self, model: Any) -> None:
        keep_cache_on(model)


STRATEGY = PrefixTuning()
