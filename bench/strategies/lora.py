"""LoRA (PEFT): trainable low-rank updates beside frozen linear layers. Mergeable into the base."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from bench.spec import PositiveFloat, PositiveInt
from bench.strategies.base import (
    LearningRate,
    MergeablePeftAdapter,
    PrepareContext,
    Sizing,
    StrategyOptions,
    left_out_of_all_linear,
    size_by_trial,
)


class Options(StrategyOptions):
    learning_rate: LearningRate = 2e-4  # LoRA paper / QLoRA practice for small models
    r: PositiveInt = 8
    alpha: PositiveFloat = 16
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"  # PEFT's shorthand: every linear layer but the head


def lora_config(options: Options, model: Any, **extra: Any):
    """The LoraConfig for these options on this model; the LoRA family (QLoRA, DoRA) passes its extras
    here. "all-linear" leaves out what PEFT cannot wrap (bench.strategies.base.left_out_of_all_linear)."""
    from peft import LoraConfig

    excluded = left_out_of_all_linear(model, options.target_modules)
    if excluded:
        extra = {"exclude_modules": excluded, **extra}
    return LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        task_type="CAUSAL_LM",
        **extra,
    )


class LoRA(MergeablePeftAdapter):
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, lora_config(options, model))

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "r", target)


STRATEGY = LoRA()
