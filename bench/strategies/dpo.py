"""DPO (TRL DPOTrainer): learn from preference pairs directly, no reward model, no generation.

Full fine-tuning by default; with `lora: {r, alpha}` only a LoRA adapter trains and the reference
model is the adapter's initial state (the base). `start_from: <label>` starts from the result of
an sft strategy of the same suite (the worker trains or loads that parent first; docs/alignment.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bench.spec import PositiveFloat, PositiveInt
from bench.strategies.base import LearningRate, NotApplicable, PrepareContext, StrategyOptions, save_whole_model

# TRL 1.16's DPO losses that bench offers. Left out: exo_pair (needs label_smoothing > 0 as its epsilon), aot and
# aot_unpaired (sort the pairs of a batch against each other, and read label_smoothing), nca_pair, discopop (needs
# discopop_tau, not exposed) and sft (not a preference loss alone); docs/alignment.md
LossType = Literal["sigmoid", "hinge", "ipo", "robust", "bco_pair", "sppo_hard", "apo_zero", "apo_down", "sigmoid_norm"]
# the losses that read label_smoothing (TRL 1.16 DPOTrainer._compute_loss): with 0, robust is sigmoid exactly
SMOOTHED_LOSSES = ("robust",)


class LoraShape(BaseModel):
    """The adapter a preference strategy trains instead of the whole model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    r: PositiveInt = 8
    alpha: PositiveFloat = 16
    dropout: float = Field(default=0.0, ge=0, lt=1)
    target_modules: list[str] | str = "all-linear"


class Options(StrategyOptions):
    learning_rate: LearningRate = 5e-6  # DPO practice for pretrained LMs (small: the loss is sharp)
    beta: PositiveFloat = 0.1  # strength of the pull towards the reference model (DPO paper)
    loss_type: LossType = "sigmoid"  # the original DPO loss; the others are TRL's variants
    # robust DPO's probability that a preference label is flipped (TRL's label_smoothing, [0, 0.5)); robust only
    label_smoothing: float = Field(default=0.0, ge=0, lt=0.5)
    lora: LoraShape | None = None  # None: full fine-tuning
    start_from: str = "base"  # "base", or the label of an sft strategy in the same suite
    # reference log-probs computed once before training: full fine-tuning then holds no reference copy
    precompute_ref_log_probs: bool = False

    @model_validator(mode="after")
    def _smoothing_fits_the_loss(self) -> Options:
        """robust with label_smoothing 0 is sigmoid exactly; label_smoothing on a loss that ignores it does
        nothing: both refused, not run as something they are not."""
        if self.loss_type in SMOOTHED_LOSSES and self.label_smoothing == 0:
            raise ValueError(
                f"loss_type {self.loss_type!r} needs label_smoothing > 0 (the probability that a preference label "
                "is flipped, below 0.5; the robust DPO paper uses 0.1): with 0 it is the sigmoid loss exactly"
            )
        if self.loss_type not in SMOOTHED_LOSSES and self.label_smoothing:
            raise ValueError(
                f"label_smoothing {self.label_smoothing:g}: loss_type {self.loss_type!r} ignores it (only "
                f"{', '.join(SMOOTHED_LOSSES)} reads it)"
            )
        return self


def fit_trl_fused_head(model: Any) -> None:
    """What TRL 1.16's fused output head (every DPO and RLOO/GRPO step) reads from the model, made readable
    or refused. It runs the backbone as `model.base_model`: Llama 4's text model names its backbone by the
    multimodal checkpoint's prefix (`language_model`), which it lacks, so `base_model` is the whole model
    and the step fails ("no attribute 'last_hidden_state'"). With the router's load-balancing loss on, it
    reads `config.num_experts`, which PhiMoE's config calls `num_local_experts` (Mixtral's maps the one to
    the other): the same count under TRL's name. Both measured on tiny configs (transformers 5.25)."""
    if getattr(model, "base_model", model) is model:
        raise NotApplicable(
            f"TRL's fused output head runs the backbone as `base_model`, which {type(model).__name__} does not"
            f" name (its base_model_prefix is {model.base_model_prefix!r})"
        )
    text = model.config.get_text_config()
    if hasattr(text, "num_local_experts") and not hasattr(text, "num_experts"):
        text.num_experts = text.num_local_experts


def prepare_policy(model: Any, lora: LoraShape | None) -> Any:
    """Wrap in a LoRA adapter (TRL then uses the adapter's initial state as reference), or unfreeze all."""
    fit_trl_fused_head(model)
    if lora is None:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model
    from peft import get_peft_model

    from bench.strategies.lora import lora_config

    return get_peft_model(model, lora_config(lora, model))


def save_policy(model: Any, directory: Path) -> None:
    """An adapter alone (the trained one, not TRL's frozen reference copy), or the whole model."""
    if hasattr(model, "peft_config"):
        model.save_pretrained(directory, selected_adapters=["default"])
    else:
        save_whole_model(model, directory)


class DPO:
    objective: ClassVar = "dpo"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        return prepare_policy(model, options.lora)

    def save(self, model: Any, directory: Path) -> None:
        save_policy(model, directory)


STRATEGY = DPO()
