"""Edges of a suite's data that passed `bench validate` and then failed the run, or were read wrongly: too few
rows for a batch, a split with an empty side, overlaps in text and conversational rows, arithmetic items
folded together, CSV cells holding JSON lists, byte order marks, U+2028 in preference rows, a preference
path leaking into records, a one-row preference file, pandas' float columns, and CSV line numbers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.records.leaks import leaks
from bench.records.portable import scrub
from bench.spec import PreferenceSpec
from bench.suite import parse_suite
from bench.tasks.base import ChoiceItem, Example, GenItem
from bench.tasks.check import data_problems
from bench.tasks.files import read_rows
from bench.tasks.preference import load_preference, read_jsonl
from bench.tasks.split import OverlapError, check_overlap, overlap_key
from tests.conftest import bench_cli, fast_suite, write_suite

EVAL = [{"context": f"prev of {c} :", "choices": ["q", "z"], "label": i % 2, "id": c} for i, c in enumerate("nopq")]


def write(path: Path, rows: list[Any], prefix: str = "") -> Path:
    text = "".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows)
    path.write_text(prefix + text, encoding="utf-8")
    return path


def suite_on(path: Path, strategies: list[Any] | None = None, batch_size: int = 4, **task: Any) -> dict[str, Any]:
    spec = {"name": "mine", "source": "jsonl", "path": str(path), **task}
    budget = {"steps": 4, "batch_size": batch_size, "seq_len": 16}
    return fast_suite("edges", strategies or ["full"], task=spec, budget=budget)


def pairs(count: int) -> list[dict[str, str]]:
    return [{"prompt": f"code {c} =", "chosen": " q", "rejected": " x"} for c in "abcdefghijklmnop"[:count]]


# 1: fewer usable training rows than budget.batch_size


def test_fewer_training_rows_than_a_batch_are_refused_naming_file_field_and_counts(tmp_path: Path):
    path = write(
        tmp_path / "two.jsonl", [{"prompt": "a :", "completion": "z"}, {"prompt": "b :", "completion": "z"}, *EVAL]
    )
    (problem,) = data_problems(parse_suite(suite_on(path, batch_size=8)))
    assert problem.startswith(f"{path}: task.train_size: 2 training example(s) (2 training row(s), train_size")
    assert "< budget.batch_size 8" in problem
    assert data_problems(parse_suite(suite_on(path, batch_size=2))) == []
    capped = data_problems(parse_suite(suite_on(path, batch_size=2, train_size=1)))
    assert len(capped) == 1 and "1 training example(s)" in capped[0]
    dpo_only = suite_on(path, strategies=["dpo"], batch_size=8)  # the task's rows are not trained on
    dpo_only["preference"] = {"jsonl": str(write(tmp_path / "pairs.jsonl", pairs(16))), "heldout_size": 2}
    assert data_problems(parse_suite(dpo_only)) == []


def test_a_built_in_task_with_a_train_size_below_a_batch_is_refused():
    suite = fast_suite("edges", ["full"], task={"name": "cipher", "train_size": 3})
    assert data_problems(parse_suite(suite)) == [
        "task.train_size: 3 < budget.batch_size 4: no full batch, so no training step; "
        "raise train_size or lower budget.batch_size"
    ]
    suite["retain"] = [{"name": "next-letter", "train_size": 1}]  # retained tasks are not trained on
    suite["task"]["train_size"] = 4
    assert data_problems(parse_suite(suite)) == []


def test_validate_exits_2_on_too_few_training_rows(tmp_path: Path):
    path = write(tmp_path / "two.jsonl", [{"prompt": "a :", "completion": "z"}, *EVAL])
    suite_file = write_suite(tmp_path, suite_on(path, batch_size=8))
    validated = bench_cli("validate", str(suite_file), env={"COLUMNS": "400"})
    assert validated.returncode == 2 and "Traceback" not in validated.stderr
    assert "1 training example(s)" in validated.stderr and "budget.batch_size 8" in validated.stderr


def test_fewer_preference_pairs_than_a_batch_are_refused_for_dpo(tmp_path: Path):
    path = write(tmp_path / "pairs.jsonl", pairs(4))
    task = write(tmp_path / "task.jsonl", [{"prompt": f"{c} :", "completion": "z"} for c in "abcdefgh"] + EVAL)
    suite = {**suite_on(task, strategies=["dpo"], batch_size=8), "preference": {"jsonl": str(path), "heldout_size": 1}}
    (problem,) = data_problems(parse_suite(suite))
    assert problem.startswith(f"{path}: preference.heldout_size: 3 training pair(s) (4 rows less heldout_size 1)")
    assert "< budget.batch_size 8" in problem
    suite["strategies"] = ["full"]  # sft runs only score the pairs
    assert data_problems(parse_suite(suite)) == []
    built = fast_suite("edges", ["dpo"], budget={"steps": 4, "batch_size": 8, "seq_len": 16})
    built["preference"] = {"train_size": 4}  # pairs built from the (synthetic) task
    (problem,) = data_problems(parse_suite(built))
    assert problem.startswith("preference.train_size: 4 training pair(s) (built from the task) < budget.batch_size 8")


# 2: a declared split with an empty side


@pytest.mark.parametrize(("fraction", "expected"), [(0.01, "0 evaluation items"), (0.99, "0 training examples")])
def test_a_split_that_leaves_one_side_empty_is_refused(tmp_path: Path, fraction: float, expected: str):
    path = write(tmp_path / "one.jsonl", EVAL[:1])
    (problem,) = data_problems(parse_suite(suite_on(path, batch_size=1, test_fraction=fraction)))
    assert problem.startswith(f"{path}: task.test_fraction: {expected}") and "of 1 evaluation row(s)" in problem


# 3: overlap in language-modeling and conversational rows


def test_text_rows_that_start_with_an_evaluation_context_overlap():
    items = [ChoiceItem(row["id"], row["context"], row["choices"], row["label"]) for row in EVAL]
    text = Example("prev of n : z", "", {"text": "prev of n : z"})
    with pytest.raises(OverlapError, match=r"1 training example\(s\).*n <- 'prev of n : z'"):
        check_overlap("t", [text], items)
    ordinary = ["prev of nn : z", "the prev of n : z", "prev of", "prev of r : z", "z prev of n :"]
    check_overlap("t", [Example(t, "", {"text": t}) for t in ordinary], items)


def test_conversations_with_a_system_turn_overlap_by_their_user_turn():
    items = [GenItem("n", "prev of n :", "z")]
    system = {"role": "system", "content": "Answer with one letter."}
    turns = [system, {"role": "user", "content": "Prev of N:"}, {"role": "assistant", "content": "z"}]
    with pytest.raises(OverlapError, match="task 't': 1 training"):
        check_overlap("t", [Example("Answer with one letter.\nPrev of N:", "z", {"messages": turns})], items)
    completion = {"prompt": turns[:2], "completion": turns[2:]}
    with pytest.raises(OverlapError):
        check_overlap("t", [Example("Answer with one letter.\nPrev of N:", "z", completion)], items)
    message_items = [GenItem("m", [system, {"role": "user", "content": "prev of n :"}], "z")]
    with pytest.raises(OverlapError):
        check_overlap("t", [Example("prev of n :", "z")], message_items)
    other = [system, {"role": "user", "content": "prev of r :"}, {"role": "assistant", "content": "q"}]
    check_overlap("t", [Example("Answer with one letter.\nprev of r :", "q", {"messages": other})], items)


def test_the_data_check_finds_overlap_in_text_and_chat_files(tmp_path: Path):
    text = write(tmp_path / "lm.jsonl", [{"text": f"prev of {c} : z"} for c in "abcn"] + EVAL)
    (problem,) = data_problems(parse_suite(suite_on(text, batch_size=1)))
    assert "1 training example(s) repeat evaluation items" in problem and "n <- 'prev of n : z'" in problem


# 4: symbols that change an item's meaning are not folded


def test_arithmetic_items_that_differ_by_an_operator_do_not_overlap():
    items = [ChoiceItem(f"e{i}", f"calc {a} - {b} =", ["1", "2"], 0) for i, (a, b) in enumerate([(1, 2), (3, 4)])]
    check_overlap(
        "t", [Example("calc 1 + 2 =", "3"), Example("calc 3 * 4 =", "12"), Example("calc 1 / 2 =", "")], items
    )
    with pytest.raises(OverlapError):
        check_overlap("t", [Example("Calc 1-2=", "-1")], items)  # spacing and case still fold
    assert overlap_key("Question: Is the SKY  blue?") == overlap_key("question is the sky blue")
    assert overlap_key("x < 3") != overlap_key("x > 3") and overlap_key("50%") != overlap_key("50")
    assert overlap_key("1.5") != overlap_key("15") and overlap_key("-3") != overlap_key("3")


# 5: JSON lists in CSV cells


def test_csv_cells_hold_json_lists_of_messages_and_aliases(tmp_path: Path):
    user = '"[{""role"": ""user"", ""content"": ""prev of a :""}]"'
    bot = '"[{""role"": ""assistant"", ""content"": ""z""}]"'
    other = user.replace("prev of a", "prev of b")
    path = tmp_path / "chat.csv"
    path.write_text(f'prompt,completion,context,answer,aliases\n{user},{bot},,,\n,,{user},z,"[""zz""]"\n,,{other},z,\n')
    rows = read_rows(path, "t")
    assert rows.problems == [] and rows.format == "conversational-prompt-completion"
    assert rows.train[0].row == {"prompt": [{"role": "user", "content": "prev of a :"}], "completion": [
        {"role": "assistant", "content": "z"}
    ]}  # fmt: skip
    assert rows.items[0].aliases == ["zz"] and rows.items[0].context == [{"role": "user", "content": "prev of a :"}]
    text = tmp_path / "text.csv"
    text.write_text('prompt,completion,context,choices,label\n"sort 3 1 2","[1, 2, 3]",,,\n,,q,"[""a"", ""b""]",0\n')
    rows = read_rows(text, "t")
    assert rows.problems == [] and rows.train[0].completion == "[1, 2, 3]"  # text that looks like JSON stays text


# 6: a UTF-8 byte order mark


def test_a_byte_order_mark_is_ignored_in_every_text_format(tmp_path: Path):
    bom = "\ufeff"
    csv_file = tmp_path / "d.csv"
    csv_file.write_text(bom + 'prompt,completion,context,choices,label\na,b,,,\n,,q,"[""x"", ""y""]",1\n')
    array = tmp_path / "d.json"
    array.write_text(bom + json.dumps([{"prompt": "a", "completion": "b"}, EVAL[0]]))
    for path in (csv_file, array, write(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b"}, EVAL[0]], bom)):
        rows = read_rows(path, "t")
        assert rows.problems == [] and len(rows.train) == 1 and len(rows.items) == 1, path
    assert len(read_jsonl(write(tmp_path / "p.jsonl", pairs(3), bom))) == 3


# 7: line separators inside preference strings


def test_preference_rows_may_hold_unicode_line_separators(tmp_path: Path):
    rows = [{"prompt": f"code {c}\u2028line\x85 =", "chosen": " q\u2029", "rejected": " x"} for c in "abc"]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    read = read_jsonl(path)
    assert len(read) == 3 and read[0].prompt == "code a\u2028line\x85 ="


# 8: the preference file's path in records


def test_the_preference_path_is_recorded_portably_and_a_prefixed_absolute_path_is_a_leak(tmp_path: Path):
    (tmp_path / "data").mkdir()
    path = write(tmp_path / "data" / "pairs.jsonl", pairs(4))
    data = load_preference(PreferenceSpec(jsonl=str(path), heldout_size=1), "cipher")
    assert data.source == f"jsonl:{path}"
    record = {"budget": {"preference": {"source": data.source}}, "model": {"source": "gguf:/home/alice/m.gguf"}}
    found = dict(leaks(record, hosts=[]))
    assert str(path) in found["budget.preference.source"] and "/home/alice" in found["model.source"]
    scrubbed = scrub(record)
    assert scrubbed["budget"]["preference"]["source"] == "jsonl:data/pairs.jsonl"
    assert leaks(scrubbed, hosts=[]) == []
    assert scrub({"url": "https://example.org/a/b"})["url"] == "https://example.org/a/b"


# 9: a one-row preference file


def test_a_one_row_preference_file_is_refused_before_any_run(tmp_path: Path):
    path = write(tmp_path / "one.jsonl", pairs(1))
    task = write(tmp_path / "task.jsonl", [{"prompt": f"{c} :", "completion": "z"} for c in "abcd"] + EVAL)
    suite = {**suite_on(task, strategies=["dpo"]), "preference": {"jsonl": str(path)}}
    assert data_problems(parse_suite(suite)) == [
        f"{path}: preference.jsonl: needs at least 2 rows to hold one out, got 1"
    ]


# 10: numbers from a table's float column


def test_whole_number_floats_are_read_as_labels_and_answers(tmp_path: Path):
    rows = [{**EVAL[0], "label": 1.0}, {**EVAL[1], "label": 0.5}]
    (problem,) = read_rows(write(tmp_path / "mc.jsonl", rows), "t").problems
    assert problem.endswith(":2: field 'label': expected the index of the correct choice (0..1), got 0.5")
    generative = [{"context": "1 + 2 =", "answer": 3.0}, {"context": "1 / 2 =", "answer": 0.5}]
    read = read_rows(write(tmp_path / "gen.jsonl", generative), "t")
    assert read.items[0].answer == "3"
    (problem,) = read.problems
    assert ":2: field 'answer': expected a non-empty string, got the number 0.5" in problem


def test_a_pandas_parquet_file_with_float_labels_reads(tmp_path: Path):
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(
        [{"prompt": "a :", "completion": "z"}, {"context": "prev of n :", "choices": ["q", "z"], "label": 1}]
    )
    assert frame["label"].dtype == "float64"
    frame.to_parquet(tmp_path / "mc.parquet")
    rows = read_rows(tmp_path / "mc.parquet", "t")
    assert rows.problems == [] and rows.items[0].label == 1 and isinstance(rows.items[0].label, int)


# 11: CSV start lines, a file's kind, suffix case, duplicate choices


def test_a_multi_line_csv_row_is_named_by_its_first_line(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text(
        'context,choices,label\n"line one\nline two\nline three","[""a"", ""b""]",5\n\nq,"[""a"", ""b""]",7\n'
    )
    problems = read_rows(path, "t").problems
    assert [problem.split(": field")[0] for problem in problems] == [f"{path}:2", f"{path}:6"]


def test_one_context_only_row_gives_one_problem_and_the_first_valid_row_sets_the_kind(tmp_path: Path):
    rows = [{"context": "prev of m :"}, *({"context": f"prev of {c} :", "answer": "z"} for c in "nopq")]
    (problem,) = read_rows(write(tmp_path / "gen.jsonl", rows), "t").problems
    assert problem.startswith(f"{tmp_path / 'gen.jsonl'}:1: a context alone")
    mixed = [*rows[1:], EVAL[0]]
    (problem,) = read_rows(write(tmp_path / "mixed.jsonl", mixed), "t").problems
    assert ":5: mixed kinds: a multiple choice evaluation row, but line 1 is generative" in problem


def test_an_uppercase_suffix_is_read_by_its_format(tmp_path: Path):
    path = tmp_path / "data.CSV"
    path.write_text('prompt,completion,context,choices,label\na,b,,,\n,,q,"[""x"", ""y""]",1\n')
    rows = read_rows(path, "t")
    assert rows.problems == [] and len(rows.train) == 1 and rows.items[0].choices == ["x", "y"]


def test_duplicate_choices_are_refused(tmp_path: Path):
    (problem,) = read_rows(write(tmp_path / "d.jsonl", [{**EVAL[0], "choices": ["z", "q", "z"]}]), "t").problems
    assert problem.endswith(":1: field 'choices': choice 'z' is given twice: the choices must differ")
