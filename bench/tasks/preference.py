"""Preference pairs from a JSONL file or from a task, in every format TRL's DPOTrainer and RewardTrainer take:

  {"prompt": "...", "chosen": "...", "rejected": "..."}                standard
  {"chosen": "...", "rejected": "..."}                                 standard, implicit prompt
  {"prompt": [messages], "chosen": [messages], "rejected": [messages]} conversational
  {"chosen": [messages], "rejected": [messages]}                       conversational, implicit prompt

An implicit prompt is what chosen and rejected begin with, split off as TRL's `extract_prompt` splits it
(`implicit_prompt`). One format per file (TRL decides from a dataset's first row). A file is validated
row by row and every problem is reported at once, each naming the file, the line and the field. A file's
pairs are split by prompt (`split_pairs`: every pair of one prompt on one side), so no held-out prompt is
trained on. The builder derives pairs from a synthetic task: chosen is the correct completion, rejected a
plausible wrong one (the task's own distractors). Training and held-out pairs come from separate random
streams; with few distinct pairs (cipher's 26 letters) the streams repeat each other's pairs, so the
worker scores only held-out pairs that are not training pairs and records how many it left out and how
many held-out prompts training also has (`drop_trained`; the alignment suite: 75 of cipher's 100), and how
many distinct pairs the held-out side has (`pair_key`: a file may repeat one pair many times).
"""

from __future__ import annotations

import functools
import json
import random
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.tasks.base import Example, context_text
from bench.tasks.files import Unreadable, check_readable, jsonl_lines, not_utf8, relative_to_here
from bench.tasks.rows import check_messages
from bench.tasks.split import overlap_key

if TYPE_CHECKING:
    from bench.records.results import RunResult
    from bench.spec import PreferenceSpec

FIELDS = ("prompt", "chosen", "rejected")
PREFERENCE_SUFFIXES = (".jsonl", ".json")  # a JSONL file under either name, as a task's file
# str (standard) or a list of {role, content} messages (conversational)
Turns = Any


@dataclass(frozen=True)
class PreferencePair:
    prompt: Turns
    chosen: Turns  # the completion that follows the prompt (standard: with its leading space)
    rejected: Turns
    implicit: bool = False  # the file gave chosen and rejected whole; prompt is their shared start
    line: int = field(default=0, compare=False)  # its line in the file (0: built), for problems; not compared

    @property
    def conversational(self) -> bool:
        return isinstance(self.chosen, list)

    @property
    def format(self) -> str:
        kind = "conversational" if self.conversational else "standard"
        return kind + ("-implicit-prompt" if self.implicit else "")

    @property
    def key(self) -> str:
        """The prompt as a dictionary key (a conversation as its JSON)."""
        return prompt_key(self.prompt)

    def row(self) -> dict[str, Any]:
        """The row as the file gave it, as TRL takes it (an implicit prompt stays inside chosen/rejected)."""
        if self.implicit:
            return {"chosen": self.prompt + self.chosen, "rejected": self.prompt + self.rejected}
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


def prompt_key(prompt: Turns) -> str:
    return prompt if isinstance(prompt, str) else json.dumps(prompt, sort_keys=True)


def split_key(prompt: Turns) -> str:
    """A prompt as the split and the held-out counts group pairs: its text's `overlap_key` (case, spaces and
    punctuation around words folded; a conversation's contents joined), so `Code a =` and `code a = ` are one
    prompt, on one side of the split."""
    return overlap_key(context_text(prompt))


def pair_example(pair: PreferencePair) -> Example:
    """The pair as the SFT row that teaches its chosen answer, for the overlap check
    (bench/tasks/split.py:repeats): prompt and completion; a whole text (implicit prompt) as a
    language-modeling row; a conversation as its messages."""
    if not pair.conversational:
        if pair.implicit:
            return Example(pair.prompt + pair.chosen, "", {"text": pair.prompt + pair.chosen})
        return Example(pair.prompt, pair.chosen)
    text, answer = context_text(pair.prompt), context_text(pair.chosen)
    if pair.implicit:
        return Example(text, answer, {"messages": pair.prompt + pair.chosen})
    return Example(text, answer, {"prompt": pair.prompt, "completion": pair.chosen})


@dataclass
class PreferenceData:
    train: list[PreferencePair]
    heldout: list[PreferencePair]
    source: str  # "jsonl:<path>" or "task:<name>"
    heldout_dropped: int = 0  # held-out pairs left out as also training pairs (`drop_trained`)
    heldout_prompts: int = 0  # distinct prompts (`split_key`) of the held-out pairs kept (`drop_trained`)
    heldout_prompts_in_training: int = 0  # of them, prompts training also has (a file's pairs: 0)
    heldout_distinct: int = 0  # distinct pairs (`pair_key`) among the held-out pairs kept (`drop_trained`)
    # what the trainer made of the training pairs at budget.seq_len (bench.training.alignment counts it:
    # {seq_len, rows, truncated, dropped, identical, longest, rule}); None before training
    truncation: dict[str, Any] | None = None

    @property
    def format(self) -> str:
        return (self.train or self.heldout)[0].format

    def prompts(self, split: str = "heldout") -> list[Turns]:
        """Distinct prompts of a split, in first-seen order."""
        return list({pair.key: pair.prompt for pair in getattr(self, split)}.values())


class PreferenceError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} bad preference row(s)\n{lines}")


def implicit_prompt(chosen: Turns, rejected: Turns) -> tuple[Turns, Turns, Turns]:
    """(prompt, chosen, rejected): TRL's `extract_prompt` (trl.data_utils, 1.16), the same split: the
    longest common start (characters, or whole messages); a space before the split goes with the answers."""
    index = 0
    for index in range(min(len(chosen), len(rejected))):
        if chosen[index] != rejected[index]:
            if chosen[index - 1] == " ":
                index -= 1
            break
    return chosen[:index], chosen[index:], rejected[index:]


def _text(value: Any, name: str) -> list[tuple[str, str]]:
    if not isinstance(value, str):
        return [(name, f"expected text, got {type(value).__name__}")]
    return [] if value.strip() else [(name, "empty text")]


def _turns(value: Any, name: str, conversational: bool, need_assistant: bool) -> list[tuple[str, str]]:
    if not conversational:
        return _text(value, name)
    if not isinstance(value, list):
        what = "text" if isinstance(value, str) else type(value).__name__
        return [(name, f"expected a list of messages like chosen's, got {what}")]
    return check_messages(value, name, need_assistant)[1]


def _stripped(value: Turns) -> Turns:
    """Text, or every message's content, without its outer whitespace: answers that differ by spaces alone
    are the same answer, for text and conversational pairs alike."""
    if isinstance(value, str):
        return value.strip()
    return [{**message, "content": str(message.get("content", "")).strip()} for message in value]


def parse_row(row: Any) -> tuple[PreferencePair | None, list[tuple[str | None, str]]]:
    """One row -> a pair, or None and (field, problem) pairs (field None: the whole row)."""
    if not isinstance(row, dict):
        return None, [(None, f"expected a JSON object with {', '.join(FIELDS)}, got {type(row).__name__}")]
    missing = [name for name in ("chosen", "rejected") if name not in row]
    if missing:
        return None, [(name, "required field is missing") for name in missing]
    implicit = "prompt" not in row
    conversational = isinstance(row["chosen"], list)
    problems: list[tuple[str | None, str]] = []
    for name in FIELDS[implicit:]:
        problems += _turns(row[name], name, conversational, need_assistant=name != "prompt" and not implicit)
    if problems:
        return None, problems
    chosen, rejected = row["chosen"], row["rejected"]
    if _stripped(chosen) == _stripped(rejected):
        return None, [("rejected", f"equal to 'chosen' ({_short(chosen)}), spaces aside; a pair needs two answers")]
    if not implicit:
        return PreferencePair(row["prompt"], chosen, rejected), []
    shared = chosen[0] == rejected[0]
    prompt, chosen, rejected = implicit_prompt(chosen, rejected)
    if not shared or not (prompt.strip() if isinstance(prompt, str) else prompt):
        return None, [("chosen", "no prompt: without a 'prompt' field, the prompt is what chosen and rejected "
                                 "begin with, and they share no start")]  # fmt: skip
    for name, value in (("chosen", chosen), ("rejected", rejected)):
        empty = not value.strip() if isinstance(value, str) else not value
        if empty:
            problems.append((name, "nothing after the prompt they share: an implicit-prompt pair needs two answers"))
        elif conversational and not any(m["role"] == "assistant" for m in value):
            problems.append((name, "no assistant turn after the prompt they share: nothing to learn"))
    return (None, problems) if problems else (PreferencePair(prompt, chosen, rejected, implicit=True), [])


def read_jsonl(path: Path | str) -> list[PreferencePair]:
    """Every row checked; raises PreferenceError listing all problems as `FILE:LINE: field ...`. A file
    that is not JSONL (its suffix, gzip, not UTF-8) is one problem, not one per line."""
    path = Path(path)
    if not path.exists():
        raise PreferenceError(str(path), [f"{path}: no such file or folder{relative_to_here(path)}"])
    try:
        check_readable(path, PREFERENCE_SUFFIXES, "preference pairs, which are JSONL (one JSON object a line)")
        pairs, problems = _pairs(path)
    except Unreadable as error:
        raise PreferenceError(str(path), [str(error)]) from None
    except UnicodeDecodeError:
        raise PreferenceError(str(path), [str(not_utf8(path))]) from None
    except OSError as error:
        raise PreferenceError(str(path), [f"{path}: cannot read: {error}"]) from None
    if not pairs and not problems:
        problems.append(f"{path}: no preference rows")
    if problems:
        raise PreferenceError(str(path), problems)
    return pairs


def _pairs(path: Path) -> tuple[list[PreferencePair], list[str]]:
    """The file's valid pairs, and the problems of the others (one format per file)."""
    pairs, problems = [], []
    first: tuple[int, str] | None = None
    for number, row, why in jsonl_lines(path):  # the task files' reader (bench/tasks/files.py)
        where = f"{path}:{number}"
        if why is not None:
            problems.append(f"{where}: {why}")
            continue
        pair, row_problems = parse_row(row)
        problems.extend(
            f"{where}: field {name!r}: {what}" if name else f"{where}: {what}" for name, what in row_problems
        )
        if pair is None:
            continue
        if first is None:
            first = (number, pair.format)
        elif pair.format != first[1]:
            problems.append(f"{where}: mixed formats: a {pair.format} row, but line {first[0]} is {first[1]} "
                            "(one format per file)")  # fmt: skip
            continue
        pairs.append(replace(pair, line=number))
    return pairs, problems


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def write_jsonl(pairs: list[PreferencePair], path: Path | str) -> None:
    with Path(path).open("w", encoding="utf-8") as stream:
        for pair in pairs:
            stream.write(json.dumps(pair.row()) + "\n")


def pairs_from_task(task: str, count: int, stream: str, seed: int = 0) -> list[PreferencePair]:
    """`count` pairs from a synthetic task: chosen = correct completion, rejected = a wrong one."""
    from bench.tasks.synthetic import SYNTHETIC_TASKS, wrong_answers

    if task not in SYNTHETIC_TASKS:
        known = ", ".join(SYNTHETIC_TASKS)
        raise ValueError(f"preference.from_task: task {task!r} is not a synthetic task (known: {known})")
    generate = SYNTHETIC_TASKS[task][0]
    rng = random.Random(f"{task}-preference-{stream}-{seed}")
    pairs = []
    for _ in range(count):
        prompt, answer = generate(rng)
        wrong = rng.choice(wrong_answers(task, answer, rng))
        pairs.append(PreferencePair(prompt, " " + answer, " " + wrong))
    return pairs


def build_preference(task: str, train_size: int, heldout_size: int, seed: int = 0) -> PreferenceData:
    return PreferenceData(
        train=pairs_from_task(task, train_size, "train", seed),
        heldout=pairs_from_task(task, heldout_size, "heldout", seed),
        source=f"task:{task}",
    )


def split_pairs(pairs: list[PreferencePair], heldout_size: int, source: str, seed: int = 0) -> PreferenceData:
    """Split by prompt (`split_key`), every pair of a prompt on one side: a seeded shuffle of the rows, then,
    from its end, the pairs of each prompt met are held out until at least `heldout_size` pairs are (the last
    prompt's may add more) or only one prompt is left to train. With one pair per prompt these are the
    shuffle's last `heldout_size` rows, as the split by row was."""
    sizes = Counter(split_key(pair.prompt) for pair in pairs)
    if len(sizes) < 2:
        raise PreferenceError(
            source,
            [
                f"{source}: needs at least 2 distinct prompts to hold one out (every pair of a prompt goes to one "
                f"side), got {len(sizes)} in {len(pairs)} row(s)"
            ],
        )
    shuffled = [(split_key(pair.prompt), pair) for pair in pairs]
    random.Random(f"preference-split-{seed}").shuffle(shuffled)
    held: set[str] = set()
    count = 0
    for key, _ in reversed(shuffled):
        if count >= heldout_size or len(held) == len(sizes) - 1:
            break
        if key not in held:
            held.add(key)
            count += sizes[key]
    return PreferenceData(
        train=[pair for key, pair in shuffled if key not in held],
        heldout=[pair for key, pair in shuffled if key in held],
        source=source,
    )


def prompts_repeat(path: Path | str) -> bool | None:
    """Whether a preference file has a prompt (`split_key`) in more than one pair: only then does the split by
    prompt hold out other pairs than the split by row did. None: the file cannot be read here. Read once per
    version of the file (a report asks for each of its records)."""
    try:
        stat = Path(path).stat()
    except OSError:
        return None
    return _prompts_repeat(str(path), stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=64)
def _prompts_repeat(path: str, modified_ns: int, size: int) -> bool | None:
    try:
        keys = [split_key(pair.prompt) for pair in read_jsonl(path)]
    except PreferenceError:
        return None
    return len(set(keys)) < len(keys)


def split_by_row_differs(record: RunResult) -> bool:
    """A run recorded before the split by prompt (`RunResult.preference_split_by_row`) whose file repeats a
    prompt, or cannot be read here to tell: its held-out pairs were not today's, some of their prompts trained
    on. With one pair per prompt both splits hold out the same rows, and the run stands."""
    return record.preference_split_by_row and prompts_repeat(record.spec["preference"]["jsonl"]) is not False


def pair_key(pair: PreferencePair) -> str:
    """A pair as one string: equal for pairs of the same prompt, chosen and rejected (the row as given)."""
    return json.dumps(pair.row(), sort_keys=True)


def drop_trained(data: PreferenceData) -> PreferenceData:
    """The pairs with every held-out pair that is also a training pair (same prompt, chosen and rejected)
    left out (`heldout_dropped`), so the align.* metrics score pairs the model never trained on, and the
    held-out prompts counted (`heldout_prompts`), with those training also has (`heldout_prompts_in_training`:
    0 for a file split by prompt; pairs built from a task draw their prompts from one small set), and the
    distinct held-out pairs (`heldout_distinct`: a file's repeated rows are scored once each). Raises
    ValueError when every held-out pair is a training pair (the worker's error, and validation's per seed)."""
    trained = {pair_key(pair) for pair in data.train}
    kept = [pair for pair in data.heldout if pair_key(pair) not in trained]
    dropped = len(data.heldout) - len(kept)
    if not kept:
        raise ValueError(
            f"preference {data.source}: all {dropped} held-out pairs are also training pairs; nothing is held out "
            "for the align.* metrics"
        )
    prompts = {split_key(pair.prompt) for pair in kept}
    seen = prompts & {split_key(pair.prompt) for pair in data.train}
    return replace(
        data,
        heldout=kept,
        heldout_dropped=dropped,
        heldout_prompts=len(prompts),
        heldout_prompts_in_training=len(seen),
        heldout_distinct=len({pair_key(pair) for pair in kept}),
    )


def load_preference(spec: PreferenceSpec, task: str, seed: int = 0) -> PreferenceData:
    """The suite's preference section -> pairs: a JSONL file (split by seed) or built from `task`."""
    if spec.jsonl:
        path = Path(spec.jsonl).expanduser()  # as a task's path is recorded; the record's scrub makes it portable
        return split_pairs(read_jsonl(path), spec.heldout_size, f"jsonl:{path}", seed)
    return build_preference(task, spec.train_size, spec.heldout_size, seed)
