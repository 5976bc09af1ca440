"""VeRA (Kopiczko et al. 2024, PEFT): frozen random low-rank matrices shared by all layers, with
trainable per-layer scaling vectors: far fewer trainable parameters than LoRA. Mergeable."""

from __future__ import annotations

from typing import Any, ClassVar

from bench.spec import PositiveInt
from bench.strategies.base import (
    LearningRate,
    MergeablePeftAdapter,
    NotApplicable,
    PrepareContext,
    Sizing,
    StrategyOptions,
    linear_layer_names,
    queries_and_values,
    size_by_trial,
)


def _default_targets(model: Any) -> list[str]:
    """PEFT's table for the model type, else PEFT's pattern for Llama (queries and values) by the model's
    own module names, or their fused or latent counterparts (bench.strategies.base.queries_and_values)."""
    from peft.utils.constants import TRANSFORMERS_MODELS_TO_VERA_TARGET_MODULES_MAPPING as TABLE

    model_type = getattr(model.config, "model_type", None)
    if model_type in TABLE:
        return list(TABLE[model_type])
    targets = queries_and_values(linear_layer_names(model))
    if not targets:
        raise NotApplicable(
            f"vera: no query or value projections by any name known for model type {model_type!r} (PEFT's"
            " table or ours); set target_modules to train VeRA here"
        )
    return targets


class Options(StrategyOptions):
    learning_rate: LearningRate = 1e-2  # VeRA paper: ~10x LoRA's rates (it trains only vectors)
    r: PositiveInt = 256  # VeRA paper / PEFT default: the shared random matrices are wide
    target_modules: list[str] | None = None  # None: PEFT's table, else by name (Llama: q, v)


class VeRA(MergeablePeftAdapter):
    """Saving includes the random projections (PEFT: save_projection=True)."""

    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import VeraConfig, get_peft_model

        targets = options.target_modules or _default_targets(model)
        config = VeraConfig(task_type="CAUSAL_LM", r=options.r, target_modules=targets)
        return get_peft_model(model, config)

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "r", target)


STRATEGY = VeRA()
