"""How a MATH answer is written down: the last `\\boxed{}` of a text and one normalised spelling.

Both sides use it: the task builder for the gold answer (bench.tasks.olmo_generative) and the answer
filter for the generation (bench.evaluate.answers), so the two can never be normalised differently.
"""

from __future__ import annotations

import re


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
THOUSANDS = re.compile(r"-?[0-9]{1,3}(?:,[0-9]{3})+(?:\.[0-9]+)?")
TEXT_COMMAND = re.compile(r"\\(?:text|textbf|mbox|mathrm)\{([^{}]*)\}")


def normalize_math(answer: str) -> str:
    """One spelling of a MATH answer: the inner text of a `\\boxed{}`, `\\text{x}` as x, no `$`,
    `\\left`/`\\right`, thin spaces or degree signs, `\\dfrac` as `\\frac`, no spaces, no trailing full stop,
    no thousands commas in a plain number ("10,\\!000" is "10000"; a list "1,2" keeps its comma)."""
    boxed = last_boxed(answer)
    answer = boxed if boxed is not None else answer
    answer = TEXT_COMMAND.sub(r"\1", answer)
    for spelling, replacement in MATH_SPELLINGS:
        answer = answer.replace(spelling, replacement)
    answer = "".join(answer.split()).rstrip(".")
    return answer.replace(",", "") if THOUSANDS.fullmatch(answer) else answer
