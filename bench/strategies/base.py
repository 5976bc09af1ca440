"""The Strategy protocol. A strategy only prepares the model and names its objective; training,
measuring and evaluating are shared by all strategies (bench.training.train, bench.measure, bench.evaluate).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from bench.spec import Budget

# No optimizer setting in practice goes near 10; above it a run only diverges.
LearningRate = Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)]

Objective = Literal["sft", "dpo", "rlhf"]


class StrategyOptions(BaseModel):
    """Options every strategy accepts; each strategy subclasses this with its own fields and defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)

    label: str | None = None  # name in reports; lets one suite compare two settings of a strategy
    learning_rate: LearningRate = 1e-4


class NotApplicable(Exception):
    """Raised by `prepare` when the strategy cannot apply to this model; the run is recorded as skipped."""


def refuse_checkpointing(model: Any, gradient_checkpointing: bool) -> None:
    """NotApplicable where checkpointing is asked for and the prepared model says it cannot train so
    (`bench_no_gradient_checkpointing`, its reason: prefix tuning); the run is skipped with it, and
    bench estimate says the same."""
    reason = getattr(model, "bench_no_gradient_checkpointing", None)
    if gradient_checkpointing and isinstance(reason, str):
        raise NotApplicable(reason)


@dataclass
class PrepareContext:
    tokenizer: Any
    budget: Budget
    seed: int
    device: str


class Strategy(Protocol):
    objective: ClassVar[Objective]  # which trainer in bench.training.train runs it
    Options: ClassVar[type[StrategyOptions]]

    def prepare(self, model: Any, options: StrategyOptions, context: PrepareContext) -> Any:
        """Return the model to train, with exactly the intended parameters trainable."""
        ...

    def save(self, model: Any, directory: Path) -> None:
        """Write what must be stored per task (an adapter, or the whole model)."""
        ...


def save_whole_model(model: Any, directory: Path) -> None:
    model.save_pretrained(directory)


TRAINED_WEIGHTS = "trained_parameters.safetensors"


def save_trained_parameters(model: Any, directory: Path) -> None:
    """Only the parameters that trained, for a strategy that trains some of the base model's own weights in
    place (BitFit's biases): what a task must store beside the shared base model, and what storage.bytes
    counts. load_trained_parameters puts them back into a fresh base model."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    trained = {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}
    save_file(trained, str(directory / TRAINED_WEIGHTS))


def load_trained_parameters(base_model: Any, directory: Path) -> Any:
    from safetensors.torch import load_file

    trained = load_file(str(directory / TRAINED_WEIGHTS))
    unexpected = base_model.load_state_dict(trained, strict=False).unexpected_keys
    if unexpected:
        raise ValueError(f"{directory}: parameters the base model does not have: {unexpected[:5]}")
    return base_model


def save_adapter(model: Any, directory: Path) -> None:
    """A PEFT model saves only its adapter weights and config."""
    model.save_pretrained(directory)


def linear_layer_names(model: Any) -> set[str]:
    """The last name of each linear layer (`k_proj`, `down_proj`): what PEFT's target modules match."""
    from torch import nn

    return {name.rsplit(".", 1)[-1] for name, module in model.named_modules() if isinstance(module, nn.Linear)}


# How architectures name the projections that IA3 and VeRA target, for those PEFT's tables do not know:
# one fused query-key-value projection (Phi-3, Persimmon, CodeGen, MPT, DBRX), multi-head latent
# attention's keys and values from their latent (DeepSeek-V2/V3, `kv_b_proj`), the MLP's output.
FUSED_QKV = ("qkv_proj", "query_key_value", "Wqkv")
MLP_OUTPUTS = ("down_proj", "fc_out", "dense_4h_to_h", "fc2", "w2")


def keys_and_values(names: set[str]) -> list[str]:
    """The linear layers that make keys and values, by their names: Llama's pair, MLA's, or a fused one."""
    if {"k_proj", "v_proj"} <= names:
        return ["k_proj", "v_proj"]
    return ["kv_b_proj"] if "kv_b_proj" in names else [name for name in FUSED_QKV if name in names][:1]


def queries_and_values(names: set[str]) -> list[str]:
    """The linear layers that make queries and values: Llama's pair, MLA's (queries from their own
    latent where the model has one), or a fused one."""
    if {"q_proj", "v_proj"} <= names:
        return ["q_proj", "v_proj"]
    if "kv_b_proj" in names:
        return [*[name for name in ("q_b_proj", "q_proj") if name in names][:1], "kv_b_proj"]
    return [name for name in FUSED_QKV if name in names][:1]


def mlp_output(names: set[str]) -> list[str]:
    """The MLP's output projection by its name, if any (a mixture of experts' fused experts are none)."""
    return [name for name in MLP_OUTPUTS if name in names][:1]


# Projections that state-space models read by their weight, past any module wrapping them (transformers
# 5.25): Mamba's and Falcon-Mamba's fused CUDA kernel takes the weights of x_proj, dt_proj, out_proj and
# conv1d, their other path dt_proj's (measured on a CPU: a LoRA there never trained; QLoRA's packed weight
# there failed the first step); Jamba reads dt_proj's unless the model is quantised. PEFT itself refuses
# out_proj and conv1d in Mamba-based models (its _check_lora_target_modules_mamba), Mamba-2's included.
READ_BY_WEIGHT: dict[str, frozenset[str]] = {
    **dict.fromkeys(("mamba", "falcon_mamba"), frozenset({"x_proj", "dt_proj", "out_proj", "conv1d"})),
    "jamba": frozenset({"dt_proj"}),
    **dict.fromkeys(("mamba2", "falcon_h1", "nemotron_h"), frozenset({"out_proj", "conv1d"})),
}
QUANTISED_READ_BY_WEIGHT = frozenset({"mamba", "falcon_mamba"})  # Jamba calls dt_proj when quantised


def read_by_weight(model: Any) -> frozenset[str]:
    """The module names (last part) this model's forward reads by their weight (READ_BY_WEIGHT)."""
    return READ_BY_WEIGHT.get(getattr(model.config, "model_type", None), frozenset())


def kept_whole_by_quantisation(model: Any) -> list[str]:
    """Linear layers QLoRA must leave unquantised: those a Mamba reads by their packed weight."""
    if getattr(model.config, "model_type", None) not in QUANTISED_READ_BY_WEIGHT:
        return []
    return sorted(read_by_weight(model) - {"conv1d"})  # bitsandbytes quantises linear layers only


def left_out_of_all_linear(model: Any, target_modules: Any) -> list[str]:
    """What PEFT's "all-linear" reaches and its adapters cannot train, where `target_modules` is "all-linear"
    (LoRA's family and LoHa; a suite's own list is taken as written). Mixture-of-experts routers that are
    linear layers by class but return (scores, experts) (Llama 4's `Llama4Router`, PhiMoE's
    `PhimoeTopKRouter`: "'tuple' object has no attribute 'dtype'" in the first forward; elsewhere the
    router is no nn.Linear and never reached), and the projections a state-space model reads by weight."""
    from torch import nn

    if target_modules != "all-linear":
        return []
    by_weight = read_by_weight(model)
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear)
        and (type(module).__name__.endswith("Router") or name.rsplit(".", 1)[-1] in by_weight)
    ]


def freeze_all(model: Any) -> None:
    for parameter in model.parameters():
        parameter.requires_grad_(False)


# --- Optional hooks. A strategy may define any of these; callers look them up with `getattr`. ---
#   load(base_model, directory) -> model     rebuild the tuned model from what save() wrote
#   merge(model) -> model                    fold the update into the base weights (LoRA family);
#                                            the worker then measures latency merged as well
#   size_for(model, options, target, context) -> Sizing
#                                            choose the size option (rank, width, virtual tokens)
#                                            whose trainable-parameter count is closest to target


@dataclass
class Sizing:
    """What `size_for` chose: the options to use, the option it set and the count it reaches."""

    options: Any
    field: str
    value: int
    trainable: int


def base_model_of(model: Any) -> Any:
    """The transformers model under a PEFT wrapper, or the model itself where there is none."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def runs_folder_code(cls: type) -> bool:
    """Whether a model or config class is a model folder's own code: transformers' dynamic modules, which
    only `trust_remote_code` loads (a suite's `model.trust_remote_code`)."""
    return cls.__module__.startswith("transformers_modules.")


def remote_code(model: Any) -> dict[str, bool]:
    """`trust_remote_code` for reloading a saved copy of `model` (QLoRA's quantised reload, a trained full
    model, an aligned parent): true exactly where the model already runs its folder's own code."""
    return {"trust_remote_code": runs_folder_code(type(base_model_of(model)))}


def load_whole_model(base_model: Any, directory: Path) -> Any:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(directory, dtype=base_model.dtype, **remote_code(base_model)).to(
        base_model.device
    )


def load_adapter(base_model: Any, directory: Path) -> Any:
    from peft import PeftModel

    return PeftModel.from_pretrained(base_model, directory)


def merge_adapter(model: Any) -> Any:
    """PEFT: add the low-rank update into the base weights and drop the adapter modules."""
    return model.merge_and_unload()


class MergeablePeftAdapter:
    """save/load/merge shared by PEFT adapters that fold into the base weights (LoRA, LoHa, VeRA, IA3)."""

    objective: ClassVar[Objective] = "sft"

    def save(self, model: Any, directory: Path) -> None:
        save_adapter(model, directory)

    def load(self, base_model: Any, directory: Path) -> Any:
        return load_adapter(base_model, directory)

    def merge(self, model: Any) -> Any:
        return merge_adapter(model)


def virtual_token_shape(model: Any) -> dict[str, int]:
    """Layers, width and heads for PEFT's prompt-learning configs, read through the config's attribute
    names (MPT's `n_heads`, DBRX's `d_model`), which PEFT's own lookup of the config's dictionary does not
    know ("Please specify `num_attention_heads` in `peft_config`")."""
    text = model.config.get_text_config()
    shape = {
        "num_layers": getattr(text, "num_hidden_layers", None),
        "token_dim": getattr(text, "hidden_size", None),
        "num_attention_heads": getattr(text, "num_attention_heads", None),
    }
    return {field: value for field, value in shape.items() if value is not None}


class VirtualTokenAdapter:
    """save/load/size_for shared by PEFT's prompt-learning adapters (prompt and prefix tuning): never
    merged; `restore` puts back on a loaded model the hook `prepare` put on the trained one; sized by
    `num_virtual_tokens`."""

    objective: ClassVar[Objective] = "sft"

    def restore(self, model: Any) -> None:
        raise NotImplementedError

    def save(self, model: Any, directory: Path) -> None:
        save_adapter(model, directory)

    def load(self, base_model: Any, directory: Path) -> Any:
        model = load_adapter(base_model, directory)
        self.restore(model)
        return model

    def size_for(self, model: Any, options: Any, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "num_virtual_tokens", target)


def count_trainable(model: Any) -> int:
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)


def size_by_trial(
    strategy: Any, model: Any, options: Any, context: PrepareContext, field: str, target: int, upper: int = 4096
) -> Sizing:
    """Search the integer option `field` (the trainable count grows with it) by doubling, then
    bisection, preparing a copy of the model per trial: exact for any strategy, ~2 log2(value) trials."""
    import copy

    counts: dict[int, int] = {}

    def count(value: int) -> int:
        if value not in counts:
            trial = strategy.prepare(copy.deepcopy(model), options.model_copy(update={field: value}), context)
            counts[value] = count_trainable(trial)
        return counts[value]

    low, high = 1, 1
    while high < upper and count(high) < target:  # doubling keeps the trials small
        low, high = high + 1, min(high * 2, upper)
    while low < high:  # smallest value whose count reaches the target
        middle = (low + high) // 2
        if count(middle) >= target:
            high = middle
        else:
            low = middle + 1
    best = min({low, max(low - 1, 1)}, key=lambda value: abs(count(value) - target))
    return Sizing(options.model_copy(update={field: best}), field, best, count(best))
