"""`bench estimate SUITE --device-memory 24GiB --batch-sizes 1,2,4,8,16`: per strategy, the largest
of the given batch sizes whose estimate fits the device, without and with gradient checkpointing.

Memory grows with the batch (activations, and the generation cache of online RL, are per
sequence; nothing else shrinks), so each strategy is estimated from the smallest size up and the
search stops at the first size that does not fit. Each answer keeps the estimate it rests on, and
the first size that did not fit, so a reader sees the margin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bench.estimate.suite import estimate_spec, fits, planning_tokens, size_text, suite_specs


@dataclass
class Answer:
    label: str
    checkpointing: bool
    tokens: int
    largest: int | None  # the largest batch that fits; None when not even the smallest does
    largest_bytes: int | None  # its estimated total
    first_too_big: int | None  # the smallest size that does not fit (None: all fit)
    first_too_big_bytes: int | None
    reason: str | None = None  # why there is no answer (the strategy does not apply to the model)
    left_out: list[int] = field(default_factory=list)  # sizes the suite could not run at (not estimated)
    left_out_reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def parse_batch_sizes(text: str) -> list[int]:
    """'1,2,4,8,16' -> [1, 2, 4, 8, 16]; raises ValueError naming the text."""
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        sizes = []
    if not sizes or sizes[0] < 1:
        raise ValueError(f"--batch-sizes: {text!r} is not a comma-separated list of positive counts (e.g. 1,2,4,8)")
    return sizes


def cannot_run(spec: Any, size: int) -> str | None:
    """Why the suite could not run at global batch `size` (bench.suite refuses a batch the processes do
    not split evenly; bench.training.alignment an RLOO/GRPO batch that is not whole groups), or None."""
    from bench.strategies import STRATEGIES

    processes = int(getattr(spec, "processes", 1) or 1)
    if size % processes:
        return f"execution.processes ({processes}) must divide the batch evenly"
    if spec.strategy == "rlhf":
        options = STRATEGIES.get("rlhf").Options.model_validate(spec.options)
        if options.batch_problem(size):
            return f"rlhf: the batch must be a multiple of num_generations ({options.num_generations})"
    return None


def largest_batches(
    suite: Any,
    config: Any,
    batch_sizes: list[int],
    device_bytes: int,
    reserve_bytes: int,
    lengths: Callable[[], list[int]] | None = None,
    tokens: int | None = None,
    device: str | None = None,
) -> list[Answer]:
    """One answer per strategy entry and checkpointing setting (off, then on), for `device` (else the spec's)."""
    from bench.strategies import NotApplicable

    answers = []
    for label, spec in suite_specs(suite).items():
        length = planning_tokens(spec, lengths, tokens)
        for checkpointing in (False, True):
            answer = Answer(label, checkpointing, length, None, None, None, None)
            for size in sorted(batch_sizes):
                why = cannot_run(spec, size)
                if why is not None:
                    answer.left_out.append(size)
                    reasons = [answer.left_out_reason, why] if answer.left_out_reason else [why]
                    answer.left_out_reason = "; ".join(dict.fromkeys(reasons))
                    continue
                try:
                    estimate = estimate_spec(spec, config, length, size, checkpointing, device)
                except (NotApplicable, ValueError, RuntimeError) as error:  # options or a shape the model cannot take
                    answer.reason = str(error)
                    break
                peak = estimate.components.peak() or 0
                if not fits(estimate, device_bytes, reserve_bytes):
                    answer.first_too_big, answer.first_too_big_bytes = size, peak
                    break
                answer.largest, answer.largest_bytes = size, peak
            answers.append(answer)
    return answers


def render_batches(answers: list[Answer], device_bytes: int, reserve_bytes: int, batch_sizes: list[int]) -> str:
    """A plain table: strategy, then the largest fitting batch without and with checkpointing."""
    by_label: dict[str, dict[bool, Answer]] = {}
    for answer in answers:
        by_label.setdefault(answer.label, {})[answer.checkpointing] = answer
    heads = ("strategy", "largest batch", "with gradient checkpointing")
    rows = [[label, _cell(pair[False]), _cell(pair[True])] for label, pair in by_label.items()]
    widths = [max(len(row[i]) for row in [list(heads), *rows]) for i in range(len(heads))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in [heads, *rows]]
    tokens = sorted({answer.tokens for answer in answers})
    sizes = ",".join(str(size) for size in batch_sizes)
    lines.insert(
        0,
        f"largest of batch sizes {sizes} that fits {size_text(device_bytes)} "
        f"(estimate + {size_text(reserve_bytes)} reserve), {'/'.join(map(str, tokens))} tokens per sequence:",
    )
    lines.append("in brackets: the estimate at that batch; after 'not': the first size that does not fit")
    for answer in answers:
        if answer.reason is not None:
            setting = " with gradient checkpointing" * answer.checkpointing
            lines.append(f"{answer.label}{setting}: not applicable ({answer.reason})")
    left_out = {answer.label: answer for answer in answers if answer.left_out and not answer.checkpointing}
    for label, answer in left_out.items():
        shown = ", ".join(map(str, answer.left_out))
        lines.append(f"{label}: batch {shown} left out, the suite could not run it ({answer.left_out_reason})")
    return "\n".join(lines)


def _cell(answer: Answer) -> str:
    if answer.reason is not None:
        return "not applicable"
    over = f"not {answer.first_too_big} ({size_text(answer.first_too_big_bytes)})" if answer.first_too_big else ""
    if answer.largest is None:
        return f"none: {over}" if over else "none of these sizes can run"
    return f"{answer.largest} ({size_text(answer.largest_bytes)})" + (f", {over}" if over else "")
