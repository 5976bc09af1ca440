"""The user's model: where it is larger than the measured one, memory is the estimator's for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.measure.components import MIB
from bench.recommend.figures import SMALL_MODEL, Candidate, ModelEstimate, _grouped
from bench.recommend.formatting import _count
from bench.records.results import RunResult


def load_model_config(path: Path | str) -> Any:
    """bench.estimate.model.config_from_file, with every failure a ValueError naming the path."""
    from bench.estimate.model import ConfigProblem, config_from_file

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{str(path)!r} does not exist")
    try:
        return config_from_file(path)
    except ConfigProblem:  # names the file and what is wrong already
        raise
    except Exception as error:  # transformers raises OSError, ValueError, KeyError for configs it cannot read
        raise ValueError(f"{str(path)!r} is not a transformers config: {error}") from error


def count_parameters(config: Any, dtype: str = "float32") -> int:
    """Parameters of the model a config describes, built on the meta device (no memory, seconds)."""
    from bench.estimate.meta import meta_model

    try:
        model = meta_model(config, dtype)
    except Exception as error:  # e.g. an architecture with no causal-LM head (T5, a vision model)
        raise ValueError(f"cannot build a causal language model from this config: {error}") from error
    return sum(p.numel() for p in model.parameters())


def _estimate(config: Any, record: RunResult, memory_bytes: int, reserve_bytes: int) -> ModelEstimate:
    """The strategy of `record`, with its options and budget, on the user's model; never raises. It fits
    when the estimate plus the reserve is within the memory, as `bench estimate` says it."""
    from bench.estimate.model import estimate_spec
    from bench.suite import load_plugins

    reserve = reserve_bytes / MIB
    try:
        load_plugins(record.spec.get("plugins") or [])  # a plugin strategy is estimated as its run was
        tokens = record.spec["budget"]["seq_len"]
        total = estimate_spec(record.spec, config, tokens).total_mib()
    except Exception as error:  # an estimator gap (unknown optimizer, strategy) is reported, not fatal
        return ModelEstimate(None, None, error=f"{type(error).__name__}: {error}", reserve_mib=reserve)
    return ModelEstimate(total, (total + reserve) * MIB <= memory_bytes, tokens=tokens, reserve_mib=reserve)


def _model_notes(candidates: list[Candidate], user_parameters: int | None) -> list[str]:
    measured = max((c.model_parameters for c in candidates if c.model_parameters), default=None)
    names = sorted({c.model_name for c in candidates if c.model_name})
    model = f"{_count(measured)}-parameter model" if measured else "model"
    model += f" ({', '.join(names)})" if names else ""
    if user_parameters is None:
        if measured is None:
            return [f"memory figures are those of the measured {model}; its parameter count is not recorded"]
        if measured < SMALL_MODEL:
            return [f"memory figures are those of the measured {model}; pass --model-config to estimate a larger model"]
        return []
    if measured is not None and user_parameters <= measured:
        return [
            f"your model ({_count(user_parameters)} parameters) is no larger than the measured {model}:"
            " the measured memory is used"
        ]
    return [
        f"measured on a {model}; yours has {_count(user_parameters)} parameters: memory is the estimator's for"
        " your model (tensors only: weights, gradients, optimizer state, activations at the suite's seq_len; the"
        " reserve for the CUDA context and allocator slack is added before it is held against the memory),"
        " while accuracy, forgetting and throughput are the measured model's"
    ]


def _apply_model(
    candidates: list[Candidate], records: list[RunResult], config: Any, memory_bytes: int, reserve_bytes: int
) -> tuple[int, list[str]]:
    """Estimate every candidate on the user's model where it is larger than the measured one."""
    user = count_parameters(config)
    measured = max((c.model_parameters for c in candidates if c.model_parameters), default=None)
    if measured is None or user > measured:
        groups = _grouped([record for record in records if record.status == "ok"])
        for candidate in candidates:
            representative = groups[candidate.name][0]
            candidate.estimate = _estimate(config, representative, memory_bytes, reserve_bytes)
    return user, _model_notes(candidates, user)
