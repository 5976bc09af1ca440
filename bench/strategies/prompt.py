"""Prompt tuning (Lester et al. 2021, PEFT): trainable virtual-token embeddings before the input.

PEFT returns logits for the virtual tokens too (`num_virtual_tokens` extra positions in front);
lm-eval's log-likelihood scoring reads logits by input position, so a forward hook drops those
positions whenever the logits are longer than the input. Generation does not pass through that
forward and is unaffected. Prompt tuning is never the identity, and it cannot be merged.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from bench.spec import PositiveInt
from bench.strategies.base import (
    LearningRate,
    PrepareContext,
    StrategyOptions,
    VirtualTokenAdapter,
    virtual_token_shape,
)


class Options(StrategyOptions):
    # Lester et al. used 0.3 with Adafactor; PEFT's AdamW examples use 3e-2. Far above LoRA's rate.
    learning_rate: LearningRate = 3e-2
    num_virtual_tokens: PositiveInt = 8  # short prompts here (seq_len 32); the paper used 5-150
    # Lester et al.: initialising from vocabulary embeddings beats random init (which has the
    # wrong scale for the model's embeddings); "text" init needs a natural-language prompt.
    init: Literal["sample_vocab", "random"] = "sample_vocab"


def strip_virtual_logits(model: Any, virtual_tokens: int) -> None:
    """Register the hook described in the module docstring on a PEFT prompt-learning model."""

    def hook(module: Any, args: tuple, kwargs: dict, output: Any) -> Any:
        ids = kwargs.get("input_ids", args[0] if args else None)
        logits = getattr(output, "logits", None)
        if ids is not None and logits is not None and logits.shape[1] == ids.shape[1] + virtual_tokens:
            output.logits = logits[:, virtual_tokens:]
        return output

    model.register_forward_hook(hook, with_kwargs=True)


class PromptTuning(VirtualTokenAdapter):
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from peft import PromptTuningConfig, PromptTuningInit, get_peft_model

        config = PromptTuningConfig(
            task_type="CAUSAL_LM",
            num_virtual_tokens=options.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit(options.init.upper()),
            # PEFT asks for a head count that prompt tuning never uses: 1 where a model has no attention (Mamba)
            **{"num_attention_heads": 1, **virtual_token_shape(model)},
        )
        peft_model = get_peft_model(model, config)
        strip_virtual_logits(peft_model, options.num_virtual_tokens)
        return peft_model

    def restore(self, model: Any) -> None:
        strip_virtual_logits(model, model.peft_config["default"].num_virtual_tokens)


STRATEGY = PromptTuning()
