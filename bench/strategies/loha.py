"""LoHa (Hyeon-Woo et al. 2022, PEFT/LyCORIS): the weight update is the Hadamard product of two
low-rank products, reaching a higher rank for the same parameters as LoRA. Mergeable."""

from __future__ import annotations

from typing import Any, ClassVar

from bench.spec import PositiveFloat, PositiveInt
from bench.strategies.base import (
    LearningRate,
    MergeablePeftAdapter,
    NotApplicable,
    PrepareContext,
    Sizing,
    StrategyOptions,
    left_out_of_all_linear,
    size_by_trial,
)


class Options(StrategyOptions):
    learning_rate: LearningRate = 2e-4  # as LoRA (LyCORIS recommends LoRA-like rates)
    r: PositiveInt = 8  # PEFT default
    alpha: PositiveFloat = 8  # PEFT default (scale alpha / r = 1)
    target_modules: list[str] | str = "all-linear"  # as lora.py


class LoHa(MergeablePeftAdapter):
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import LoHaConfig, get_peft_model

        excluded = left_out_of_all_linear(model, options.target_modules)  # as lora.lora_config
        config = LoHaConfig(
            task_type="CAUSAL_LM",
            r=options.r,
            alpha=options.alpha,
            target_modules=options.target_modules,
            exclude_modules=excluded or None,
        )
        try:
            return get_peft_model(model, config)
        except TypeError as error:  # PEFT 0.21's LyCORIS layers wrap Linear and Conv2d, not GPT-2's Conv1D
            if "Conv1D" not in str(error):
                raise
            raise NotApplicable(
                "PEFT's LoHa cannot wrap the Conv1D layers of this architecture (GPT-2's); LoRA can"
            ) from error

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "r", target)


STRATEGY = LoHa()
