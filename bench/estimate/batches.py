"""`bench estimate SUITE --device-memory 24GiB --batch-sizes 1,2,4,8,16`: per strategy, the largest
of the given batch sizes whose estimate fits the device, without and with gradient checkpointing.

Memory grows with the batch (activations, and the generation cache of online RL, are per
sequence; nothing else shrinks), so each strategy is estimated from the smallest size up and the
search stops at the first size that does not fit. Each answer keeps the estimate it rests on, and
the first size that did not fit, so a reader sees the margin.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.estimate.suite import estimate_spec, fits, planning_tokens, suite_specs


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


def largest_batches(
    suite: Any,
    config: Any,
    batch_sizes: list[int],
    device_bytes: int,
    reserve_bytes: int,
    lengths: Callable[[], list[int]] | None = None,
    tokens: int | None = None,
) -> list[Answer]:
    """One answer per strategy entry and checkpointing setting (off, then on)."""
    from bench.strategies import NotApplicable

    answers = []
    for label, spec in suite_specs(suite).items():
        length = planning_tokens(spec, lengths, tokens)
        for checkpointing in (False, True):
            answer = Answer(label, checkpointing, length, None, None, None, None)
            for size in sorted(batch_sizes):
                try:
                    estimate = estimate_spec(spec, config, length, size, checkpointing)
                except NotApplicable as error:
                    answer.reason = str(error)
                    break
                total = estimate.components.total() or 0
                if not fits(estimate, device_bytes, reserve_bytes):
                    answer.first_too_big, answer.first_too_big_bytes = size, total
                    break
                answer.largest, answer.largest_bytes = size, total
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
        f"largest of batch sizes {sizes} that fits {device_bytes / 2**30:.1f} GiB "
        f"(estimate + {reserve_bytes / 2**30:.1f} GiB reserve), {'/'.join(map(str, tokens))} tokens per sequence:",
    )
    lines.append("in brackets: the estimate at that batch; after 'not': the first size that does not fit")
    return "\n".join(lines)


def _cell(answer: Answer) -> str:
    if answer.reason is not None:
        return "not applicable"
    over = f"not {answer.first_too_big} ({_gib(answer.first_too_big_bytes)})" if answer.first_too_big else ""
    if answer.largest is None:
        return f"none: {over}"
    return f"{answer.largest} ({_gib(answer.largest_bytes)})" + (f", {over}" if over else "")


def _gib(value: int | None) -> str:
    if value is None:
        return "-"
    return f"{value / 2**30:.1f} GiB" if value >= 2**30 else f"{value / 2**20:.1f} MiB"
