"""`bench estimate SUITE`: every strategy of a suite estimated before training (bench.estimate.model),
at the suite's batch and the longest sequence of its data, against a device's memory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.estimate.model import Estimate, estimate_spec, spec_device, training_lengths

# What a device needs beyond the estimated tensors: the CUDA context, the caching allocator's slack
# and short-lived temporaries. Measured on an H200 (results/smollm2-gpu-memory, 6 strategies):
# nvidia-smi's figure for the process minus the estimate was -0.15 to +1.9 GiB (docs/memory.md).
DEFAULT_RESERVE = "2GiB"


def _pretrained_source(spec: Any, report: Callable[[str], None]) -> tuple[Any, dict[str, Any]]:
    """Where transformers reads the model's config and tokenizer from, without loading weights, and how
    (a GGUF file's name; whether the suite trusts a model folder's own code: model.trust_remote_code)."""
    from bench.models.checks import refuse_untrusted_code
    from bench.models.load import resolve_folder

    if spec.gguf or spec.packaged:
        if spec.packaged:
            from bench.models.packaged import packaged_file

            gguf = packaged_file(spec.packaged)
        else:
            gguf = Path(spec.gguf).expanduser()
        return gguf.parent, {"gguf_file": gguf.name}  # read from the GGUF header
    where = resolve_folder(spec, report).where
    refuse_untrusted_code(where, spec.trust_remote_code)
    return where, {"trust_remote_code": spec.trust_remote_code}


def suite_model_config(spec: Any, report: Callable[[str], None] = print) -> Any:
    """The config of the model a suite names, read without its weights."""
    from transformers import AutoConfig

    from bench.estimate.model_config import check_model_type, check_shape_values
    from bench.strategies.base import runs_folder_code

    where, extra = _pretrained_source(spec, report)
    config = AutoConfig.from_pretrained(where, **extra)
    if not runs_folder_code(type(config)):  # else the folder's own, trusted
        check_model_type(config.model_type, f"the suite's model ({where})")
        check_shape_values(config, f"the suite's model ({where})")
    return config


def _why_not(error: Exception, model: Any) -> str:
    """Why the data could not be tokenised, in a line: a config folder without a tokenizer says so (transformers'
    own message advises installing converters, which would not help; `bench validate` says the same)."""
    from bench.models.checks import tokenizer_file_problem

    folder = Path(model.config or model.path or "").expanduser() if (model.config or model.path) else None
    if folder is not None and (missing := tokenizer_file_problem(folder)):
        return missing
    return f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"


def model_tokenizer(model: Any, report: Callable[[str], None] = print) -> Any:
    """The model's tokenizer as a run sets it up (its chat template), read without loading weights; raises
    where it cannot be read (a hub model offline, a folder without a tokenizer)."""
    from transformers import AutoTokenizer

    from bench.models.load import chat_template_text

    where, extra = _pretrained_source(model, report)
    tokenizer = AutoTokenizer.from_pretrained(where, **extra)
    if model.chat_template:
        tokenizer.chat_template = chat_template_text(model.chat_template)
    return tokenizer


def suite_lengths(suite: Any, report: Callable[[str], None] = print) -> list[int] | None:
    """Tokenised lengths of the suite's training data, or None (with the reason reported)."""
    from bench.tasks import load_task

    try:
        return training_lengths(load_task(suite.task), model_tokenizer(suite.model, report))
    except Exception as error:  # the estimate still stands, at seq_len
        report(f"sequence lengths: budget.seq_len (the data could not be tokenised: {_why_not(error, suite.model)})")
        return None


def suite_estimates(
    suite: Any,
    config: Any | None = None,
    lengths: Callable[[], list[int]] | None = None,
    report=print,
    tokens: int | None = None,
    device: str | None = None,
) -> tuple[list[Estimate], dict[str, str], dict[str, str]]:
    """One estimate per strategy entry of a suite (seeds do not change memory), for `device` (else the
    spec's), the entries that do not apply to the model (label -> why), as `bench run` would skip them,
    and those whose options or shape do not fit it (label -> the error, e.g. an adapter's `sites` on an
    architecture without a table, or torch refusing a shape on meta), which `bench run` would record as
    failed: one entry's error never hides the others' estimates."""
    from bench.strategies import NotApplicable

    estimates, skipped, failed = [], {}, {}
    for label, spec in suite_specs(suite).items():
        report(f"estimating {label}")
        try:
            estimate = estimate_spec(spec, config, planning_tokens(spec, lengths, tokens), device=device)
        except NotApplicable as error:
            skipped[label] = str(error)
            continue
        except ValueError as error:
            failed[label] = str(error)
            continue
        except RuntimeError as error:  # torch on meta: a shape it cannot build or run, said in one line
            failed[label] = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
            continue
        estimates.append(estimate)
    return estimates, skipped, failed


def suite_specs(suite: Any) -> dict[str, Any]:
    """label -> one run spec of each strategy entry (its last seed's; seeds do not change memory)."""
    from bench.plan import plan

    return {spec.label: spec for spec in plan(suite)}


def planning_tokens(spec: Any, lengths: Callable[[], list[int]] | None, tokens: int | None) -> int:
    """For planning, the worst step: the longest sequence that can occur (or `tokens` when given). The
    task's lengths say nothing of a preference file's rows, so DPO and RLHF on one plan at seq_len."""
    if tokens:
        return tokens
    preference = getattr(spec, "preference", None)
    if spec.strategy in ("dpo", "rlhf") and preference is not None and preference.jsonl:
        return spec.budget.seq_len
    if lengths is not None:
        return min(max(lengths(), default=spec.budget.seq_len), spec.budget.seq_len)
    return spec.budget.seq_len


def planning_device(suite_device: str, device_bytes: int | None) -> tuple[str, str]:
    """The device a suite is estimated for ("cuda" or "cpu") and why: its execution.device; for "auto",
    a GPU where --device-memory asks whether runs fit one, else where a run would go on this machine."""
    if suite_device != "auto":
        return spec_device(suite_device), f"execution.device {suite_device}"
    if device_bytes is not None:
        return "cuda", "execution.device auto, planned for a GPU as --device-memory asks"
    found = spec_device("auto")
    if found == "cuda":
        return found, "execution.device auto: a GPU on this machine"
    return found, "execution.device auto: no GPU on this machine; --device-memory plans for a GPU"


def fits(estimate: Estimate, device_bytes: int, reserve_bytes: int) -> bool:
    return (estimate.components.peak() or 0) + reserve_bytes <= device_bytes


def render(
    estimates: list[Estimate], device_bytes: int | None, reserve_bytes: int, source: str, device: str | None = None
) -> str:
    """A plain table: components in MiB per strategy, the step's peak and whether it fits the device, under
    the device it is for (`device`: planning_device's reason) and over the estimates' notes, ending in a
    blank line so that what follows (stderr too) starts apart."""
    names = ("weights_trainable", "weights_frozen", "gradients", "optimizer", "activations", "other_models")
    names += ("generation_cache", "loss_gradients")
    heads = ("strategy", "sequences", "tokens", "trained w.", "frozen w.", "gradients", "optimizer", "activations")
    heads += ("other models", "gen. cache", "at loss", "peak", "fits")
    rows = []
    for estimate in estimates:
        mib = estimate.components.mib()
        verdict = "-" if device_bytes is None else ("yes" if fits(estimate, device_bytes, reserve_bytes) else "NO")
        label = f"{estimate.label} ({estimate.components.phase} phase)" if estimate.phases else estimate.label
        components = [_mib(mib[name]) for name in names]
        rows.append([label, estimate.sequences, estimate.tokens, *components, _mib(mib["peak"]), verdict])
    widths = [max(len(str(row[i])) for row in [heads, *rows]) for i in range(len(heads))]
    lines = [
        "  ".join(_align(i, cell, width) for i, (cell, width) in enumerate(zip(row, widths))) for row in [heads, *rows]
    ]
    if estimates:
        preference = " (DPO and RLHF on a preference file: seq_len)" * any(
            e.strategy in ("dpo", "rlhf") and e.tokens != estimates[0].tokens for e in estimates
        )
        lines.insert(0, f"tokens per sequence: {source}{preference}; sequences per step and process (MiB)")
        lines.insert(0, f"estimated for {estimates[0].device}" + (f" ({device})" if device else ""))
    if device_bytes is not None:
        kept = "CUDA context, allocator slack" if any(e.device == "cuda" for e in estimates) else "kept free"
        lines.append(f"fits: peak + {size_text(reserve_bytes)} reserve ({kept}) <= {size_text(device_bytes)}")
    return "\n".join([*lines, *note_lines(estimates), ""])


def note_lines(estimates: list[Estimate]) -> list[str]:
    """Each estimate's notes (what explains a surprising row) once, under the labels they hold for."""
    holders: dict[str, list[str]] = {}
    for estimate in estimates:
        for note in dict.fromkeys(estimate.notes):
            holders.setdefault(note, []).append(estimate.label)
    everyone = [estimate.label for estimate in estimates]
    ordered = sorted(holders.items(), key=lambda item: item[1] != everyone)  # those of every row first
    lines = [f"  {'all' if labels == everyone else ', '.join(labels)}: {note}" for note, labels in ordered]
    return ["notes:", *lines] if lines else []


def size_text(value: int | None) -> str:
    """Bytes for a reader: GiB from 1 GiB, else MiB ('24.0 GiB', '1.0 MiB'), never a misleading 0.0 GiB."""
    if value is None:
        return "-"
    return f"{value / 2**30:.1f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"


def _align(index: int, cell: object, width: int) -> str:
    return str(cell).ljust(width) if index == 0 else str(cell).rjust(width)


def _mib(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
