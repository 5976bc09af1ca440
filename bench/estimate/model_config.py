"""What the estimator accepts as a model's config: a causal language model's type, every field that sets
its shape stated where transformers would otherwise fill in a fixed default of its own (Llama's are
Llama-2-7B's), sizes that can be built, and sequences no longer than a learned position table."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

# what a config must state for its shape: transformers' class defaults (Llama's are Llama-2-7B's) would
# otherwise stand in silently for a field the file leaves out
SHAPE_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
# beyond those, the fields that set a layer's shape under each architecture's own names; one is required
# only where the class's default is a fixed number (Llama's intermediate_size 11008, Mistral's 14336,
# Gemma's head_dim 256), not one derived from the config (GPT-2's n_inner=None is 4 x n_embd; Llama's
# head_dim is hidden_size / num_attention_heads, its num_key_value_heads num_attention_heads)
MLP_FIELDS = (
    "intermediate_size",
    "ffn_dim",
    "ffn_hidden_size",
    "n_inner",
    "dff",
    "intermediate_size_mlp",
    "dense_intermediate_size",
    "first_dense_intermediate_size",
    "moe_intermediate_size",
    "expert_ffn_hidden_size",
    "shared_expert_intermediate_size",
    "shared_experts_intermediate_size",
    "shared_intermediate_size",
    "moe_shared_expert_intermediate_size",
)
ATTENTION_FIELDS = (
    "head_dim",
    "num_key_value_heads",
    "q_lora_rank",
    "kv_lora_rank",
    "qk_rope_head_dim",
    "qk_nope_head_dim",
    "v_head_dim",
)
EXPERT_FIELDS = (  # required of a mixture of experts only (a class with is_moe=False has none)
    "num_local_experts",
    "num_experts",
    "n_routed_experts",
    "moe_num_experts",
    "num_experts_per_tok",
    "num_experts_per_token",
    "moe_topk",
    "moe_k",
    "n_shared_experts",
    "num_shared_experts",
    "moe_num_shared_experts",
)


class ConfigProblem(ValueError):
    """A config file the estimator cannot use, with a message naming the file and what is wrong."""


def _read(config: Any, name: str) -> Any:
    """config.name, or None where the class has no such field or will not give one value for all layers."""
    try:
        return getattr(config, name, None)
    except Exception:  # transformers' per-layer attributes refuse a global read
        return None


def _is_count(value: Any) -> bool:
    """An int that is not a bool (True is an int to Python, not a size)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _build(config_class: Any, **fields: Any) -> Any | None:
    """config_class(**fields), or None where the class refuses them."""
    try:
        return config_class(**fields)
    except Exception:  # a class that cannot build so: nothing to compare with
        return None


@functools.cache
def fixed_default_fields(config_class: Any) -> tuple[str, ...]:
    """The fields of MLP_FIELDS, ATTENTION_FIELDS and (for a mixture of experts) EXPERT_FIELDS whose
    default is a fixed positive number: the same when the class is built with another width and head
    count (a derived default, such as Llama's head_dim, follows them)."""
    defaults = _build(config_class)
    if defaults is None or not dataclasses.is_dataclass(config_class):
        return ()
    declared = {item.name for item in dataclasses.fields(config_class)}
    other = {}
    for name, factor in (("hidden_size", 4), ("num_attention_heads", 2)):
        if _is_count(value := _read(defaults, name)):
            other[name] = value * factor
    shifted = _build(config_class, **other)
    candidates = MLP_FIELDS + ATTENTION_FIELDS + (EXPERT_FIELDS if _read(defaults, "is_moe") is not False else ())
    fixed = []
    for name in candidates:
        value = _read(defaults, name)
        if name not in declared or not _is_count(value) or value <= 0:
            continue
        if shifted is None or _read(shifted, name) == value:
            fixed.append(name)
    return tuple(fixed)


def _aliases(config_class: Any) -> dict[str, str]:
    """The class's other names of its fields (GPT-2's n_embd for hidden_size), alias -> field."""
    return getattr(config_class, "attribute_map", {}) or {}


def _text_part(config_class: Any, raw: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(class, file fields) of the text model: a model with one inside (Llava, Gemma 3) by its text_config."""
    sub = getattr(config_class, "sub_configs", {}).get("text_config")
    if isinstance(raw.get("text_config"), dict) and isinstance(sub, type) and hasattr(sub, "model_type"):
        return sub, raw["text_config"]
    return config_class, raw


def _names_of(config_class: Any, name: str) -> set[str]:
    """Every name a config file may give the field `name` under: its own and the class's aliases of it."""
    aliases = _aliases(config_class)
    own = aliases.get(name, name)
    return {name, own} | {alias for alias, target in aliases.items() if target == own}


def missing_shape(config_class: Any, raw: dict[str, Any]) -> list[str]:
    """The SHAPE_FIELDS the class declares (not those it derives, as Nemotron-H its layer count), and its
    fixed_default_fields, that `raw` leaves out under all of their names; a model with a text model inside
    (Llava, Gemma 3) is judged by its text_config."""
    config_class, raw = _text_part(config_class, raw)
    defaults = _build(config_class)
    if defaults is None:
        return []
    if dataclasses.is_dataclass(config_class):
        declared = {item.name for item in dataclasses.fields(config_class)}
        shape = [name for name in SHAPE_FIELDS if _names_of(config_class, name) & declared]
    else:
        shape = [name for name in SHAPE_FIELDS if _read(defaults, name) is not None]
    stated = set(raw)
    required = shape + list(fixed_default_fields(config_class))
    return [name for name in required if not _names_of(config_class, name) & stated]


def _text_config(config: Any) -> Any:
    """The config of the text model (Gemma 3's text_config), or the config itself."""
    try:
        return config.get_text_config()
    except Exception:  # no such method, or several text models (MusicGen): the config's own fields
        return config


def _refuse_sizes(read: Any, aliases: dict[str, str], where: str) -> None:
    """ConfigProblem naming `where`, the field and its value, for a width, count or layer number below 1
    (a shared expert's below 0) among the sizes `read(name)` gives."""
    for name in (*SHAPE_FIELDS, *MLP_FIELDS, *ATTENTION_FIELDS, *EXPERT_FIELDS):
        value = read(name)
        least = 0 if "shared" in name else 1
        if _is_count(value) and value < least:
            raise ConfigProblem(f"{where}: {aliases.get(name, name)} is {value}: it must be at least {least}")


def check_shape_values(config: Any, where: str) -> None:
    """Refuses, naming `where`, the fields and their values, sizes a model cannot be built with: one below
    1 (_refuse_sizes), or query heads that the key/value heads do not divide."""
    text = _text_config(config)
    aliases = _aliases(type(text))
    _refuse_sizes(lambda name: _read(text, name), aliases, where)
    heads, kv_heads = _read(text, "num_attention_heads"), _read(text, "num_key_value_heads")
    if _is_count(heads) and _is_count(kv_heads) and kv_heads > 0 and heads % kv_heads:
        raise ConfigProblem(
            f"{where}: {aliases.get('num_attention_heads', 'num_attention_heads')} {heads} is not a multiple of "
            f"num_key_value_heads {kv_heads}: each key/value head serves a whole number of query heads"
        )


def _check_stated_sizes(config_class: Any, raw: dict[str, Any], where: str) -> None:
    """_refuse_sizes on the file's own values, before transformers builds (and warns about) the config."""
    config_class, raw = _text_part(config_class, raw)

    def stated(name: str) -> Any:
        return next((raw[each] for each in _names_of(config_class, name) if each in raw), None)

    _refuse_sizes(stated, _aliases(config_class), where)


def learned_positions(model: Any, config: Any) -> tuple[str, int] | None:
    """(field, rows) of the model's learned absolute position table (GPT-2's n_positions, OPT's
    max_position_embeddings), or None where positions are rotary, ALiBi or sinusoidal: an embedding other
    than the token embedding with as many rows as the config's positions (OPT's two more)."""
    import torch

    text = _text_config(config)
    limit = _read(text, "max_position_embeddings")
    if not _is_count(limit):
        return None
    tokens = model.get_input_embeddings() if hasattr(model, "get_input_embeddings") else None
    for module in model.modules():
        if isinstance(module, torch.nn.Embedding) and module is not tokens and module.num_embeddings - limit in (0, 2):
            return _aliases(type(text)).get("max_position_embeddings", "max_position_embeddings"), limit
    return None


def refuse_beyond_positions(model: Any, config: Any, tokens: int) -> None:
    """A ValueError naming both numbers where `tokens` per sequence pass the model's learned position
    table: on meta the lookup past it is not checked, and a real run fails there."""
    table = learned_positions(model, config)
    if table is not None and tokens > table[1]:
        field, rows = table
        raise ValueError(
            f"{tokens} tokens per sequence is more than the model's {field} ({rows}): it learns one embedding "
            f"per position and has none past {rows} (lower budget.seq_len or --tokens)"
        )


def check_model_type(model_type: Any, where: str) -> Any:
    """The config class of a causal language model type, or ConfigProblem naming `where` and the type."""
    import difflib

    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    if not isinstance(model_type, str) or model_type not in CONFIG_MAPPING:
        close = difflib.get_close_matches(str(model_type), list(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigProblem(f"{where}: model_type {model_type!r} is not a transformers model type{hint}")
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigProblem(
            f"cannot build a causal language model from {where}: transformers has no AutoModelForCausalLM "
            f"for model_type {model_type!r}"
        )
    return CONFIG_MAPPING[model_type]


def config_from_file(path: Path) -> Any:
    """A transformers config from a config.json (or the folder holding one), no weights. Refuses, naming
    the file, what the estimator cannot use: no model_type, one that is not a causal language model, a
    config that leaves out its shape (missing_shape), and sizes that cannot be built (check_shape_values)."""
    import json

    from transformers import AutoConfig

    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no config.json at {str(path)!r}")
    raw = json.loads(file.read_text("utf-8"))
    where = repr(str(file))
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise ConfigProblem(f'{where} names no model_type (e.g. "llama")')
    config_class = check_model_type(raw["model_type"], where)
    _check_stated_sizes(config_class, raw, where)
    missing = missing_shape(config_class, raw)
    if missing:
        raise ConfigProblem(
            f"{where} leaves out {', '.join(missing)}: the estimate would be of transformers' default "
            f"{raw['model_type']} shape, not your model's"
        )
    try:
        config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    except Exception as error:  # transformers' validation (huggingface_hub's strict dataclasses): one line
        said = ": ".join(line.strip().rstrip(":") for line in str(error).splitlines() if line.strip())
        raise ConfigProblem(f"{where} is not a transformers config: {said}") from error
    check_shape_values(config, where)
    return config
