"""Answer extraction for generative tasks, as an lm-eval filter (`bench_answer`, registered on import).

The rule, for a generated text (already cut at the task's stop sequences):
1. If it says "#### X" or "the answer is X" (any case; a colon after it allowed), the candidate is what
   follows the LAST such marker, to the end of its line (lm-eval's gsm8k marks answers so).
2. Otherwise the candidate is the first non-empty line.
3. `number` tasks keep the first number of the candidate; without a marker, the last number of the whole
   text (lm-eval gsm8k's "flexible-extract"). No number: "[invalid]", never correct.
4. The candidate is stripped of surrounding whitespace and a trailing full stop.
5. The filter then writes a `number` task's answer in one spelling (`canonical_number`: no `$` or thousands
   commas, no trailing decimal zeros, so "$18.00" is "18"), as its gold answers are written
   (bench/evaluate/generation.py).
`math` tasks (MATH-500) take what follows "The final answer is" up to "I hope it is correct" (the
Minerva format lm-eval's minerva_math parses), else the content of the last `\\boxed{...}`, else
"[invalid]"; the candidate, like the gold answer, then goes through `normalize_math` (below).
The exact-match metric then ignores case, and on `text` and `number` tasks commas and dollar signs on both
sides (lm-eval's gsm8k `regexes_to_ignore`; not on `math` ones, where "(3,4)" is not "(34)"); an item is
correct when any of its answer and aliases matches. `phrase` tasks (TriviaQA, NQ-open) extract as `text` and
compare as lm-eval's nq_open: case, punctuation and a leading article ignored ("Beatles" is "the Beatles").

lm-eval's built-in `regex` filter can express (1) or (2), not the fallback from one to the other, so the
rule is hand-written here and plugged in through lm-eval's filter registry; lm-eval still applies it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from lm_eval.api.filter import Filter
from lm_eval.api.registry import register_filter

from bench.tasks.math_answer import last_boxed, normalize_math

MARKER = re.compile(r"(?:####|\bthe answer is)\s*:?[ \t]*", re.IGNORECASE)
NUMBER = re.compile(r"-?\$?(?:[0-9][0-9,]*(?:\.[0-9]+)?|\.[0-9]+)")  # ".5" is a number, not "5"
INVALID = "[invalid]"
IGNORED = [",", "\\$", "\\.$"]  # exact_match's regexes_to_ignore, applied to both sides
ARTICLES = "\\b(?:The |the |An |A |The |a |an )"  # lm-eval nq_open's regexes_to_ignore


MINERVA_FINAL = re.compile(r"final answer is:?(.*?)(?:I hope it is correct|$)", re.IGNORECASE | re.MULTILINE)
KINDS = ("text", "number", "math", "phrase")  # phrase: extracted as text, compared as lm-eval's nq_open


def canonical_number(text: str) -> str:
    """One spelling of a number: "$1,000.50" is "1000.5", "18.00" is "18", ".5" is "0.5", "-$3" is "-3";
    the text unchanged when it is not a number."""
    plain = text.strip().replace("$", "").replace(",", "")
    try:
        value = Decimal(plain)
    except InvalidOperation:
        return text
    if not value.is_finite() or not re.fullmatch(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)", plain):
        return text  # "1e3", "inf", "NaN": not how the answers are written
    return "0" if value == 0 else f"{value.normalize():f}"


def _math_answer(text: str) -> str:
    final = MINERVA_FINAL.search(text)
    candidate = final.group(1) if final else last_boxed(text)
    if candidate is None or not normalize_math(candidate):
        return INVALID
    return normalize_math(candidate)


def extract_answer(text: str, kind: str = "text") -> str:
    """The answer a generated text gives (the rule above, 1-4)."""
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
        return [[self.answer(r if isinstance(r, str) else "") for r in inst] for inst in resps]

    def answer(self, text: str) -> str:
        """The answer as exact match compares it (the rule above, 1-5)."""
        answer = extract_answer(text, self.kind)
        return canonical_number(answer) if self.kind == "number" else answer
