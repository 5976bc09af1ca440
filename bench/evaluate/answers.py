"""Answer extraction for generative tasks, as an lm-eval filter (`bench_answer`, registered on import).

The rule, for a generated text (already cut at the task's stop sequences):
1. If it says "#### X" or "the answer is X" (any case; a colon after it allowed), the candidate is what
   follows the LAST such marker, to the end of its line (lm-eval's gsm8k marks answers so).
2. Otherwise the candidate is the first non-empty line.
3. `number` tasks keep the first number of the candidate; without a marker, the last number of the whole
   text (lm-eval gsm8k's "flexible-extract"). No number: "[invalid]", never correct.
4. The candidate is stripped of surrounding whitespace and a trailing full stop.
`math` tasks (MATH-500) take what follows "The final answer is" up to "I hope it is correct" (the
Minerva format lm-eval's minerva_math parses), else the content of the last `\\boxed{...}`, else
"[invalid]"; the candidate, like the gold answer, then goes through `normalize_math` (below).
The exact-match metric then ignores case, commas and dollar signs on both sides (lm-eval's gsm8k
`regexes_to_ignore`), and an item is correct when any of its answer and aliases matches.

lm-eval's built-in `regex` filter can express (1) or (2), not the fallback from one to the other, so the
rule is hand-written here and plugged in through lm-eval's filter registry; lm-eval still applies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

from bench.tasks.math_answer import last_boxed, normalize_math

MARKER = re.compile(r"(?:####|\bthe answer is)\s*:?[ \t]*", re.IGNORECASE)
NUMBER = re.compile(r"-?\$?[0-9][0-9,]*(?:\.[0-9]+)?")
INVALID = "[invalid]"
IGNORED = [",", "\\$", "\\.$"]  # exact_match's regexes_to_ignore, applied to both sides


MINERVA_FINAL = re.compile(r"final answer is:?(.*?)(?:I hope it is correct|$)", re.IGNORECASE | re.MULTILINE)
KINDS = ("text", "number", "math")


def _math_answer(text: str) -> str:
    final = MINERVA_FINAL.search(text)
    candidate = final.group(1) if final else last_boxed(text)
    if candidate is None or not normalize_math(candidate):
        return INVALID
    return normalize_math(candidate)


def extract_answer(text: str, kind: str = "text") -> str:
    """The answer a generated text gives (the rule above)."""
    if kind == "math":
        return _math_answer(text)
    markers = list(MARKER.finditer(text))
    if markers:
        candidate = text[markers[-1].end() :].split("\n", 1)[0]
    else:
        candidate = next((line for line in text.split("\n") if line.strip()), "")
    if kind == "number":
        numbers = NUMBER.findall(candidate if markers else text)
        if not numbers:
            return INVALID
        candidate = numbers[0] if markers else numbers[-1]
    candidate = candidate.strip()
    return candidate[:-1].rstrip() if candidate.endswith(".") else candidate


@register_filter("bench_answer")
class AnswerFilter(Filter):
    def __init__(self, kind: str = "text") -> None:
        if kind not in KINDS:
            raise ValueError(f"bench_answer: kind {kind!r} is not one of {', '.join(KINDS)}")
        self.kind = kind

    def apply(self, resps: Iterable[Sequence[str]], docs: Sequence[dict[str, Any]]) -> Iterable[list[str]]:
        return [[extract_answer(r if isinstance(r, str) else "", self.kind) for r in inst] for inst in resps]
