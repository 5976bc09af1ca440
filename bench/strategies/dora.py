"""DoRA (Liu et al. 2024): LoRA on the direction of each weight plus a trainable magnitude vector.

It is LoRA with PEFT's `use_dora=True`: lora.py's options and config helper plus one flag; save,
load, merge and sizing are LoRA's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bench.strategies import lora
from bench.strategies.base import NotApplicable, PrepareContext


class Options(lora.Options):
    pass  # DoRA paper: LoRA's ranks and rates (it reports equal quality at half the rank)


class DoRA(lora.LoRA):
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import get_peft_model

        try:
            return get_peft_model(model, lora.lora_config(options, model, use_dora=True))
        except ValueError as error:  # "all-linear" on a mixture of experts reaches its fused expert weights
            if "ParamWrapper" not in str(error):
                raise
            raise NotApplicable(
                "PEFT's DoRA cannot train a mixture of experts' fused expert weights, which target_modules"
                " 'all-linear' reaches; name the attention projections in target_modules to train DoRA there"
            ) from error


STRATEGY = DoRA()
