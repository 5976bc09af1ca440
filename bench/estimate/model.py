"""Training memory predicted before any training, from the model's config alone.

The model is built on the meta device (shapes and dtypes, no storage), the strategy prepares it
there exactly as it would the real model, and one forward and backward pass runs on meta inputs
of the batch's shape under the same saved-tensor tracker that measures real runs
(bench.measure.components). So weights, gradients and activations come from the real module
structure of any transformers architecture, in seconds even for a 70B config.

What is modelled rather than run:
  - QLoRA: the frozen linear weights (all but the output head) are counted as bitsandbytes
    stores them (4-bit packed, blockwise absmax of 64, double-quantised constants); everything
    else is float32, as PEFT's prepare_model_for_kbit_training leaves it, and so are the
    activations (a quantised layer returns its input's dtype).
  - the optimizer state, from `training.optimizer` (OPTIMIZER_STATE in bench/estimate/meta.py).
  - supervised strategies: the loss's backward holds two float32 gradients over the logits beside
    every saved activation before any parameter gradient exists (`loss_gradients`; the saved-tensor
    hooks do not see them; measured on CPU, docs/memory.md). The step's peak (`Components.peak`,
    what `bench estimate` holds against the device) counts them; the total compared with a run's
    counted components does not.
  - dpo and rlhf's policy: TRL computes log-probabilities through its fused LM head, in tiles, so
    there are no logits; the backbone runs on meta, the head on fake tensors, and its workspace
    (in `loss_gradients`' place, in the peak) depends on the device: torch's float32 tile copies
    on a CPU, Triton tiles on CUDA (bench.estimate.fused_head).
  - sequence length: batches pad to their longest sequence, so `bench estimate` plans for the
    worst step, the longest tokenised training example (at most seq_len; seq_len without the
    data). A run's own estimate is made at the length of the step it measured.
  - dpo: chosen and rejected run in one batch (twice the sequences); the reference pass keeps
    nothing for backward, but the reference is held: a copy of the model (full fine-tuning) or a
    frozen copy of the adapter. rlhf: the larger of its two phases, the reward model training
    while the policy waits, and the policy training while it holds the reward model, a reference
    and a generation cache (bench.estimate.alignment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from bench.estimate.fused_head import FusedHeadLoss
from bench.estimate.meta import (
    LanguageModelLoss,
    activation_peak,
    can_checkpoint,
    checkpointed_peaks,
    estimating_for,
    meta_model,
    optimizer_bytes,
)
from bench.estimate.model_config import ConfigProblem as ConfigProblem  # re-exported: callers import them here
from bench.estimate.model_config import check_model_type as check_model_type
from bench.estimate.model_config import config_from_file as config_from_file
from bench.estimate.model_config import refuse_beyond_positions
from bench.measure.components import COMPONENTS, MIB, Components, count_weights


@dataclass
class Estimate:
    strategy: str
    label: str
    components: Components
    sequences: int  # sequences in one forward pass
    tokens: int  # tokens per sequence the activations were estimated at
    notes: list[str] = field(default_factory=list)
    phases: dict[str, Components] = field(default_factory=dict)  # rlhf: each phase's components
    device: str = "cuda"  # what it was estimated for: "cuda" or "cpu" (estimate_run)

    def total_mib(self) -> float:
        """The step's peak (Components.peak): what a device must hold."""
        return (self.components.peak() or 0) / MIB

    def as_dict(self) -> dict[str, Any]:
        return {
            "bytes": {name: getattr(self.components, name) for name in COMPONENTS},
            "total_bytes": self.components.total(),
            "loss_gradients_bytes": self.components.loss_gradients,
            "peak_bytes": self.components.peak(),
            "weights_by_dtype": self.components.weights_by_dtype,
            "sequences": self.sequences,
            "tokens": self.tokens,
            "notes": self.notes,
            "phase": self.components.phase,
            "phases": {name: phase.total() for name, phase in self.phases.items()},
            "device": self.device,
        }


def expected_batch_tokens(lengths: list[int], batch_size: int, seq_len: int) -> int:
    """The expected longest of `batch_size` random draws from `lengths` (batches pad to it)."""
    if not lengths:
        return seq_len
    ordered = sorted(min(length, seq_len) for length in lengths)
    index = min(len(ordered) - 1, math.ceil(len(ordered) * batch_size / (batch_size + 1)) - 1)
    return ordered[max(index, 0)]


def training_lengths(task: Any, tokenizer: Any) -> list[int]:
    """Tokens per training example as the SFT trainer sees them (prompt, completion, end of sequence)."""
    return [len(tokenizer(example.text)["input_ids"]) + 1 for example in task.train]


def _quantized_bytes(numel: int, options: Any) -> int:
    """A bitsandbytes weight as stored: 4-bit packed with absmax per 64 (double-quantised: 8-bit
    absmax, float32 per 256 of those) and 16-entry code; 8-bit with a float32 scale per row (approx.)."""
    if options.bits == 8:
        return numel + 4 * math.isqrt(numel)
    blocks = math.ceil(numel / 64)
    if options.double_quant:
        return numel // 2 + blocks + 4 * math.ceil(blocks / 256) + 4 * 256 + 4 + 4 * 16
    return numel // 2 + 4 * blocks + 4 * 16


def _quantize_frozen_linears(model: Any, options: Any, components: Components) -> int:
    """Replace the frozen linear weights' bytes (all but the output head) by their quantised size: the
    layers transformers' bitsandbytes integration replaces, exactly `nn.Linear` (not a subclass: Falcon's
    FalconLinear stays unquantised) and GPT-2's Conv1D (measured on CPU: scripts/architecture_runs.py), less
    what QLoRA keeps whole (bench.strategies.base.kept_whole_by_quantisation: Mamba's weight-read layers)."""
    import torch
    from transformers.pytorch_utils import Conv1D

    from bench.strategies.base import kept_whole_by_quantisation

    kept = set(kept_whole_by_quantisation(model))

    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    head_weight = getattr(head, "weight", None)
    full_total = quantized = count = 0
    for name, module in model.named_modules():
        replaced = type(module) is torch.nn.Linear or isinstance(module, Conv1D)
        replaced = replaced and name.rsplit(".", 1)[-1] not in kept
        if replaced and module.weight is not head_weight and not module.weight.requires_grad:
            full_total += module.weight.numel() * module.weight.element_size()
            quantized += _quantized_bytes(module.weight.numel(), options)
            count += 1
    saved = full_total - quantized
    components.weights_frozen = (components.weights_frozen or 0) - saved
    dtype = str(model.dtype).removeprefix("torch.")
    quantized_name = f"{options.quant_type}(4-bit)" if options.bits == 4 else "int8"
    components.weights_by_dtype[quantized_name] = quantized
    components.weights_by_dtype[dtype] = components.weights_by_dtype.get(dtype, 0) - full_total
    return count


def tied_embedding_transient(model: Any) -> int:
    """Bytes held beyond every parameter gradient as backward ends, where the input and output embeddings
    share one trained weight: the LM head's gradient of it waits for the embedding's, and autograd sums
    the two into a third tensor before the first two are freed, so three embedding-sized gradients are
    held where `gradients` counts one (measured on CPU with torch's profiler: docs/memory.md)."""
    inputs = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    outputs = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    weight = getattr(inputs, "weight", None)
    if weight is None or weight is not getattr(outputs, "weight", None) or not weight.requires_grad:
        return 0
    return 2 * weight.numel() * weight.element_size()


def _adapters_to_bfloat16(model: Any) -> None:
    """What trl.SFTTrainer does to a quantised model's trainable weights (all but DoRA's magnitude)."""
    import torch

    for name, parameter in model.named_parameters():
        if parameter.requires_grad and "lora_magnitude_vector" not in name:
            parameter.data = parameter.data.to(torch.bfloat16)


def estimate_run(
    config: Any,
    *,
    dtype: str,
    strategy: str,
    options: dict[str, Any],
    batch_size: int,
    tokens: int,
    optimizer: str = "adamw_torch",
    gradient_checkpointing: bool = False,
    label: str | None = None,
    device: str = "cuda",
) -> Estimate:
    """Memory of one training step of `strategy` on a model of `config`, without loading weights.
    `device` ("cuda" or "cpu") matters to DPO and RLHF, whose fused LM head holds a different workspace
    on each (bench.estimate.fused_head), and to attention with dropout (bench.estimate.meta)."""
    import torch

    from bench.estimate.alignment import add_held_models
    from bench.spec import Budget
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.strategies.base import refuse_checkpointing

    chosen = STRATEGIES.get(strategy)
    parsed = chosen.Options.model_validate(options)
    notes: list[str] = []
    # QLoRA: PEFT's prepare_model_for_kbit_training casts every weight bitsandbytes leaves unquantised
    # (embeddings, norms, head) to float32, and a quantised layer returns its input's dtype, so the
    # whole forward runs in float32 whatever the model's dtype (measured on CPU: docs/memory.md)
    model = meta_model(config, "float32" if strategy == "qlora" else dtype)
    refuse_beyond_positions(model, config, tokens)
    context = PrepareContext(
        tokenizer=None, budget=Budget(batch_size=batch_size, seq_len=tokens), seed=0, device="meta"
    )
    with torch.device("meta"), torch.random.fork_rng(devices=[]):
        if strategy == "qlora":  # the same LoRA on a base bitsandbytes would quantise (see module docstring)
            prepared = STRATEGIES.get("lora").prepare(model, parsed, context)
        else:
            prepared = chosen.prepare(model, parsed, context)
    refuse_checkpointing(prepared, gradient_checkpointing)  # as bench.training.train skips such a run
    if strategy == "qlora":
        _adapters_to_bfloat16(prepared)
        notes.append("adapter weights in bfloat16, as TRL's SFTTrainer casts them on quantised models")
        notes.append("unquantised weights and activations in float32 (prepare_model_for_kbit_training)")
    components = Components()
    count_weights(prepared, components)
    if strategy == "qlora":
        layers = _quantize_frozen_linears(prepared, parsed, components)
        notes.append(f"{layers} frozen linear layers counted as {parsed.bits}-bit storage")
    components.gradients = sum(p.numel() * p.element_size() for p in prepared.parameters() if p.requires_grad)
    components.optimizer, what = optimizer_bytes(prepared, optimizer)
    notes.append(f"optimizer {optimizer}: {what}")
    components.gradients_transient = tied_embedding_transient(prepared)
    if components.gradients_transient:
        notes.append("tied embeddings trained: two more embedding-sized gradients as backward ends, in the peak")
    sequences = batch_size * (2 if chosen.objective == "dpo" else 1)
    with estimating_for(device):  # the forward passes: attention with dropout keeps more on a CPU
        _count_activations(
            components, prepared, chosen.objective, sequences, tokens, config, gradient_checkpointing, device, notes
        )
        phases = add_held_models(
            components, objective=chosen.objective, options=parsed, config=config, dtype=dtype, policy=prepared,
            batch_size=batch_size, tokens=tokens, optimizer=optimizer, notes=notes,
            gradient_checkpointing=gradient_checkpointing,
        )  # fmt: skip
    if components.phase == "reward":  # the reward model trains on chosen and rejected together
        sequences = 2 * batch_size
    return Estimate(strategy, label or strategy, components, sequences, tokens, notes, phases, device)


def _count_activations(
    components: Components,
    prepared: Any,
    objective: str,
    sequences: int,
    tokens: int,
    config: Any,
    gradient_checkpointing: bool,
    device: str,
    notes: list[str],
) -> None:
    """What autograd keeps over the step (checkpointed or not), and what its loss holds beyond that:
    transformers' float32 gradients over the logits, or the workspace of TRL's fused LM head."""
    loss = LanguageModelLoss() if objective == "sft" else FusedHeadLoss()
    if gradient_checkpointing and can_checkpoint(prepared):
        components.activations, components.activations_at_loss, components.activations_without_checkpointing = (
            checkpointed_peaks(prepared, sequences, tokens, config, loss)
        )
        notes.append("gradient checkpointing: layer inputs kept, plus one layer's activations while it is recomputed")
    else:
        components.activations = activation_peak(prepared, sequences, tokens, loss)
    if isinstance(loss, LanguageModelLoss):
        components.loss_gradients = loss.gradient_bytes()
        notes.append("the loss's backward: float32 gradients over the logits, 8 bytes a logit, in the peak")
        return
    head = loss.memory(objective, device)  # DPO and RLHF: TRL's fused LM head
    components.activations += head.saved
    if components.activations_at_loss is not None:
        components.activations_at_loss += head.saved
    if components.activations_without_checkpointing is not None:
        components.activations_without_checkpointing += head.saved
    components.loss_gradients = head.workspace
    path = "Triton tiles" if device == "cuda" else "torch's float32 tile copies"
    notes.append(f"TRL's fused LM head ({path} on {device}): no logits; its workspace is in the peak")


def estimate_spec(
    spec: Any,
    config: Any,
    tokens: int,
    batch_size: int | None = None,
    gradient_checkpointing: bool | None = None,
    device: str | None = None,
) -> Estimate:
    """`estimate_run` for one run's spec (a RunSpec, or a record's spec as stored), at its own batch,
    checkpointing and device unless told others: the one place a spec's fields become the estimator's arguments."""
    fields = spec.model_dump(mode="json") if hasattr(spec, "model_dump") else spec
    training = fields.get("training") or {}
    if gradient_checkpointing is None:
        gradient_checkpointing = training.get("gradient_checkpointing", False)
    batch = batch_size or fields["budget"]["batch_size"]
    processes = int(fields.get("processes") or 1)
    estimate = estimate_run(
        config,
        dtype=fields["model"]["dtype"],
        strategy=fields["strategy"],
        options=fields.get("options") or {},
        batch_size=max(batch // processes, 1),  # the batch is global: each process takes its share
        tokens=tokens,
        optimizer=training.get("optimizer", "adamw_torch"),
        gradient_checkpointing=gradient_checkpointing,
        label=fields.get("label"),
        device=device or spec_device(fields.get("device")),
    )
    if processes > 1:
        estimate.notes.append(f"per process: {processes} processes share the global batch of {batch}")
        if fields.get("parallel") == "fsdp":
            estimate.notes.append("fsdp shards weights, gradients and optimizer state: these are a whole replica's")
    return estimate


def spec_device(device: str | None) -> str:
    """A spec's device as the estimate needs it: "auto" is where a run would go on this machine
    (bench/run/phases.py); a record made before specs named their device, "cpu"."""
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return "cuda" if device and device.startswith("cuda") else "cpu"


def parse_bytes(text: str, allow_zero: bool = False) -> int:
    """'24GiB', '80 GB', '512MiB', '1e9' -> bytes; raises ValueError naming the text."""
    units = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
    units |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(number) :]
    try:
        value = float(number)
    except ValueError:
        value = float("nan")
    size = int(value * units[unit]) if unit in units and math.isfinite(value) else -1
    if size < 0 or value < 0 or (size == 0 and not allow_zero):  # '1e-12GiB' is no byte at all
        raise ValueError(f"{text!r} is not a memory size (examples: 24GiB, 80GB, 512MiB)")
    return size
