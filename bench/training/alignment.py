"""Trainers of the preference objectives, built for bench.training.train (which runs and measures them).

dpo: TRL's DPOTrainer on the preference pairs. The reference model is the disabled adapter (or a
frozen copy of the initial adapter) when the policy is a PeftModel, else the model rebuilt from
`config._name_or_path`, which the worker guarantees is a saved local folder.

rlhf: two phases. `reward`: a sequence-classification copy of the policy's base (score head
fresh, num_labels=1) trained with RewardTrainer on the pairs. `policy`: online optimisation of the
policy against that frozen reward model with RLOO (default) or GRPO (TRL 1.16 has no PPO).

Pairs longer than budget.seq_len: DPOTrainer keeps the start of each prompt + answer (keep_start) and drops
a pair whose prompt alone fills seq_len (no answer token left); RewardTrainer cuts nothing and drops every
pair whose chosen or rejected sequence is longer. Both trainers here count what they cut and dropped
(`truncation`, recorded as budget.truncation like SFT's), and the pairs they keep whose chosen and rejected
are the same ids once cut (differing only after seq_len tokens, or tokenized alike: unknown words): such
a pair gives both answers one log-probability, so no preference to learn (the sigmoid loss: exactly ln 2).
Fewer pairs left that differ than one batch is refused.
"""

from __future__ import annotations

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


def dpo_lengths(full: Any) -> list[int]:
    """Each pair's longest sequence as DPOTrainer builds it (prompt + the longer answer), uncut."""
    return [
        len(prompt) + max(len(chosen), len(rejected))
        for prompt, chosen, rejected in zip(full["prompt_ids"], full["chosen_ids"], full["rejected_ids"], strict=True)
    ]


def reward_lengths(full: Any) -> list[int]:
    """Each pair's longer side as RewardTrainer tokenizes it (the whole prompt + answer)."""
    return [max(len(chosen), len(rejected)) for chosen, rejected in zip(full["chosen_ids"], full["rejected_ids"])]


def same_ids(prompt: list[int], chosen: list[int], rejected: list[int], limit: int | None) -> bool:
    """Whether a kept pair's chosen and rejected are the same token ids at budget.seq_len: prompt + chosen
    against prompt + rejected, cut to `limit` (DPO's collator keeps their start; RewardTrainer cuts nothing:
    None, its sides already hold the prompt: `prompt` []). Such a pair has nothing to learn. The one rule of
    the trainers here and of bench/estimate/lengths.py before any run."""
    return (prompt + chosen)[:limit] == (prompt + rejected)[:limit]


def dpo_identical(prepared: Any, limit: int) -> list[bool]:
    """Per pair DPOTrainer kept: whether its two sequences are the same ids at seq_len (`same_ids`)."""
    columns = zip(prepared["prompt_ids"], prepared["chosen_ids"], prepared["rejected_ids"], strict=True)
    return [same_ids(prompt, chosen, rejected, limit) for prompt, chosen, rejected in columns]


def reward_identical(prepared: Any, limit: int) -> list[bool]:
    """Per pair RewardTrainer kept (none longer than seq_len): whether chosen and rejected are the same ids."""
    columns = zip(prepared["chosen_ids"], prepared["rejected_ids"], strict=True)
    return [same_ids([], chosen, rejected, None) for chosen, rejected in columns]


def truncation_counts(lengths: list[int], kept: int, limit: int, rule: str, identical: int = 0) -> dict[str, Any]:
    """budget.truncation as SFT records it: pairs longer than seq_len, pairs TRL dropped, the longest; and
    `identical`, the pairs kept whose chosen and rejected are the same ids at seq_len (nothing to learn)."""
    return {
        "seq_len": limit,
        "rows": len(lengths),
        "truncated": sum(length > limit for length in lengths),
        "dropped": len(lengths) - kept,
        "identical": identical,
        "longest": max(lengths, default=0),
        "rule": rule,
    }


def refuse_less_than_a_batch(counts: dict[str, Any], batch: int, source: str, trainer: str) -> None:
    """A loader with fewer pairs than a batch makes no step (PyTorch's sampler: `num_samples=0`), and pairs
    whose chosen and rejected are the same ids teach nothing: fewer that differ than a batch is said here."""
    kept = counts["rows"] - counts["dropped"]
    if kept < batch:
        raise ValueError(
            f"preference {source}: {trainer}: {kept} of {counts['rows']} training pairs left after "
            f"budget.seq_len {counts['seq_len']} ({counts['dropped']} dropped: {counts['rule']}; the longest "
            f"{counts['longest']} tokens), fewer than budget.batch_size {batch}: no training step; raise "
            "budget.seq_len or shorten the pairs"
        )
    identical = counts.get("identical", 0)
    if kept - identical < batch:
        raise ValueError(
            f"preference {source}: {trainer}: {identical} of {kept} training pairs have chosen and rejected "
            f"with the same token ids at budget.seq_len {counts['seq_len']} (they differ only after seq_len "
            f"tokens, or tokenize alike), leaving {kept - identical} that differ, fewer than budget.batch_size "
            f"{batch}: no preference to learn (DPO's sigmoid loss stays at ln 2); raise budget.seq_len or make chosen "
            "and rejected differ in their first tokens"
        )


# what each trainer does with a pair longer than seq_len (TRL 1.16's _prepare_dataset and collator)
DPO_RULE = "the prompt alone fills seq_len (the others keep their first seq_len tokens)"
REWARD_RULE = "chosen or rejected longer than seq_len (RewardTrainer cuts nothing, it drops the pair)"


def counting_trainer(
    base: type,
    lengths: Callable[[Any], list[int]],
    rule: str,
    preference: PreferenceData,
    identical: Callable[[Any, int], list[bool]] = dpo_identical,
) -> type:
    """`base` (DPOTrainer, RewardTrainer) counting what budget.seq_len cut and dropped of the training pairs
    and the kept pairs whose chosen and rejected are the same ids at seq_len (`identical`) as `truncation`,
    also left on `preference.truncation`; refusing fewer pairs left that differ than a batch."""

    class Counting(base):
        def _prepare_dataset(self, dataset: Any, processing_class: Any, args: Any, name: str, *rest, **kwargs):
            prepared = super()._prepare_dataset(dataset, processing_class, args, name, *rest, **kwargs)
            if name != "train" or args.max_length is None:
                return prepared
            limit, args.max_length = args.max_length, None
            try:  # prepared once more without the limit: every pair, uncut
                full = super()._prepare_dataset(dataset, processing_class, args, name, *rest, **kwargs)
            finally:
                args.max_length = limit
            same = sum(identical(prepared, limit))
            self.truncation = truncation_counts(lengths(full), len(prepared), limit, rule, same)
            preference.truncation = self.truncation
            batch = args.per_device_train_batch_size * args.world_size
            refuse_less_than_a_batch(self.truncation, batch, preference.source, base.__name__)
            return prepared

    Counting.__name__ = Counting.__qualname__ = base.__name__
    return Counting


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
        label_smoothing=options.label_smoothing,
        max_length=budget.seq_len,
        truncation_mode="keep_start",  # TRL's default, said: the pairs whose prompt fills seq_len are dropped
        precompute_ref_log_probs=options.precompute_ref_log_probs,
    )
    trainer_class = counting_trainer(DPOTrainer, dpo_lengths, DPO_RULE, preference)
    return trainer_class(
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
    reward_trainer_class = counting_trainer(RewardTrainer, reward_lengths, REWARD_RULE, preference, reward_identical)
    yield (
        "reward",
        reward_trainer_class(
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
