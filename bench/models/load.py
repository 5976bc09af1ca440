"""Load the base model and tokenizer a suite names, from whichever source it uses."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.suite import ModelSpec


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def _from_folder(folder: str | Path, spec: ModelSpec, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=_torch_dtype(spec.dtype)).to(device)
    return model, tokenizer


def resolve_folder(spec: ModelSpec, report: Callable[[str], None]) -> tuple[str, str]:
    """(source kind, folder or hub id) for the spec; builds and caches what must be built."""
    if spec.preset:
        from bench.models.tiny import PRESETS, ensure_preset

        if spec.preset not in PRESETS:
            raise ValueError(f"model.preset: unknown preset {spec.preset!r} (known: {', '.join(PRESETS)})")
        return "preset", str(ensure_preset(spec.preset, report))
    if spec.path:
        if not Path(spec.path, "config.json").exists():
            raise FileNotFoundError(f"model.path: {spec.path!r} is not a transformers model folder (no config.json)")
        return "path", spec.path
    if spec.hub:
        return "hub", spec.hub
    raise NotImplementedError(f"model source not supported yet: {spec.model_dump(exclude_none=True)}")


def load_model(spec: ModelSpec, device: str = "cpu", report: Callable[[str], None] = print) -> LoadedModel:
    kind, where = resolve_folder(spec, report)
    model, tokenizer = _from_folder(where, spec, device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    info = {
        "source": kind,
        "name": spec.preset or spec.path or spec.hub,
        "folder": where,
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": spec.dtype,
    }
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)
