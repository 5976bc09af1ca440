"""LoHa (Hyeon-Woo et al. 2022, PEFT/LyCORIS): the weight update is the Hadamard product of two
low-rank products, reaching a higher rank for the same parameters as LoRA. Mergeable."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from bench.strategies.base import (
    PrepareContext,
    Sizing,
    StrategyOptions,
    load_adapter,
    merge_adapter,
    save_adapter,
    size_by_trial,
)
from bench.suite import PositiveFloat, PositiveInt


class Options(StrategyOptions):
    learning_rate: PositiveFloat = 2e-4  # as LoRA (LyCORIS recommends LoRA-like rates)
    r: PositiveInt = 8  # PEFT default
    alpha: PositiveFloat = 8  # PEFT default (scale alpha / r = 1)
    target_modules: list[str] | str = "all-linear"  # as lora.py


class LoHa:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import LoHaConfig, get_peft_model

        config = LoHaConfig(
            task_type="CAUSAL_LM", r=options.r, alpha=options.alpha, target_modules=options.target_modules
        )
        return get_peft_model(model, config)

    def save(self, model: Any, directory: Path) -> None:
        save_adapter(model, directory)

    def load(self, base_model: Any, directory: Path) -> Any:
        return load_adapter(base_model, directory)

    def merge(self, model: Any) -> Any:
        return merge_adapter(model)

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "r", target)


STRATEGY = LoHa()
