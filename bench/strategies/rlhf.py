"""RLHF: a reward model trained on preference pairs (TRL RewardTrainer), then online optimisation
of the policy against it (TRL RLOOTrainer by default, GRPOTrainer as an option). Both phases run
through bench.training.train and are measured separately (docs/alignment.md). TRL 1.16 has no PPO, so
`algorithm: ppo` is refused when the suite is validated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from bench.spec import PositiveFloat, PositiveInt
from bench.strategies.base import LearningRate, NotApplicable, PrepareContext, StrategyOptions
from bench.strategies.dpo import LoraShape, prepare_policy, save_policy


class Options(StrategyOptions):
    learning_rate: LearningRate = 1e-6  # policy; RL on pretrained LMs uses small steps
    algorithm: Literal["rloo", "grpo"] = "rloo"  # TRL 1.16 has no PPOTrainer: ppo is refused here
    num_generations: int = Field(default=4, ge=2)  # completions per prompt (RLOO/GRPO baselines need >= 2)
    max_new_tokens: PositiveInt = 4  # generation length of each completion
    temperature: PositiveFloat = 1.0  # sampling temperature of the generations
    beta: float = Field(default=0.05, ge=0)  # KL penalty towards the reference (0: no reference model)
    reward_learning_rate: LearningRate = 1e-4  # the reward model's own learning rate (phase 1)
    lora: LoraShape | None = None  # policy adapter; None: full fine-tuning of the policy
    start_from: str = "base"  # "base", or the label of an sft strategy in the same suite

    def batch_problem(self, batch_size: int) -> str | None:
        """Why RLOO and GRPO cannot train on this (global) batch, or None: each step scores whole groups
        of completions per prompt. One rule for the trainer, suite validation and bench estimate."""
        if batch_size % self.num_generations == 0:
            return None
        return (
            f"budget.batch_size ({batch_size}) must be a multiple of num_generations ({self.num_generations}): "
            "each step scores whole groups of completions per prompt"
        )


class RLHF:
    objective: ClassVar = "rlhf"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

        if type(model.config) not in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING:  # the reward model's head
            raise NotApplicable(
                f"RLHF's reward model is this model with a sequence-classification head, which transformers has"
                f" none of for {type(model.config).__name__}"
            )
        return prepare_policy(model, options.lora)

    def save(self, model: Any, directory: Path) -> None:
        save_policy(model, directory)


STRATEGY = RLHF()
