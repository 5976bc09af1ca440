"""VeRA (Kopiczko et al. 2024, PEFT): frozen random low-rank matrices shared by all layers, with
trainable per-layer scaling vectors: far fewer trainable parameters than LoRA. Mergeable."""

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
    learning_rate: PositiveFloat = 1e-2  # VeRA paper: ~10x LoRA's rates (it trains only vectors)
    r: PositiveInt = 256  # VeRA paper / PEFT default: the shared random matrices are wide
    target_modules: list[str] | None = None  # None: PEFT's table for the architecture (Llama: q, v)


class VeRA:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import VeraConfig, get_peft_model

        config = VeraConfig(task_type="CAUSAL_LM", r=options.r, target_modules=options.target_modules)
        return get_peft_model(model, config)

    def save(self, model: Any, directory: Path) -> None:
        save_adapter(model, directory)  # includes the random projections (PEFT: save_projection=True)

    def load(self, base_model: Any, directory: Path) -> Any:
        return load_adapter(base_model, directory)

    def merge(self, model: Any) -> Any:
        return merge_adapter(model)

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "r", target)


STRATEGY = VeRA()
