"""VeRA (Kopiczko et al. 2024, PEFT): frozen random low-rank matrices shared by all layers, with
trainable per-layer scaling vectors: far fewer trainable parameters than LoRA. Mergeable."""

from __future__ import annotations

from typing import Any, ClassVar

from bench.spec import PositiveInt
from bench.strategies.base import (
    LearningRate,
    MergeablePeftAdapter,
    PrepareContext,
    Sizing,
    StrategyOptions,
    size_by_trial,
)

# Architectures PEFT 0.21's VeRA table lacks, in its pattern for Llama (queries and values); Phi-3 fuses
# queries, keys and values in one projection. Elsewhere PEFT's table (None here).
VERA_MODULES: dict[str, list[str]] = {
    **dict.fromkeys(("olmo", "olmo2", "qwen2_moe", "qwen3_moe"), ["q_proj", "v_proj"]),
    "phi3": ["qkv_proj"],
}


class Options(StrategyOptions):
    learning_rate: LearningRate = 1e-2  # VeRA paper: ~10x LoRA's rates (it trains only vectors)
    r: PositiveInt = 256  # VeRA paper / PEFT default: the shared random matrices are wide
    target_modules: list[str] | None = None  # None: PEFT's table or VERA_MODULES (Llama: q, v)


class VeRA(MergeablePeftAdapter):
    """Saving includes the random projections (PEFT: save_projection=True)."""

    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import VeraConfig, get_peft_model

        targets = options.target_modules or VERA_MODULES.get(getattr(model.config, "model_type", None))
        config = VeraConfig(task_type="CAUSAL_LM", r=options.r, target_modules=targets)
        return get_peft_model(model, config)

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "r", target)


STRATEGY = VeRA()
