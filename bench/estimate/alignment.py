"""Every model a preference method holds, for bench.estimate.model (docs/memory.md, "DPO and RLHF").

What TRL 1.16 keeps besides the model it trains, read from its trainers and checked against the
counted components of real runs (tests/test_estimate_alignment.py):

  dpo   full fine-tuning: a reference copy of the whole model (DPOTrainer rebuilds it from the
        policy's folder), unless `precompute_ref_log_probs` is set: then the reference log-probs
        are computed once before training and each batch carries two numbers per pair.
        LoRA: the reference is the base with the adapter disabled, but TRL adds a frozen "ref"
        adapter, a copy of the initial one, to a PeftModel it is given: frozen weights grow by
        the adapter's bytes.
  rlhf  two phases, each its own peak:
        reward  a sequence-classification copy of the base (one-output score head) trains in
                full on chosen and rejected in one batch, while the policy waits in memory;
        policy  the policy trains on its own generations (RLOO/GRPO), holding the frozen reward
                model, a reference copy when it trains in full with beta > 0 (LoRA: the "ref"
                adapter copy, as for DPO), and while it generates, a key/value cache for every
                sequence of the step at the full prompt-and-completion length.
        The estimate is the phase with the larger peak; both are kept in `Estimate.phases`.
  DPO and the policy phase compute log-probabilities through TRL's fused LM head, not the model's own
  loss: no logits, and a workspace of their own in the peak (bench.estimate.fused_head).
"""

from __future__ import annotations

from typing import Any

from bench.estimate.meta import (
    activation_peak,
    attention_for,
    checkpointed_peaks,
    on_meta,
    optimizer_bytes,
)
from bench.measure.components import Components, cache_bytes, count_weights


def _weights_bytes(model: Any) -> int:
    components = Components()
    count_weights(model, components)
    return (components.weights_trainable or 0) + (components.weights_frozen or 0)


def _adapter_bytes(model: Any) -> int:
    """What TRL's "ref" adapter copy adds: the trainable adapter's bytes, when the model is a PeftModel."""
    if not hasattr(model, "peft_config"):
        return 0
    return sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)


def generation_cache(model: Any, sequences: int, tokens: int) -> int:
    """Bytes of the key/value cache a forward over `sequences` x `tokens` returns (meta device)."""
    import torch

    ids = torch.zeros(sequences, tokens, dtype=torch.long, device="meta")
    with torch.no_grad(), on_meta():
        output = model(input_ids=ids, use_cache=True)
    return cache_bytes(getattr(output, "past_key_values", None))


def _reward_loss(model: Any, ids: Any) -> Any:
    return model(input_ids=ids, use_cache=False).logits.sum()


def _reward_model_phase(
    config: Any, dtype: str, policy: Any, sequences: int, tokens: int, optimizer: str, checkpointing: bool
) -> Components:
    """The reward phase: a one-output classification copy of the base trains in full on chosen and
    rejected together (checkpointed as the policy is: the trainers share training.gradient_checkpointing);
    the policy (adapter included) is held."""
    reward = _reward_model(config, dtype)
    components = Components()
    count_weights(reward, components)
    components.gradients = sum(p.numel() * p.element_size() for p in reward.parameters())
    components.optimizer, _ = optimizer_bytes(reward, optimizer)
    components.other_models = _weights_bytes(policy)
    components.generation_cache = 0
    if checkpointing:
        components.activations, components.activations_at_loss, components.activations_without_checkpointing = (
            checkpointed_peaks(reward, sequences, tokens, config, _reward_loss)
        )
    else:
        components.activations = activation_peak(reward, sequences, tokens, _reward_loss)
    # its loss is over one score a sequence: no logits to speak of, so its peak is fine-tuning's in full
    # (Components.peak: backward frees each layer's activations as that layer's gradients appear)
    components.loss_gradients = 0
    components.phase = "reward"
    return components


def _reward_model(config: Any, dtype: str) -> Any:
    """The reward model on the meta device, as bench.training.alignment builds it (num_labels = 1)."""
    import copy

    import torch
    from transformers import AutoModelForSequenceClassification
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING

    config = copy.deepcopy(config)
    config.num_labels = 1
    if getattr(config, "pad_token_id", None) is None:
        config.pad_token_id = 0  # the head reads the last non-padding token; any id does on meta
    attention = attention_for(MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING[type(config)], config)
    with torch.device("meta"):
        model = AutoModelForSequenceClassification.from_config(
            config, dtype=getattr(torch, dtype), attn_implementation=attention
        )
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    return model


def add_held_models(
    components: Components,
    *,
    objective: str,
    options: Any,
    config: Any,
    dtype: str,
    policy: Any,
    batch_size: int,
    tokens: int,
    optimizer: str,
    notes: list[str],
    gradient_checkpointing: bool = False,
) -> dict[str, Components]:
    """Fill `other_models` and `generation_cache` of the trained model's components in place (and
    the "ref" adapter into its frozen weights); for rlhf, return both phases (the larger is copied
    into `components`). SFT methods hold nothing else."""
    components.other_models = 0
    components.generation_cache = 0
    if objective not in ("dpo", "rlhf"):
        return {}
    adapter = _adapter_bytes(policy)
    if adapter:
        components.weights_frozen = (components.weights_frozen or 0) + adapter
        notes.append("frozen 'ref' adapter: TRL copies the initial adapter as the reference")
    full_copy = not adapter and not hasattr(policy, "peft_config")
    if objective == "dpo":
        if full_copy and not getattr(options, "precompute_ref_log_probs", False):
            components.other_models = _weights_bytes(policy)
            notes.append("reference: a frozen copy of the whole model")
        elif full_copy:
            notes.append("reference log-probs precomputed before training: no reference copy is held")
        return {}
    reward = _reward_model(config, dtype)
    held = _weights_bytes(reward)
    if full_copy and getattr(options, "beta", 0) > 0:
        held += _weights_bytes(policy)
        notes.append("reference: a frozen copy of the whole policy (beta > 0)")
    components.other_models = held
    components.generation_cache = generation_cache(policy, batch_size, tokens)
    components.phase = "policy"
    notes.append("policy phase holds the frozen reward model and, while generating, a key/value cache")
    reward_phase = _reward_model_phase(config, dtype, policy, 2 * batch_size, tokens, optimizer, gradient_checkpointing)
    policy_phase = _copy(components)
    if (reward_phase.peak() or 0) > (policy_phase.peak() or 0):  # the policy's peak has its fused head's workspace
        notes.append("the reward phase is the larger: the estimate is its peak")
        for name, value in vars(reward_phase).items():
            setattr(components, name, value)
    return {"reward": reward_phase, "policy": policy_phase}


def _copy(components: Components) -> Components:
    import copy

    return copy.deepcopy(components)
