"""The base model's scores are the same for every run of a suite: measure them once, then reuse.

The key covers everything that can change them: the model (source, folder, weights hash, dtype, and the
hash of its config, tokenizer, chat template and code files: `files_sha256`, bench/models/load.py, so an
edited config.json, or a `model: {config: ...}` folder's, never reuses the scores of the old one), the
tokenizer's chat template (generative contexts are rendered with it), every evaluation item, the batch
size, the device with its kernel level and threads (they set the floating-point order), the versions of
the scoring stack, and the source of bench's own scoring code (answer extraction, normalisation, the
fast scoring and generation paths), so an edited rule never reuses scores of the old one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable
from functools import cache
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.evaluate.accuracy import Score
from bench.models.cache import cache_root
from bench.models.load import FILES_KEY
from bench.records.store import atomic_write_text
from bench.tasks.base import TaskData

SCORING_PACKAGES = ("torch", "transformers", "peft", "lm_eval")


IDENTITY = ("source", "name", "folder", "architecture", "parameters", "dtype", "sha256", FILES_KEY)
# bench's code that decides a score: these modules and bench/tasks/math_answer.py
SCORING_CODE = ("accuracy", "answers", "generation", "generation_pool", "scorer")


@cache
def scoring_code_digest() -> str:
    """sha256 of the source of bench's scoring code."""
    here = Path(__file__).parent
    paths = [here / f"{name}.py" for name in SCORING_CODE] + [here.parent / "tasks" / "math_answer.py"]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def base_scores_key(
    model_info: dict[str, Any], tasks: list[TaskData], batch_size: int, compute: str, tokenizer: Any
) -> str:
    """The cache key of the base model's scores; `tokenizer`: its chat template is part of the key."""
    template = getattr(tokenizer, "chat_template", None)
    payload = {
        "format": 4,  # 2: per-item correctness; 3: choices packed; 4: batches bounded by padding (scorer.py)
        "model": {field: model_info.get(field) for field in IDENTITY},  # not timings such as load_seconds
        "chat_template": json.dumps(template, sort_keys=True) if template else None,  # text, or dict of named ones
        "tasks": [_task_key(task) for task in tasks],
        "batch_size": batch_size,
        "device": compute,
        "versions": {name: metadata.version(name) for name in SCORING_PACKAGES},
        "code": scoring_code_digest(),
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _task_key(task: TaskData) -> list:
    key = [task.name, [dataclasses.asdict(item) for item in task.eval]]
    if task.generation is not None:  # generative: how it generates and extracts changes the scores
        key.append(task.generation.record())
    return key


def cached_base_scores(key: str, compute: Callable[[], dict[str, Score]]) -> tuple[dict[str, Score], bool]:
    """(scores, whether they came from the cache)."""
    path = cache_root() / "base-scores" / f"{key}.json"
    if path.exists():
        raw = json.loads(path.read_text())
        return {name: Score(**fields) for name, fields in raw.items()}, True
    scores = compute()
    with contextlib.suppress(OSError):  # a cache: a run whose scores cannot be kept (a full disk) still has them
        atomic_write_text(path, json.dumps({name: dataclasses.asdict(score) for name, score in scores.items()}))
    return scores, False
