"""DoRA (Liu et al. 2024): LoRA on the direction of each weight plus a trainable magnitude vector.

It is LoRA with PEFT's `use_dora=True`: lora.py's options and config helper plus one flag; save,
load, merge and sizing are LoRA's.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bench.strategies import lora
from bench.strategies.base import PrepareContext


class Options(lora.Options):
    pass  # DoRA paper: LoRA's ranks and rates (it reports equal quality at half the rank)


class DoRA(lora.LoRA):
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import get_peft_model

        return get_peft_model(model, lora.lora_config(options, use_dora=True))


STRATEGY = DoRA()
