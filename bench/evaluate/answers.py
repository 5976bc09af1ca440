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

MARKER = re.compile(r"(?:####|\bthe answer is)\s*:?[ \t]*", re.IGNORECASE)
NUMBER = re.compile(r"-?\$?[0-9][0-9,]*(?:\.[0-9]+)?")
INVALID = "[invalid]"
IGNORED = [",", "\\$", "\\.$"]  # exact_match's regexes_to_ignore, applied to both sides


MINERVA_FINAL = re.compile(r"final answer is:?(.*?)(?:I hope it is correct|$)", re.IGNORECASE | re.MULTILINE)
KINDS = ("text", "number", "math")


def last_boxed(text: str) -> str | None:
    """The content of the last `\\boxed{...}` (braces balanced) or `\\boxed x`; None without one."""
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    rest = text[start + len("\\boxed") :]
    if rest.startswith(" "):
        return rest[1:].split("$")[0].strip()
    if not rest.startswith("{"):
        return None
    depth = 0
    for index, char in enumerate(rest):
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0:
            return rest[1:index]
    return None


# LaTeX that writes the same answer differently; a smaller set than Minerva's normalisation (no unit
# words are removed: "\\left" must keep its "ft"), applied alike to the gold answer and the generation
MATH_SPELLINGS = (
    ("\\left", ""),
    ("\\right", ""),
    ("\\dfrac", "\\frac"),
    ("\\tfrac", "\\frac"),
    ("^{\\circ}", ""),
    ("^\\circ", ""),
    ("\\!", ""),
    ("\\,", ""),
    ("\\;", ""),
    ("\\ ", ""),
    ("$", ""),
)
TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")


def normalize_math(answer: str) -> str:
    """One spelling of a MATH answer: the inner text of a `\\boxed{}`, `\\text{x}` as x, no `$`,
    `\\left`/`\\right`, thin spaces or degree signs, `\\dfrac` as `\\frac`, no spaces, no trailing full stop."""
    boxed = last_boxed(answer)
    answer = boxed if boxed is not None else answer
    answer = TEXT_COMMAND.sub(r"\1", answer)
    for spelling, replacement in MATH_SPELLINGS:
        answer = answer.replace(spelling, replacement)
    return "".join(answer.split()).rstrip(".")


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
