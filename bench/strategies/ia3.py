"""IA3 (Liu et al. 2022, PEFT): learned vectors that rescale keys, values and the feed-forward input.

Target and feed-forward modules are resolved for the architecture from PEFT's own tables
(model.config.model_type), unless the suite names them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bench.strategies.base import LearningRate, MergeablePeftAdapter, PrepareContext, StrategyOptions


class Options(StrategyOptions):
    # IA3 paper: 3e-3 with Adafactor; it barely moves at LoRA's rates (FINDINGS.md).
    learning_rate: LearningRate = 3e-3
    target_modules: list[str] | None = None  # None: PEFT's table for the architecture (Llama: k, v, down)
    feedforward_modules: list[str] | None = None  # scaled on their input; None: PEFT's table (Llama: down)


def resolve_modules(model: Any, options: Options) -> tuple[list[str], list[str]]:
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
    )
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS,
    )

    model_type = getattr(model.config, "model_type", None)
    targets = options.target_modules or TARGETS.get(model_type)
    feedforward = options.feedforward_modules or FEEDFORWARD.get(model_type)
    if not targets or feedforward is None:
        raise ValueError(
            f"ia3: PEFT has no module table for {model_type!r}; set target_modules and feedforward_modules"
        )
    if options.feedforward_modules:  # the suite's own: each must be a target (PEFT), never silently dropped
        stray = [name for name in options.feedforward_modules if name not in targets]
        if stray:
            raise ValueError(
                f"ia3: feedforward_modules {stray} are not among target_modules {list(targets)}: a feed-forward"
                " module is a target scaled on its input; name it in both, spelled the same"
            )
    # the table's feed-forward modules that the suite's targets leave out are not targets: dropped
    return list(targets), [name for name in feedforward if name in targets]


class IA3(MergeablePeftAdapter):
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import IA3Config, get_peft_model

        targets, feedforward = resolve_modules(model, options)
        config = IA3Config(task_type="CAUSAL_LM", target_modules=targets, feedforward_modules=feedforward)
        return get_peft_model(model, config)


STRATEGY = IA3()
