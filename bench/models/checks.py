"""What is wrong with a suite's model, found without loading it: a folder that is not a model, that ships
no tokenizer, whose tokenizer holds more tokens than its embedding has rows, or whose own code the suite
does not trust (`model.trust_remote_code`); a packaged model whose package is not installed. `bench
validate` asks `source_problem`; loading (bench/models/load.py) refuses the same things."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.spec import ModelSpec
from bench.tasks.files import relative_to_here


def source_problem(spec: ModelSpec) -> str | None:
    """Why the spec's model could not load, checked without loading or converting anything (a hub id is
    not checked: that needs the network); None when it would load. A folder (`path`, `config`) must exist,
    hold a config.json and a tokenizer, run no code it is not trusted to, and have an embedding row for
    every token of its tokenizer."""
    if spec.preset:
        from bench.models.tiny import PRESETS
        from bench.registry import unknown_name_message

        known = spec.preset in PRESETS
        return None if known else f"model.preset: {unknown_name_message('preset', spec.preset, list(PRESETS))}"
    if spec.path:
        return _folder_problem("model.path", spec.path, "is not a transformers model folder", spec.trust_remote_code)
    if spec.config:
        return _folder_problem(
            "model.config", spec.config, "is not a folder with a config.json", spec.trust_remote_code
        )
    if spec.gguf and not Path(spec.gguf).expanduser().is_file():
        return f"model.gguf: no such file {spec.gguf!r}{relative_to_here(Path(spec.gguf).expanduser())}"
    if spec.packaged:
        return _packaged_problem(spec.packaged)
    return None


def _folder_problem(field: str, value: str, not_a_model: str, trusted: bool) -> str | None:
    """source_problem of a `path` or `config` folder."""
    folder = Path(value).expanduser()
    if not folder.is_dir():
        return f"{field}: {value!r} {not_a_model} (no such folder: {folder}){relative_to_here(folder)}"
    if not (folder / "config.json").is_file():
        return f"{field}: {value!r} {not_a_model} (no config.json)"
    try:
        config = json.loads((folder / "config.json").read_text("utf-8"))
    except (OSError, ValueError) as error:
        return f"{field}: {str(folder / 'config.json')!r} is not readable JSON: {error}"
    if not isinstance(config, dict):
        return f"{field}: {str(folder / 'config.json')!r} holds no JSON object"
    if missing := tokenizer_file_problem(folder):
        return f"{field}: {missing}"
    try:
        refuse_untrusted_code(folder, trusted)
    except ValueError as error:
        return str(error)
    return vocabulary_problem(field, folder, config)


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tiktoken.model")


def tokenizer_file_problem(folder: Path) -> str | None:
    """`FOLDER holds no tokenizer file (...)` where a folder has none of the files a tokenizer loads from
    (TOKENIZER_FILES, vocab.txt, a sentencepiece *.model, a *.tiktoken, or its own tokenizer code); None
    where it has one or is not a folder. transformers' own error there advises installing converters,
    which would not help."""
    if not folder.is_dir() or any((folder / name).is_file() for name in (*TOKENIZER_FILES, "vocab.txt")):
        return None
    if any(folder.glob("*.model")) or any(folder.glob("*.tiktoken")) or _tokenizer_code(folder):
        return None
    return f"{folder} holds no tokenizer file ({', '.join(TOKENIZER_FILES)})"


def _tokenizer_code(folder: Path) -> bool:
    """Whether tokenizer_config.json maps the tokenizer to code of its own (`auto_map`)."""
    raw = _json_or_none(folder / "tokenizer_config.json")
    return isinstance(raw, dict) and bool(raw.get("auto_map"))


def _json_or_none(path: Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def vocabulary_problem(field: str, folder: Path, config: dict[str, Any]) -> str | None:
    """Where the folder's tokenizer has more tokens than the model has embedding rows (config.json's
    vocab_size), every run would fail in the embedding: why, or None (also where either cannot be read
    cheaply: loading checks again, with the tokenizer and model themselves)."""
    text = config.get("text_config") if isinstance(config.get("text_config"), dict) else {}
    rows = config.get("vocab_size", text.get("vocab_size"))
    tokens = tokenizer_size(folder)
    if not isinstance(rows, int) or tokens is None or tokens <= rows:
        return None
    return f"{field}: {too_many_tokens(tokens, rows, folder)}"


def too_many_tokens(tokens: int, rows: int, folder: Path | str) -> str:
    return (
        f"the tokenizer of {folder} holds {tokens} tokens (len(tokenizer)) but the model has {rows} embedding rows"
        f" (vocab_size {rows}): token ids {rows} and above would fail in every run; give the folder the"
        " tokenizer its model was trained with"
    )


def tokenizer_size(folder: Path) -> int | None:
    """The number of tokens of the folder's tokenizer.json (its largest id + 1, added tokens and
    tokenizer_config.json's `added_tokens_decoder` included); None where it has no readable tokenizer.json."""
    raw = _json_or_none(folder / "tokenizer.json")
    vocab = raw.get("model", {}).get("vocab") if isinstance(raw, dict) and isinstance(raw.get("model"), dict) else None
    if isinstance(vocab, dict):
        ids = [value for value in vocab.values() if isinstance(value, int)]
    elif isinstance(vocab, list):  # Unigram: [token, score] in id order
        ids = [len(vocab) - 1] if vocab else []
    else:
        return None
    added_tokens = [token for token in raw.get("added_tokens") or [] if isinstance(token, dict)]
    ids += [token["id"] for token in added_tokens if isinstance(token.get("id"), int)]
    added = (_json_or_none(folder / "tokenizer_config.json") or {}).get("added_tokens_decoder") or {}
    ids += [int(key) for key in added if str(key).isdigit()]
    return max(ids) + 1 if ids else None


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


def refuse_untrusted_code(folder: str | Path, trusted: bool) -> None:
    """ValueError naming `model.trust_remote_code` where the folder's config.json maps a model type
    transformers does not know to Python code in the folder (`auto_map`) and the suite does not trust it:
    transformers would ask on the terminal instead, which a worker process does not have."""
    file = Path(folder) / "config.json"
    if trusted or not file.is_file():
        return
    raw = _json_or_none(file)  # unreadable: transformers says why as it loads
    if not (isinstance(raw, dict) and raw.get("auto_map")):
        return
    from transformers import CONFIG_MAPPING

    if raw.get("model_type") not in CONFIG_MAPPING:
        raise ValueError(
            f"model.trust_remote_code: {str(file)!r} maps model type {raw.get('model_type')!r} to Python code in"
            f" its folder ({', '.join(sorted(raw['auto_map']))}); set model.trust_remote_code: true to run that"
            " code (only code you have read or whose source you trust)"
        )
