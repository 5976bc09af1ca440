"""One data row -> a training example or an evaluation item; every problem of a file, collected.

Training rows take TRL's SFT dataset types (one type per file):
  {"text": "..."}                                                      language-modeling
  {"prompt": "...", "completion": "..."}                               prompt-completion
  {"messages": [{"role": "user", "content": "..."}, ...]}              conversational
  {"prompt": [messages], "completion": [messages]}                     conversational-prompt-completion
Evaluation rows are multiple choice, {"context": "...", "choices": [...], "label": 0, "id": "..."}, or
generative, {"context": "..." | [messages], "answer": "...", "aliases": [...], "id": "..."} (one kind per
file; a file's message contexts and string contexts are not mixed either).
Problems read `file:line: field 'x': what is wrong`; the reader goes on after each one, so a file's
problems are all reported at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.tasks.base import ChoiceItem, Example, GenItem

EVAL_KEYS = frozenset({"context", "choices", "label"})
GENERATIVE_KEYS = frozenset({"context", "answer", "aliases"})
OPTIONAL_KEYS = frozenset({"id"})
TRAIN_KEYS = frozenset({"text", "prompt", "completion", "messages"})
ROLES = ("system", "user", "assistant", "tool")
SPEAKERS = ("user", "assistant")  # turns that must not be blank (an empty system or tool turn is allowed)
# which tokens carry the loss, per format: the first is the default (TRL's own for that type)
LOSSES: dict[str, tuple[str, ...]] = {
    "language-modeling": ("all",),
    "prompt-completion": ("completion", "all"),
    "conversational": ("all", "assistant"),
    "conversational-prompt-completion": ("completion", "all", "assistant"),
}
CONVERSATIONAL = ("conversational", "conversational-prompt-completion")


ONE_LINE = (
    "holds a line break: only the first line of a generation is compared (bench/evaluate/answers.py), so it "
    "could never be scored correct; write the answer on one line"
)
REPEATS_LISTED = 3  # rows listed with one same problem before the rest are counted in one line


def where(path: Path | str, line: int | None, key: str | None = None) -> str:
    return (f"{path}:{line}" if line else str(path)) + (f": field {key!r}" if key else "")


@dataclass
class Rows:
    """What a file held: training examples (one format), evaluation items, and every problem."""

    path: Path
    name: str
    train: list[Example] = field(default_factory=list)
    items: list[ChoiceItem | GenItem] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    format: str | None = None
    _format_line: int = 0
    _ids: dict[str, int] = field(default_factory=dict)
    _eval_rows: int = 0
    _eval_kind: tuple[str, int] | None = None  # (multiple choice | generative, its first line)
    _context_kind: tuple[str, int] | None = None  # generative: (text | messages, its first line)
    _lines: dict[tuple[str | None, str], list[int | None]] = field(default_factory=dict)  # each problem's lines

    @property
    def generative(self) -> bool:
        return self._eval_kind is not None and self._eval_kind[0] == "generative"

    @property
    def message_contexts(self) -> bool:
        """Generative rows whose contexts are messages (the chat template renders them)."""
        return self._context_kind is not None and self._context_kind[0] == "messages"

    def problem(self, line: int | None, key: str | None, message: str) -> None:
        self.problems.append(f"{where(self.path, line, key)}: {message}")
        self._lines.setdefault((key, message), []).append(line)

    def _fold_repeats(self) -> None:
        """The same problem on many rows (a file of the other kind: every row "mixed kinds") is listed
        REPEATS_LISTED times, then one line says how many more rows and which lines."""
        for (key, message), lines in self._lines.items():
            if len(lines) <= REPEATS_LISTED:
                continue
            hidden = {f"{where(self.path, line, key)}: {message}" for line in lines[REPEATS_LISTED:]}
            self.problems = [problem for problem in self.problems if problem not in hidden]
            rest = lines[REPEATS_LISTED:]
            more = f"{len(rest)} more rows like it (lines {rest[0]} to {rest[-1]})"
            self.problems.append(f"{where(self.path, None, key)}: {message}: {more}")

    def add(self, line: int, row: Any) -> None:
        """Validate one parsed row and keep it, or note what is wrong with it."""
        if not isinstance(row, dict):
            self.problem(line, None, f"expected a JSON object, got {type(row).__name__}")
            return
        keys = set(row)
        if not keys:
            self.problem(line, None, "an empty row ({}): a training row or an evaluation item has keys")
            return
        if not all(isinstance(key, str) for key in keys):
            self.problem(line, None, "keys must be strings")
            return
        unknown = keys - TRAIN_KEYS - EVAL_KEYS - GENERATIVE_KEYS - OPTIONAL_KEYS
        if unknown:
            self.problem(
                line,
                sorted(unknown)[0],
                "unknown key (expected text, prompt/completion, messages, context/choices/label/id "
                "or context/answer/aliases/id)",
            )
            return
        if keys & TRAIN_KEYS and keys & (EVAL_KEYS | GENERATIVE_KEYS):
            self.problem(line, None, "a row is either a training example or an evaluation item, not both")
        elif keys & TRAIN_KEYS:
            self._training(line, row)
        else:
            self._evaluation(line, row)

    def _training(self, line: int, row: dict[str, Any]) -> None:
        keys = set(row) - OPTIONAL_KEYS  # an id on a training row is allowed, and not used
        if "text" in keys:
            kind, expected = "language-modeling", {"text"}
        elif "messages" in keys:
            kind, expected = "conversational", {"messages"}
        else:
            conversational = isinstance(row.get("prompt", row.get("completion")), list)
            kind = "conversational-prompt-completion" if conversational else "prompt-completion"
            expected = {"prompt", "completion"}
        extra, missing = sorted(keys - expected), sorted(expected - keys)
        if extra:
            self.problem(line, extra[0], f"does not belong in a {kind} row (keys: {', '.join(sorted(expected))})")
            return
        if missing:
            self.problem(line, missing[0], "required field is missing")
            return
        count = len(self.problems)
        example = self._example(kind, line, row)
        if example is None or len(self.problems) > count:
            return
        if self.format is None:
            self.format, self._format_line = kind, line
        elif kind != self.format:
            self.problem(line, None, f"mixed kinds: a {kind} row, but line {self._format_line} is {self.format}")
            return
        self.train.append(example)

    def _example(self, kind: str, line: int, row: dict[str, Any]) -> Example | None:
        if kind == "language-modeling":
            text = self._text(line, row, "text")
            return None if text is None else Example(text, "", {"text": text})
        if kind == "prompt-completion":
            prompt, completion = self._text(line, row, "prompt"), self._text(line, row, "completion")
            return None if prompt is None or completion is None else Example(prompt, completion)
        if kind == "conversational":
            messages = self._messages(line, row, "messages", need_assistant=True)
            if messages is None:
                return None
            last = max(i for i, m in enumerate(messages) if m["role"] == "assistant")
            prompt = "\n".join(m["content"] for m in messages[:last] if m["role"] != "assistant")
            return Example(prompt, messages[last]["content"], {"messages": messages})
        prompt_turns = self._messages(line, row, "prompt", need_assistant=False)
        completion_turns = self._messages(line, row, "completion", need_assistant=True)
        if prompt_turns is None or completion_turns is None:
            return None
        text = "\n".join(m["content"] for m in prompt_turns)
        answer = "\n".join(m["content"] for m in completion_turns)
        return Example(text, answer, {"prompt": prompt_turns, "completion": completion_turns})

    def _text(self, line: int, row: dict[str, Any], key: str) -> str | None:
        value = row[key]
        if not isinstance(value, str) or not value.strip():
            self.problem(line, key, f"expected a non-empty string, got {_got(value)}")
            return None
        return value

    def _messages(self, line: int, row: dict[str, Any], key: str, need_assistant: bool) -> list[dict] | None:
        messages, problems = check_messages(row[key], key, need_assistant)
        for at, message in problems:
            self.problem(line, at, message)
        return messages

    def _evaluation(self, line: int, row: dict[str, Any]) -> None:
        self._eval_rows += 1
        keys = set(row) - OPTIONAL_KEYS - {"context"}
        if not keys and self._eval_kind is None:  # a context alone, before any valid row says the file's kind
            needs = "a generative row needs 'answer', a multiple-choice row 'choices' and 'label'"
            self.problem(line, None, f"a context alone: {needs}")
            return
        # a row with a context alone is missing the fields of the file's kind
        if keys & {"answer", "aliases"} or (not keys & {"choices", "label"} and self.generative):
            if keys & {"choices", "label"}:
                both = sorted(keys & {"choices", "label"})[0]
                self.problem(line, both, "a generative row (answer) has no choices or label: give one or the other")
                return
            if self._same_kind(line, "generative"):
                self._generative(line, row)
            return
        if not self._same_kind(line, "multiple choice"):
            return
        self._multiple_choice(line, row)

    def _multiple_choice(self, line: int, row: dict[str, Any]) -> None:
        missing = sorted(EVAL_KEYS - set(row))
        if missing:
            what = "required field is missing" + (" (the answer)" if "label" in missing else "")
            self.problem(line, missing[0], what)
            return
        count = len(self.problems)
        context = row["context"]
        if not isinstance(context, str):
            self.problem(line, "context", f"expected a string, got {_short(context)}")
        choices = self._choices(line, row["choices"])
        label = _whole(row["label"])
        if choices is not None and (
            isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices)
        ):
            self.problem(
                line, "label", f"expected the index of the correct choice (0..{len(choices) - 1}), got {_short(label)}"
            )
        item_id = self._item_id(line, row)
        if len(self.problems) == count and item_id is not None:
            self._keep(line, ChoiceItem(item_id, context, choices, label))

    def _choices(self, line: int, choices: Any) -> list[str] | None:
        """At least two non-blank strings that differ by more than surrounding whitespace (`c` and `c ` are
        one answer written twice: which of them the label names is not something the model could show)."""
        if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c for c in choices):
            self.problem(line, "choices", f"expected a list of at least 2 non-empty strings, got {_short(choices)}")
            return None
        blank = next((index for index, choice in enumerate(choices) if not choice.strip()), None)
        if blank is not None:
            self.problem(line, f"choices[{blank}]", f"blank choice {choices[blank]!r}: a choice is a text to score")
            return None
        stripped = [choice.strip() for choice in choices]
        twice = next((index for index, choice in enumerate(stripped) if choice in stripped[:index]), None)
        if twice is not None:
            first = choices[stripped.index(stripped[twice])]
            if first == choices[twice]:
                self.problem(line, "choices", f"choice {_short(first)} is given twice: the choices must differ")
            else:
                what = f"{_short(choices[twice])} differs from {_short(first)} only by whitespace"
                self.problem(line, f"choices[{twice}]", f"{what}: the choices must differ")
            return None
        return choices

    def _same_kind(self, line: int, kind: str) -> bool:
        """One kind of evaluation row per file (a task is scored one way), the kind of its first valid row."""
        if self._eval_kind is not None and self._eval_kind[0] != kind:
            first, at = self._eval_kind
            self.problem(line, None, f"mixed kinds: a {kind} evaluation row, but line {at} is {first}")
            return False
        return True

    def _keep(self, line: int, item: ChoiceItem | GenItem) -> None:
        """A valid evaluation item; the first one decides the file's kind (and, generative, its context's)."""
        if self._eval_kind is None:
            self._eval_kind = ("generative" if isinstance(item, GenItem) else "multiple choice", line)
        if isinstance(item, GenItem) and self._context_kind is None:
            self._context_kind = ("messages" if isinstance(item.context, list) else "text", line)
        self.items.append(item)

    def _generative(self, line: int, row: dict[str, Any]) -> None:
        count = len(self.problems)
        for key in ("context", "answer"):
            if key not in row:
                self.problem(line, key, "required field is missing" + (" (the answer)" if key == "answer" else ""))
        if len(self.problems) > count:
            return
        context = row["context"]
        if isinstance(context, list):
            context, problems = check_messages(context, "context", need_assistant=False)
            for at, message in problems:
                self.problem(line, at, message)
            if context is not None and context[-1]["role"] == "assistant":
                self.problem(
                    line, f"context[{len(context) - 1}].role", "the last turn is the assistant's: the model writes it"
                )
        elif not isinstance(context, str) or not context.strip():
            self.problem(line, "context", f"expected a non-empty string or a list of messages, got {_short(context)}")
        if len(self.problems) == count:
            shape = "messages" if isinstance(context, list) else "text"
            if self._context_kind is not None and self._context_kind[0] != shape:
                self.problem(
                    line,
                    "context",
                    f"{shape} context, but line {self._context_kind[1]} has a {self._context_kind[0]} one",
                )
        answer = _whole(row["answer"])
        if isinstance(answer, int) and not isinstance(answer, bool):
            answer = str(answer)  # a number written without quotes (or a whole float of a number column)
        if not isinstance(answer, str) or not answer.strip():
            self.problem(line, "answer", f"expected a non-empty string, got {_got(answer)}")
        elif "\n" in answer.strip():
            self.problem(line, "answer", ONE_LINE)
        aliases = row.get("aliases", [])
        if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
            self.problem(line, "aliases", f"expected a list of non-empty strings, got {_short(aliases)}")
        elif any("\n" in alias.strip() for alias in aliases):
            at = next(index for index, alias in enumerate(aliases) if "\n" in alias.strip())
            self.problem(line, f"aliases[{at}]", ONE_LINE)
        item_id = self._item_id(line, row)
        if len(self.problems) == count and item_id is not None:
            self._keep(line, GenItem(item_id, context, answer.strip(), [a.strip() for a in aliases]))

    def _item_id(self, line: int, row: dict[str, Any]) -> str | None:
        """The row's id as text (an integer id is its decimal text, as a CSV cell gives it), else
        `<task>/line<N>`; a blank or repeated id is refused."""
        item_id = _whole(row.get("id", f"{self.name}/line{line}"))
        if isinstance(item_id, int) and not isinstance(item_id, bool):
            item_id = str(item_id)
        if not isinstance(item_id, str) or not item_id.strip():
            self.problem(line, "id", f"expected a non-blank string or an integer, got {_short(item_id)}")
            return None
        if item_id in self._ids:
            self.problem(line, "id", f"duplicate id {item_id!r} (first on line {self._ids[item_id]})")
            return None
        self._ids[item_id] = line
        return item_id

    def finish(self) -> None:
        if not self._eval_rows:
            self.problem(None, None, "no evaluation rows (context/choices/label, or context/answer)")
        self._fold_repeats()


def check_messages(value: Any, key: str, need_assistant: bool) -> tuple[list[dict] | None, list[tuple[str, str]]]:
    """A list of {role, content} messages (field `key`): the messages, or None and (field, problem) pairs."""
    if not isinstance(value, list) or not value:
        return None, [(key, f"expected a non-empty list of {{role, content}} messages, got {_short(value)}")]
    messages: list[dict] = []
    problems: list[tuple[str, str]] = []
    for index, message in enumerate(value):
        at = f"{key}[{index}]"
        if not isinstance(message, dict) or set(message) != {"role", "content"}:
            got = sorted(map(str, message)) if isinstance(message, dict) else _short(message)
            problems.append((at, f"expected a message with exactly the keys role and content, got {got}"))
            continue
        role, content = message["role"], message["content"]
        if not isinstance(role, str) or role not in ROLES:
            what = "empty role" if role in ("", None) else f"unknown role {_short(role)}"
            problems.append((f"{at}.role", f"{what} (expected one of {', '.join(ROLES)})"))
        if not isinstance(content, str):
            problems.append((f"{at}.content", f"expected a string, got {type(content).__name__}"))
        elif role in SPEAKERS and not content.strip():
            problems.append((f"{at}.content", f"empty {role} turn {content!r}: it must say something"))
        messages.append({"role": role, "content": content})
    if not problems and need_assistant and not any(m["role"] == "assistant" for m in messages):
        problems.append((key, "no assistant turn: nothing to learn"))
    return (None if problems else messages), problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _whole(value: Any) -> Any:
    """A whole-number float as its integer (`1.0` -> 1: a table's number column with a gap is float64);
    anything else unchanged."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _got(value: Any) -> str:
    """A value that should have been text, said so that a number reads as one."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f"the number {value!r} (write it as a string, e.g. {str(value)!r})"
    return _short(value)
