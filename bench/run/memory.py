"""A run's training memory by component, as metrics and as the record's `memory` field, with the
estimator's prediction for the same run beside it (bench.estimate.model), so reports can show its error."""

from __future__ import annotations

from typing import Any

from bench.measure.components import COMPONENTS, MIB, Components
from bench.records.results import Metric

PREFIX = "memory.train"


def component_metrics(components: Components | None, reason: str) -> dict[str, Metric]:
    """`memory.train.<component>_mib` and their sum `memory.train.components_mib`."""
    metrics = {}
    for name in (*COMPONENTS, "components"):
        value = (components.total() if name == "components" else getattr(components, name)) if components else None
        why = (components.reasons.get(name) if components else None) or reason
        metrics[f"{PREFIX}.{name}_mib"] = Metric(
            value=None if value is None else value / MIB,
            unit="MiB",
            higher_is_better=False,
            reason=None if value is not None else why,
        )
    return metrics


def memory_field(components: Components | None, estimate: Any, estimate_reason: str | None) -> dict[str, Any]:
    measured = None
    if components is not None:
        measured = {
            "bytes": {name: getattr(components, name) for name in COMPONENTS},
            "total_bytes": components.total(),
            "weights_by_dtype": components.weights_by_dtype,
            "reasons": components.reasons,
            "batch_shape": list(components.batch_shape) if components.batch_shape else None,
            "phase": components.phase,
        }
    field: dict[str, Any] = {"measured": measured, "estimate": estimate.as_dict() if estimate else None}
    if estimate is None:
        field["estimate_reason"] = estimate_reason
    elif measured and measured["total_bytes"]:
        # a method with several phases: the estimate of the phase that was counted (the larger one)
        same = estimate.phases.get(components.phase) if components is not None and components.phase else None
        predicted = (same or estimate.components).total()
        error = (predicted - measured["total_bytes"]) / measured["total_bytes"]
        field["estimate_error_percent"] = round(100 * error, 2)
    return field


def estimate_for_run(
    spec: Any, model: Any, tokenizer: Any, task: Any, measured_shape: tuple[int, int] | None
) -> tuple[Any, str | None]:
    """bench.estimate.model's prediction for this run from the loaded model's config, at the token length
    of the step that was measured (so the error is the estimator's, not the data's), else at the
    expected longest sequence of a batch. Never fails the run: an estimator error becomes the reason."""
    from bench.estimate.model import estimate_spec, expected_batch_tokens, training_lengths

    try:
        budget = spec.budget
        if measured_shape is not None:
            tokens = measured_shape[1]
        else:
            per_process = max(budget.batch_size // spec.processes, 1)  # the batch is global: each rank's share
            tokens = expected_batch_tokens(training_lengths(task, tokenizer), per_process, budget.seq_len)
        estimate = estimate_spec(spec, model.config, tokens)
        return estimate, None
    except Exception as error:  # the estimate is an annotation of the run, never its outcome
        return None, f"estimate failed: {type(error).__name__}: {error}"
