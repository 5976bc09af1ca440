"""IA3 (Liu et al. 2022, PEFT): learned vectors that rescale keys, values and the feed-forward input.

Target and feed-forward modules are resolved for the architecture from PEFT's own tables
(model.config.model_type), or ours where PEFT has none (IA3_MODULES, then the model's own module names),
unless the suite names them.
"""

from __future__ import annotations

from typing import Any, ClassVar

from bench.strategies.base import (
    LearningRate,
    MergeablePeftAdapter,
    NotApplicable,
    PrepareContext,
    StrategyOptions,
    keys_and_values,
    linear_layer_names,
    mlp_output,
)


class Options(StrategyOptions):
    # IA3 paper: 3e-3 with Adafactor; it barely moves at LoRA's rates (FINDINGS.md).
    learning_rate: LearningRate = 3e-3
    target_modules: list[str] | None = None  # None: the architecture's table (Llama: k, v, down)
    feedforward_modules: list[str] | None = None  # scaled on their input; None: the table's (Llama: down)


# Where PEFT 0.21's IA3 tables name modules transformers 5 no longer has: Mixtral's experts are fused
# parameters, which IA3 cannot wrap, so keys and values only (PEFT's table names `w2`, which exists no
# more). Where PEFT has no table, PEFT's pattern for Llama by the model's own module names (`_by_name`).
IA3_MODULES: dict[str, tuple[list[str], list[str]]] = {
    "mixtral": (["k_proj", "v_proj"], []),
}


def _by_name(model: Any) -> tuple[list[str] | None, list[str] | None]:
    """Llama's pattern (keys, values, and the MLP's output projection scaled on its input) wherever the
    model's linear layers are named so or in a way bench.strategies.base knows (a fused query-key-value
    projection is scaled whole; a mixture of experts' fused experts are no linear layer: keys and values,
    and a shared expert's down projection if any)."""
    names = linear_layer_names(model)
    attention = keys_and_values(names)
    if not attention:
        return None, None
    feedforward = mlp_output(names)
    return [*attention, *feedforward], feedforward


def resolve_modules(model: Any, options: Options) -> tuple[list[str], list[str]]:
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING as FEEDFORWARD,
    )
    from peft.utils.constants import (
        TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING as TARGETS,
    )

    model_type = getattr(model.config, "model_type", None)
    if model_type in IA3_MODULES:
        table_targets, table_feedforward = IA3_MODULES[model_type]
    elif model_type in TARGETS:
        table_targets, table_feedforward = TARGETS[model_type], FEEDFORWARD.get(model_type)
    else:
        table_targets, table_feedforward = _by_name(model)
    targets = options.target_modules or table_targets
    feedforward = options.feedforward_modules or table_feedforward
    if not targets or feedforward is None:
        raise NotApplicable(
            f"ia3: no keys, values or MLP projections by any name known for model type {model_type!r} (PEFT's"
            " tables or ours); set target_modules and feedforward_modules to train IA3 here"
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
