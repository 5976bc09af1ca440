"""Trainers of the preference objectives, built for bench.training.train (which runs and measures them).

dpo: TRL's DPOTrainer on the preference pairs. The reference model is the disabled adapter (or a
frozen copy of the initial adapter) when the policy is a PeftModel, else the model rebuilt from
`config._name_or_path`, which the worker guarantees is a saved local folder.

rlhf: two phases. `reward`: a sequence-classification copy of the policy's base (score head
fresh, num_labels=1) trained with RewardTrainer on the pairs. `policy`: online optimisation of the
policy against that frozen reward model with RLOO (default) or GRPO. TRL 1.16 has no PPO; the
option `ppo` looks for one and fails with a clear message when the installed TRL lacks it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.registry import Registry
from bench.spec import Budget
from bench.strategies.base import base_model_of
from bench.tasks.preference import PreferenceData


def _pairs_dataset(preference: PreferenceData, tokenizer: Any):
    """The training pairs as the file gave them (an implicit prompt left inside chosen and rejected, for
    TRL to split off), so the trainers render them as they would render the file."""
    from datasets import Dataset

    if preference.format.startswith("conversational") and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"model {getattr(tokenizer, 'name_or_path', '') or '?'!r} has no chat template, and the preference "
            f"pairs are {preference.format}: give one with the suite's model.chat_template"
        )
    return Dataset.from_list([pair.row() for pair in preference.train])


def dpo_trainer(model: Any, tokenizer: Any, task: Any, arguments: dict[str, Any], budget: Budget, **inputs: Any):
    from trl import DPOConfig, DPOTrainer

    options, preference = inputs["options"], inputs["preference"]
    reference = None
    if not hasattr(model, "peft_config") and not options.precompute_ref_log_probs and not has_weights(model):
        # TRL would rebuild the reference from `_name_or_path`, which holds no weights here (model.config:
        # random weights; hub: an id): a frozen copy of the policy as it starts is the reference
        reference = frozen_copy(model)
    config = DPOConfig(
        **arguments,
        beta=options.beta,
        loss_type=[options.loss_type],
        max_length=budget.seq_len,
        precompute_ref_log_probs=options.precompute_ref_log_probs,
    )
    return DPOTrainer(
        model=model,
        ref_model=reference,
        args=config,
        train_dataset=_pairs_dataset(preference, tokenizer),
        processing_class=tokenizer,
    )


def has_weights(model: Any) -> bool:
    """Whether the folder the model names (`config._name_or_path`) holds weights TRL can rebuild it from."""
    folder = base_model_of(model).config._name_or_path
    if not folder or not Path(folder, "config.json").exists():
        return False
    return any(any(Path(folder).glob(pattern)) for pattern in ("*.safetensors", "*.bin", "*.safetensors.index.json"))


def frozen_copy(model: Any) -> Any:
    import copy

    reference = copy.deepcopy(model)
    reference.eval()
    for parameter in reference.parameters():
        parameter.requires_grad_(False)
    return reference


def save_initial_weights(model: Any, folder: Path) -> None:
    """Give a policy whose `_name_or_path` holds no weights a folder that does: its own weights as they are
    before training (a LoRA policy's base, adapter left out), so the reward model and TRL's rebuilt
    reference start from the policy, not from a failed or different load."""
    base = base_model_of(model)
    state = {
        name.replace(".base_layer.", "."): tensor
        for name, tensor in base.state_dict().items()
        if "lora_" not in name  # a LoRA-wrapped layer keeps the base weight as `<layer>.base_layer.weight`
    }
    base.save_pretrained(folder, state_dict=state)
    base.config._name_or_path = str(folder)


def base_folder(model: Any) -> str:
    """The local folder the policy was loaded from (its `_name_or_path`)."""
    config = base_model_of(model).config
    folder = config._name_or_path
    if not folder or not Path(folder, "config.json").exists():
        raise ValueError(f"rlhf needs the policy loaded from a local folder; config._name_or_path is {folder!r}")
    return folder


def reward_model_from(model: Any, tokenizer: Any) -> Any:
    """A scalar-head copy of the policy's base weights (the usual initialisation of a reward model)."""
    from transformers import AutoConfig, AutoModelForSequenceClassification

    folder = base_folder(model)
    config = AutoConfig.from_pretrained(folder)
    config.num_labels = 1  # must be set on the config first (FINDINGS)
    config.pad_token_id = tokenizer.pad_token_id  # the head reads the last non-padding token
    reward = AutoModelForSequenceClassification.from_pretrained(folder, config=config, dtype=model.dtype)
    return reward.to(model.device)


def reward_function(reward_model: Any, tokenizer: Any):
    """The frozen reward model as a TRL reward function over token ids (TRL's built-in path joins
    prompt and completion as text, which changes the tokens for word-level tokenizers). Conversational
    prompts: the answer as an assistant message, rendered with the chat template as RewardTrainer did."""
    from bench.evaluate.alignment import reward_scores, score_sequences

    def reward_model_score(prompts: list[Any], completions: list[Any], completion_ids: list[list[int]], **_: Any):
        if prompts and isinstance(prompts[0], list):
            return reward_scores(reward_model, tokenizer, prompts, completions)
        return score_sequences(reward_model, tokenizer, prompts, completion_ids)

    return reward_model_score


def _ppo() -> tuple[Any, Any]:
    import trl

    modules = [trl]
    if importlib.util.find_spec("trl.experimental.ppo") is not None:
        modules.append(importlib.import_module("trl.experimental.ppo"))
    for module in modules:
        if hasattr(module, "PPOTrainer") and hasattr(module, "PPOConfig"):
            return module.PPOConfig, module.PPOTrainer
    raise NotImplementedError(
        f"rlhf algorithm 'ppo': the installed TRL {trl.__version__} has no PPOTrainer (neither trl nor "
        "trl.experimental.ppo); use algorithm: rloo or grpo"
    )


def _rloo() -> tuple[Any, Any]:
    from trl import RLOOConfig, RLOOTrainer

    return RLOOConfig, RLOOTrainer


def _grpo() -> tuple[Any, Any]:
    from trl import GRPOConfig, GRPOTrainer

    return GRPOConfig, GRPOTrainer


# rlhf's `algorithm` -> (its TRL config class, its trainer class), imported when chosen
ALGORITHMS: Registry[Callable[[], tuple[Any, Any]]] = Registry("rlhf algorithm")
ALGORITHMS.add("rloo", _rloo)
ALGORITHMS.add("grpo", _grpo)
ALGORITHMS.add("ppo", _ppo)


def rlhf_phases(
    model: Any, tokenizer: Any, task: Any, arguments: dict[str, Any], budget: Budget, **inputs: Any
) -> Iterator[tuple[str, Any, list[Any]]]:
    """(phase, trainer, the models it holds beside the one it trains), one phase at a time."""
    from datasets import Dataset
    from trl import RewardConfig, RewardTrainer

    options, preference, artefacts = inputs["options"], inputs["preference"], inputs["artefacts"]
    problem = options.batch_problem(budget.batch_size)
    if problem:
        raise ValueError(f"rlhf: {problem}")
    config_class, trainer_class = ALGORITHMS.get(options.algorithm)()  # fail before any training
    output = Path(arguments["output_dir"])
    if not has_weights(model):  # model.config (random weights) or hub: the reward model copies the policy's
        save_initial_weights(model, output / "initial")

    reward_model = reward_model_from(model, tokenizer)
    reward_arguments = {**arguments, "learning_rate": options.reward_learning_rate}
    reward_arguments["output_dir"] = str(output / "reward")
    reward_config = RewardConfig(**reward_arguments, max_length=budget.seq_len)
    yield (
        "reward",
        RewardTrainer(
            model=reward_model,
            args=reward_config,
            train_dataset=_pairs_dataset(preference, tokenizer),
            processing_class=tokenizer,
        ),
        [model],  # the policy waits in memory while the reward model trains
    )

    reward_model.eval()
    for parameter in reward_model.parameters():
        parameter.requires_grad_(False)
    artefacts["reward_model"] = reward_model
    prompts = Dataset.from_list([{"prompt": pair.prompt} for pair in preference.train])
    policy_config = config_class(
        **{**arguments, "output_dir": str(output / "policy")},
        num_generations=options.num_generations,
        max_completion_length=options.max_new_tokens,
        temperature=options.temperature,
        beta=options.beta,
    )
    yield (
        "policy",
        trainer_class(
            model=model,
            reward_funcs=reward_function(reward_model, tokenizer),
            args=policy_config,
            train_dataset=prompts,
            processing_class=tokenizer,
            reward_processing_classes=tokenizer,
        ),
        [
            reward_model
        ],  # frozen; the trainer's own reference copy (full fine-tuning, beta > 0) is added by bench.training.train
    )
