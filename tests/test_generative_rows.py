"""Generative evaluation rows (issue 25, item 3) in the data check: each problem as `file:line: field:
what is wrong`, all at once; a file's rows become generative items with the suite's generation settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.spec import TaskSpec
from bench.suite import parse_suite
from bench.tasks import load_task
from bench.tasks.base import GenItem
from bench.tasks.check import data_problems
from bench.tasks.files import read_rows
from tests.conftest import fast_suite

USER = {"role": "user", "content": "What is 2 + 2?"}
BAD_ROWS: list[tuple[Any, str]] = [
    ({"context": "2+2=", "answer": "4", "aliases": ["four"]}, ""),  # sets the kind: generative
    ({"context": "2+3=", "choices": ["5", "6"], "label": 0}, ":2: mixed kinds: a multiple choice evaluation row"),
    ({"context": "2+4="}, ":3: field 'answer': required field is missing (the answer)"),  # the file's kind
    ({"context": "2+5=", "answer": ""}, ":4: field 'answer': expected a non-empty string, got ''"),
    (
        {"context": "2+6=", "answer": "8", "aliases": "eight"},
        ":5: field 'aliases': expected a list of non-empty strings",
    ),
    ({"context": "", "answer": "9"}, ":6: field 'context': expected a non-empty string or a list of messages"),
    (
        {"context": [USER, {"role": "assistant", "content": "4"}], "answer": "4"},
        ":7: field 'context[1].role': the last turn",
    ),
    ({"context": [USER], "answer": "4"}, ":8: field 'context': messages context, but line 1 has a text one"),
    (
        {"context": [{"role": "robot", "content": "x"}], "answer": "1"},
        ":9: field 'context[0].role': unknown role 'robot'",
    ),
    ({"context": "2+7=", "answer": "9", "label": 0}, ":10: field 'label': a generative row (answer) has no choices"),
    ({"context": "2+8=", "answer": "10", "id": "a"}, ""),
    ({"context": "2+9=", "answer": "11", "id": "a"}, ":12: field 'id': duplicate id 'a' (first on line 11)"),
    ({"context": "2+10=", "answer": 12}, ""),  # a number without quotes is its text
]


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_every_problem_of_generative_rows_is_reported_at_once(tmp_path: Path):
    path = write(tmp_path / "gen.jsonl", [row for row, _ in BAD_ROWS])
    rows = read_rows(path, "gen")
    expected = [f"{path}{message}" for _, message in BAD_ROWS if message]
    assert len(rows.problems) == len(expected), rows.problems
    for problem, start in zip(rows.problems, expected):
        assert problem.startswith(start), (problem, start)
    assert [item.answer for item in rows.items] == ["4", "10", "12"]
    assert all(isinstance(item, GenItem) for item in rows.items)


def test_a_suite_with_generation_on_multiple_choice_data_is_refused_before_any_run(tmp_path: Path):
    path = write(tmp_path / "mc.jsonl", [{"context": f"Q{i}", "choices": ["a", "b"], "label": 0} for i in range(40)])
    task = {"name": "mine", "source": "jsonl", "path": str(path), "generation": {"max_new_tokens": 4}}
    retain = [{"name": "arc-easy", "source": "olmo", "generation": {"max_new_tokens": 4}}]
    problems = data_problems(parse_suite(fast_suite("data", ["lora"], task=task, retain=retain)))
    assert problems == [
        f"task.generation: the rows of {path} are multiple choice; `generation` is for generative rows",
        "retain[0].generation: task 'arc-easy' (olmo) is multiple choice; `generation` is for generative tasks "
        "(olmo gsm8k, basic-arithmetic, trivia-qa, nq-open, math-500, or rows with `answer`)",
    ]


def test_message_contexts_on_a_model_without_a_template_are_refused(tmp_path: Path):
    rows = [*({"prompt": f"a{i}", "completion": "b"} for i in range(8)), {"context": [USER], "answer": "4", "id": "m"}]
    path = write(tmp_path / "chat.jsonl", rows)
    problems = data_problems(
        parse_suite(fast_suite("data", ["lora"], task={"name": "m", "source": "jsonl", "path": str(path)}))
    )
    assert problems == [
        "task.path: generative contexts with the chat template need a chat template, and model preset "
        "'tiny-llama' has none: give one with model.chat_template"
    ]


def test_generative_rows_without_training_rows_are_split_and_teach_their_answer(tmp_path: Path):
    rows = [{"context": f"What is {i} + 1?", "answer": str(i + 1)} for i in range(40)]
    path = write(tmp_path / "gen.jsonl", rows)
    task = load_task(
        TaskSpec(name="g", source="jsonl", path=str(path), test_fraction=0.5, generation={"until": ["\n"]})
    )
    assert task.generative and task.generation.until == ("\n",) and task.generation.answer_kind == "number"
    assert 0 < len(task.eval) < 40 and len(task.train) + len(task.eval) == 40
    held_in = {example.prompt: example.completion for example in task.train}
    assert all(held_in[prompt] == str(int(prompt.split()[2]) + 1) for prompt in held_in)
    assert task.record()["generation"] == {
        "max_new_tokens": 64,
        "until": ["\n"],
        "answer_kind": "number",
        "chat_template": False,
        "metric": "exact_match",
    }
