"""Preference pairs (prompt, chosen, rejected: the TRL convention) from a JSONL file or from a task.

A JSONL file is validated row by row and every problem is reported at once, each naming the file,
the line number and the field. The builder derives pairs from a synthetic task: chosen is the
correct completion, rejected a plausible wrong one (the task's own distractors). Training and
held-out pairs come from separate random streams, so held-out pairs are never trained on (for a
task with few distinct prompts, such as cipher's 26 letters, prompts recur but pairs differ).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.spec import PreferenceSpec

FIELDS = ("prompt", "chosen", "rejected")


@dataclass(frozen=True)
class PreferencePair:
    prompt: str
    chosen: str  # the completion that follows the prompt, with its leading space
    rejected: str


@dataclass
class PreferenceData:
    train: list[PreferencePair]
    heldout: list[PreferencePair]
    source: str  # "jsonl:<path>" or "task:<name>"

    def prompts(self, split: str = "heldout") -> list[str]:
        """Distinct prompts of a split, in first-seen order."""
        return list(dict.fromkeys(pair.prompt for pair in getattr(self, split)))


class PreferenceError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} bad preference row(s)\n{lines}")


def _row_problems(row: object, where: str) -> list[str]:
    if not isinstance(row, dict):
        return [f"{where}: expected a JSON object with {', '.join(FIELDS)}, got {type(row).__name__}"]
    problems = []
    for name in FIELDS:
        if name not in row:
            problems.append(f"{where}: field {name!r}: required field is missing")
        elif not isinstance(row[name], str):
            problems.append(f"{where}: field {name!r}: expected text, got {type(row[name]).__name__}")
        elif not row[name].strip():
            problems.append(f"{where}: field {name!r}: empty text")
    chosen, rejected = row.get("chosen"), row.get("rejected")
    if isinstance(chosen, str) and chosen.strip() and chosen.strip() == str(rejected).strip():
        problems.append(f"{where}: field 'rejected': equal to 'chosen' ({chosen!r}); a pair needs two answers")
    return problems


def read_jsonl(path: Path | str) -> list[PreferencePair]:
    """Every row checked; raises PreferenceError listing all problems as `FILE:LINE: field ...`."""
    path = Path(path)
    if not path.exists():
        raise PreferenceError(str(path), [f"{path}: file not found"])
    pairs, problems = [], []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            problems.append(f"{where}: not valid JSON ({error.msg})")
            continue
        row_problems = _row_problems(row, where)
        problems.extend(row_problems)
        if not row_problems:
            pairs.append(PreferencePair(row["prompt"], row["chosen"], row["rejected"]))
    if not pairs and not problems:
        problems.append(f"{path}: no preference rows")
    if problems:
        raise PreferenceError(str(path), problems)
    return pairs


def write_jsonl(pairs: list[PreferencePair], path: Path | str) -> None:
    with Path(path).open("w", encoding="utf-8") as stream:
        for pair in pairs:
            stream.write(json.dumps({"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}) + "\n")


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
    """A seeded shuffle, then the last `heldout_size` rows are held out (at least one row trains)."""
    if len(pairs) < 2:
        raise PreferenceError(source, [f"{source}: needs at least 2 rows to hold one out, got {len(pairs)}"])
    shuffled = list(pairs)
    random.Random(f"preference-split-{seed}").shuffle(shuffled)
    held = min(heldout_size, len(shuffled) - 1)
    return PreferenceData(train=shuffled[:-held], heldout=shuffled[-held:], source=source)


def load_preference(spec: PreferenceSpec, task: str, seed: int = 0) -> PreferenceData:
    """The suite's preference section -> pairs: a JSONL file (split by seed) or built from `task`."""
    if spec.jsonl:
        return split_pairs(read_jsonl(spec.jsonl), spec.heldout_size, f"jsonl:{spec.jsonl}", seed)
    return build_preference(task, spec.train_size, spec.heldout_size, seed)
