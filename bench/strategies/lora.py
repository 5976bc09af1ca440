"""LoRA (PEFT): trainable low-rank updates beside frozen linear layers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from bench.strategies.base import PrepareContext, StrategyOptions, save_adapter
from bench.suite import PositiveFloat, PositiveInt


class Options(StrategyOptions):
    learning_rate: PositiveFloat = 2e-4  # LoRA paper / QLoRA practice for small models
    r: PositiveInt = 8
    alpha: PositiveFloat = 16
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"  # PEFT's shorthand: every linear layer but the head


def lora_config(options: Options):
    from peft import LoraConfig

    return LoraConfig(
        r=options.r,
        lora_alpha=options.alpha,
        lora_dropout=options.dropout,
        target_modules=options.target_modules,
        task_type="CAUSAL_LM",
    )


class LoRA:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, lora_config(options))

    def save(self, model: Any, directory: Path) -> None:
        save_adapter(model, directory)


STRATEGY = LoRA()
