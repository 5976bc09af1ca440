"""How a generative task is generated and scored: the task's own settings (olmo tasks) or the defaults for
your own rows, then the suite's `generation:` overrides (bench.spec.GenerationSpec)."""

from __future__ import annotations

import dataclasses
import re

from bench.spec import TaskSpec
from bench.tasks.base import Generation, GenItem, TaskData

# your own generative rows: an answer on the first paragraph, at most 64 new tokens
JSONL_GENERATION = Generation(max_new_tokens=64, until=("\n\n",))
NUMBER = re.compile(r"-?\$?[0-9][0-9,]*(\.[0-9]+)?")


def answer_kind(items: list[GenItem]) -> str:
    """`number` when every answer (and alias) is a number, else `text`."""
    answers = [answer for item in items for answer in (item.answer, *item.aliases)]
    return "number" if answers and all(NUMBER.fullmatch(answer) for answer in answers) else "text"


def apply_generation(task: TaskData, spec: TaskSpec) -> TaskData:
    """Set `task.generation` for a generative task (defaults, then the suite's overrides); refuse
    `generation:` on a multiple-choice task and message contexts without the chat template."""
    generative = bool(task.eval) and isinstance(task.eval[0], GenItem)
    if not generative:
        if spec.generation is not None:
            raise ValueError(
                f"task {task.name!r}: `generation` applies to generative tasks (rows with `answer`, or olmo "
                "gsm8k, basic-arithmetic, trivia-qa, nq-open, math-500); this one is multiple choice"
            )
        return task
    settings = task.generation or dataclasses.replace(JSONL_GENERATION, answer_kind=answer_kind(task.eval))
    messages = isinstance(task.eval[0].context, list)
    overrides = spec.generation
    chat = messages if overrides is None or overrides.chat_template is None else overrides.chat_template
    if messages and not chat:
        raise ValueError(
            f"task {task.name!r}: generation.chat_template is false, but its contexts are messages, "
            "which only the chat template renders"
        )
    settings = dataclasses.replace(settings, chat_template=chat)
    if overrides is not None and overrides.max_new_tokens is not None:
        settings = dataclasses.replace(settings, max_new_tokens=overrides.max_new_tokens)
    if overrides is not None and overrides.until is not None:
        settings = dataclasses.replace(settings, until=tuple(overrides.until))
    task.generation = settings
    return task
