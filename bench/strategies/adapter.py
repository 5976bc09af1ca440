"""Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2020), hand-written.

Why our own module: PEFT 0.21 has no bottleneck adapters, and the `adapters` package (1.3.0)
pins transformers ~=4.57 and does not import with huggingface_hub 1.x (see FINDINGS.md).

Each adapter is down-projection -> nonlinearity -> up-projection, added to its input (residual).
The up-projection starts at zero, so the tuned model equals the base model at step 0.
Houlsby: after the attention output projection and after the MLP output projection of every
block; Pfeiffer: after the MLP output only. The nonlinearity means adapters cannot be merged
into the base weights: their inference cost stays, and the latency metrics show it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar, Literal

from bench.spec import PositiveInt
from bench.strategies.base import (
    LearningRate,
    NotApplicable,
    PrepareContext,
    Sizing,
    StrategyOptions,
    freeze_all,
    size_by_trial,
)

# Output projections of attention and MLP for architectures that name them their own way
# (model.config.model_type); every other architecture is read by its module names (NAMINGS, below).
SITES: dict[str, tuple[str, str]] = {
    "gpt_neox": ("attention.dense", "mlp.dense_4h_to_h"),
    **dict.fromkeys(("falcon", "bloom"), ("self_attention.dense", "mlp.dense_4h_to_h")),
    "gptj": ("attn.out_proj", "mlp.fc_out"),
    "opt": ("self_attn.out_proj", "fc2"),
    "phi": ("self_attn.dense", "mlp.fc2"),
}
WEIGHTS, CONFIG = "adapter_model.safetensors", "adapter_config.json"


class Options(StrategyOptions):
    learning_rate: LearningRate = 1e-4  # AdapterHub's recommended rate (Pfeiffer et al. 2020)
    variant: Literal["houlsby", "pfeiffer"] = "houlsby"
    bottleneck: PositiveInt | None = None  # adapter width; None: hidden_size // reduction_factor
    reduction_factor: PositiveInt = 16  # AdapterHub default for both variants
    activation: Literal["relu", "gelu", "silu", "tanh"] = "relu"  # AdapterHub's Pfeiffer default
    sites: tuple[str, str] | None = None  # (attention output, MLP output) module suffixes; None: SITES or NAMINGS


def _bottleneck_module(size: int, width: int, activation: str, like: Any):
    import torch
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.down = nn.Linear(size, width)
            self.act = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh}[activation]()
            self.up = nn.Linear(width, size)
            nn.init.zeros_(self.up.weight)  # identity at step 0
            nn.init.zeros_(self.up.bias)

        def forward(self, hidden: torch.Tensor) -> torch.Tensor:
            return hidden + self.up(self.act(self.down(hidden)))

    class WithAdapter(nn.Module):
        """The original module, then the adapter on its output (on the first of a tuple: an expert block
        returns its router's scores beside the hidden states, as Llama 4's, GPT-OSS's and DBRX's do)."""

        def __init__(self, base: nn.Module) -> None:
            super().__init__()
            self.base = base
            self.adapter = Bottleneck().to(device=like.device, dtype=like.dtype)

        def forward(self, *args: Any, **kwargs: Any) -> Any:
            output = self.base(*args, **kwargs)
            if isinstance(output, tuple):
                return (self.adapter(output[0]), *output[1:])
            return self.adapter(output)

    return WithAdapter


# Where the table has no entry: the first of these namings whose two modules the model has. Most
# architectures name theirs as Llama does (Mistral, Qwen, Gemma, Phi-3, StableLM, OLMo, Granite, Cohere,
# DeepSeek, ...); StarCoder2's MLP ends in `c_proj`, GPT-2's Conv1D layers too (an adapter wraps any
# module); CodeGen as GPT-J, MPT, LFM2 (whose convolution layers have no attention: their MLP only),
# Falcon-H1, Nemotron-H (whose layers are each one mixer: attention, MLP or Mamba). A
# mixture of experts has no single MLP projection: its adapter follows the block that holds the experts.
NAMINGS: tuple[tuple[str, str], ...] = (
    ("self_attn.o_proj", "mlp.down_proj"),
    ("self_attn.o_proj", "mlp.c_proj"),
    ("self_attn.dense", "mlp.dense_4h_to_h"),
    ("attn.c_proj", "mlp.c_proj"),
    ("attn.out_proj", "mlp.fc_out"),
    ("attn.out_proj", "ffn.down_proj"),
    ("self_attn.out_proj", "feed_forward.w2"),
    ("self_attn.o_proj", "feed_forward.down_proj"),
    ("mixer.o_proj", "mixer.down_proj"),
)


def _named_pair(model: Any) -> tuple[str, str] | None:
    """The attention and MLP output sites by the model's own module names. A mixture of experts' MLP site
    is the block that holds its `experts` (OLMoE's `mlp`, Jamba's `feed_forward`), its dense layers' MLP
    blocks being named the same: so every layer gets one (by an MLP projection's name, only the dense
    layers would: DeepSeek-V3's first three of 61, Llama 4 Maverick's every other layer)."""
    names = [name for name, _ in model.named_modules()]

    def has(suffix: str) -> bool:
        return any(name.endswith("." + suffix) for name in names)

    blocks = {name.rsplit(".", 2)[-2] for name in names if name.endswith(".experts") and name.count(".") >= 2}
    attention = [attention for attention, _ in NAMINGS if has(attention)]
    if attention and len(blocks) == 1:
        return attention[0], blocks.pop()
    for attention_site, mlp in NAMINGS:
        if has(attention_site) and has(mlp):
            return attention_site, mlp
    return None


def _sites(model: Any, options: Options) -> list[str]:
    model_type = getattr(model.config, "model_type", None)
    pair = options.sites or SITES.get(model_type) or _named_pair(model)
    if pair is None:
        raise NotApplicable(
            f"adapter: no attention or MLP output projection by any name known for model type {model_type!r};"
            " set `sites` to train adapters here"
        )
    suffixes = pair if options.variant == "houlsby" else pair[1:]
    names = [name for name, _ in model.named_modules() if name.endswith(tuple("." + s for s in suffixes))]
    if not names:
        raise ValueError(f"adapter: no module ends with {suffixes} in {type(model).__name__}")
    return names


def inject(model: Any, options: Options) -> Any:
    """Freeze the model and wrap every adapter site; only the adapters train."""
    freeze_all(model)
    width = options.bottleneck or max(model.config.hidden_size // options.reduction_factor, 1)
    for name in _sites(model, options):
        parent_name, _, child = name.rpartition(".")
        parent, base = model.get_submodule(parent_name), model.get_submodule(name)
        size = base.out_features if hasattr(base, "out_features") else model.config.hidden_size
        like = next(base.parameters())  # the site's device and dtype (an expert block has no single weight)
        setattr(parent, child, _bottleneck_module(size, width, options.activation, like)(base))
    return model


class BottleneckAdapter:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        model = inject(model, options)
        model.bench_adapter_options = options  # save() writes it beside the weights
        return model

    def save(self, model: Any, directory: Path) -> None:
        """Only the adapter weights and the options that rebuild them."""
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().contiguous() for k, v in model.state_dict().items() if ".adapter." in k}
        save_file(weights, str(directory / WEIGHTS))
        (directory / CONFIG).write_text(model.bench_adapter_options.model_dump_json(indent=2))

    def load(self, base_model: Any, directory: Path) -> Any:
        from safetensors.torch import load_file

        options = Options.model_validate(json.loads((directory / CONFIG).read_text()))
        model = self.prepare(base_model, options, None)
        missing = set(load_file(str(directory / WEIGHTS))) - set(model.state_dict())
        if missing:
            raise ValueError(f"adapter: saved weights do not fit this model: {sorted(missing)[:3]}")
        model.load_state_dict(load_file(str(directory / WEIGHTS)), strict=False)
        return model

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "bottleneck", target)


STRATEGY = BottleneckAdapter()
