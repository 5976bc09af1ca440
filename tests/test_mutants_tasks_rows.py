"""The data a user brings (bench/tasks: rows, files, split) as a mutation audit found no test would notice if it
broke: each test fails on a named mutant of the row reader, the file formats or the split and its overlap check
that the existing tests passed (2026-12-08). None trains. The data check, digests and MATH answers:
test_mutants_tasks_checks.py."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from bench.spec import TaskSpec
from bench.tasks import load_task
from bench.tasks.base import ChoiceItem, Example, GenItem
from bench.tasks.files import read_rows
from bench.tasks.split import OverlapError, check_overlap, declared_split, hold_out, repeats
from tests.test_data_audit_fixes import MC, jsonl

# ---- rows: what a row must be -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ({"prompt": " ", "completion": "b"}, "field 'prompt': expected a non-empty string, got ' '"),
        ({"text": "\t\n"}, "field 'text': expected a non-empty string, got '\\t\\n'"),
        ({**MC[0], "label": -1}, "field 'label': expected the index of the correct choice (0..1), got -1"),
        ({**MC[0], "context": ["next a ="]}, "field 'context': expected a string, got ['next a =']"),
        ({"context": "next z ="}, "field 'choices': required field is missing (the answer)"),
        (
            {"prompt": "a", "completion": "b", "answer": "c"},
            "a row is either a training example or an evaluation item, not both",
        ),
        (
            {"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b", "name": "bot"}]},
            "field 'messages[1]': expected a message with exactly the keys role and content, got "
            "['content', 'name', 'role']",
        ),
    ],
)
def test_a_row_after_a_valid_multiple_choice_row_is_refused_with_its_own_problem(tmp_path: Path, row, problem):
    """A blank text (only whitespace), a negative label (Python would score the last choice as the correct
    one), a list context on a multiple-choice row, a context alone in a multiple-choice file (the file's kind:
    not "mixed kinds"), a training row with a generative key, a message with a key of its own (silently
    dropped, it would train on something else than the row says): each is one problem."""
    path = jsonl(tmp_path / "d.jsonl", [MC[1], row, *MC[2:]])
    assert read_rows(path, "t").problems == [f"{path}:2: {problem}"]


def test_a_conversation_teaches_its_last_assistant_turn_after_the_other_turns(tmp_path: Path):
    """The example's prompt (overlap check, length estimate) is every non-assistant turn before the last
    assistant turn; its completion that last turn."""
    turns = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "next a ="},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "next b ="},
        {"role": "assistant", "content": "c"},
    ]
    rows = read_rows(jsonl(tmp_path / "chat.jsonl", [{"messages": turns}, *MC]), "t")
    assert rows.problems == []
    (example,) = rows.train
    assert (example.prompt, example.completion) == ("Be brief.\nnext a =\nnext b =", "c")
    assert example.row == {"messages": turns}


def test_generative_answers_and_aliases_are_kept_stripped_and_ids_default_to_task_and_line(tmp_path: Path):
    """A gold answer " 4 " is compared as "4" (a generation's extracted answer has no surrounding spaces); an
    item without an id is `<task>/line<N>`, the id records and per-item comparisons key on."""
    rows = [{"context": "2 + 2 =", "answer": " 4 ", "aliases": [" four "]}, {"context": "2 + 3 =", "answer": "5"}]
    read = read_rows(jsonl(tmp_path / "gen.jsonl", ["", *rows]), "sums")
    assert read.problems == []
    assert [(item.id, item.answer, item.aliases) for item in read.items] == [
        ("sums/line2", "4", ["four"]),
        ("sums/line3", "5", []),
    ]


def test_a_boolean_answer_is_refused_not_read_as_the_text_true(tmp_path: Path):
    rows = [{"context": "next a =", "answer": "b"}, {"context": "is b after a?", "answer": True}]
    path = jsonl(tmp_path / "gen.jsonl", rows)
    assert read_rows(path, "t").problems == [f"{path}:2: field 'answer': expected a non-empty string, got True"]


def test_the_first_valid_row_sets_the_kind_and_an_invalid_one_does_not(tmp_path: Path):
    """A multiple-choice row with a bad label, then generative rows: one problem (the label), not a "mixed
    kinds" on every generative row after it."""
    rows = [{**MC[0], "label": 5}, *({"context": f"next {c} =", "answer": "z"} for c in "pqrs")]
    path = jsonl(tmp_path / "gen.jsonl", rows)
    assert read_rows(path, "t").problems == [
        f"{path}:1: field 'label': expected the index of the correct choice (0..1), got 5"
    ]


def test_a_message_context_names_the_first_line_that_set_text_contexts(tmp_path: Path):
    rows = [{"context": f"next {c} =", "answer": "z"} for c in "pq"]
    path = jsonl(tmp_path / "gen.jsonl", [*rows, {"context": [{"role": "user", "content": "next r ="}], "answer": "s"}])
    assert read_rows(path, "t").problems == [f"{path}:3: field 'context': messages context, but line 1 has a text one"]


# ---- files: JSON documents, CSV cells, datasets -------------------------------------------------------


def test_a_pretty_printed_row_in_a_json_file_is_one_problem(tmp_path: Path):
    """A .json document that is one object on several lines is not a list of rows: one problem, not a "not
    valid JSON" for each of its lines."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps(MC[0], indent=2), encoding="utf-8")
    assert read_rows(path, "t").problems == [f"{path}: holds a JSON object, not a list of rows"]


def test_a_json_file_of_one_row_whose_context_is_messages_reads_as_that_row(tmp_path: Path):
    """A list of message objects under a row key (context, messages, prompt) is the row's, not rows."""
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"context": [{"role": "user", "content": "next a ="}], "answer": "b"}), encoding="utf-8")
    rows = read_rows(path, "t")
    assert rows.problems == [] and rows.items[0].context == [{"role": "user", "content": "next a ="}]


def test_csv_cells_with_spaces_empty_header_names_and_cells_past_the_header(tmp_path: Path):
    """` 1` is label 1 and ` ["b", "c"]` a list (a space inside the quotes); unnamed columns (a trailing comma
    in the header) are not "a column named twice"; a cell past the header is a problem, not dropped."""
    path = tmp_path / "d.csv"
    path.write_text('context,choices,label,,\nnext a =," [""b"", ""c""]", 1,,\n', encoding="utf-8")
    rows = read_rows(path, "t")
    assert rows.problems == [] and (rows.items[0].choices, rows.items[0].label) == (["b", "c"], 1)
    extra = tmp_path / "extra.csv"
    extra.write_text('context,choices,label\nnext a =,"[""b"", ""c""]",0,oops\nnext b =,"[""c"", ""d""]",0\n')
    assert read_rows(extra, "t").problems[0] == (
        f"{extra}:2: field '(cell without a header)': unknown key (expected text, prompt/completion, messages, "
        "context/choices/label/id or context/answer/aliases/id)"
    )


def test_a_big_endian_utf16_file_says_so(tmp_path: Path):
    path = tmp_path / "d.jsonl"
    path.write_bytes('\ufeff{"text": "a"}\n'.encode("utf-16-be"))
    assert read_rows(path, "t").problems == [
        f"{path}: cannot read: not UTF-8 (a UTF-16 byte order mark): save it as UTF-8"
    ]


def test_a_preference_folder_is_refused_as_a_folder(tmp_path: Path):
    from bench.tasks.preference import PreferenceError, read_jsonl

    (tmp_path / "pairs").mkdir()
    with pytest.raises(PreferenceError) as raised:
        read_jsonl(tmp_path / "pairs")
    assert raised.value.problems == [
        f"{tmp_path / 'pairs'}: a folder: preference pairs, which are JSONL (one JSON object a line) is a file "
        "(.jsonl, .json)"
    ]


def test_parquet_rows_are_numbered_from_1_and_a_folder_of_two_splits_is_refused(tmp_path: Path):
    import datasets

    good = {"context": "next a =", "choices": ["b", "c"], "label": 0}
    table = datasets.Dataset.from_list([good, {**good, "choices": ["c"]}])
    table.to_parquet(str(tmp_path / "d.parquet"))
    assert read_rows(tmp_path / "d.parquet", "t").problems == [
        f"{tmp_path / 'd.parquet'}:2: field 'choices': expected a list of at least 2 non-empty strings, got ['c']"
    ]
    datasets.DatasetDict({"train": table, "test": table}).save_to_disk(str(tmp_path / "both"))
    assert read_rows(tmp_path / "both", "t").problems == [
        f"{tmp_path / 'both'}: a folder of several splits (train, test): name one split's folder"
    ]


# ---- split: what the declared split teaches, its order, and the overlap check ---------------------------


def _sha_order(ids: list[str], salt: str) -> list[str]:
    return sorted(ids, key=lambda item_id: hashlib.sha256(f"{salt}|{item_id}".encode()).hexdigest())


def test_a_declared_split_teaches_the_correct_choice_in_hashed_order_and_tests_in_hashed_order():
    """Held-in items teach their labelled choice (not the first), both sides are in the hashed order of their
    ids (the first eval_limit are a stable random sample, not the file's first rows)."""
    items = [
        ChoiceItem(f"t/{i}", f"what comes after {c}?", ["x", "y", chr(ord(c) + 1)], 2) for i, c in enumerate("abcdefgh")
    ]
    train, test = declared_split(items, 0.5, "t")
    taught = [example.prompt.split()[-1][0] for example in train]
    assert [example.completion for example in train] == [chr(ord(c) + 1) for c in taught] and len(train) == 4
    held_in = [f"t/{'abcdefgh'.index(c)}" for c in taught]
    assert held_in == _sha_order(held_in, "t") != sorted(held_in)
    ids = [item.id for item in test]
    assert ids == _sha_order(ids, "t") != sorted(ids) and len(ids) == 4


def test_a_held_in_generative_item_teaches_its_answer_as_the_assistant_turn():
    system = {"role": "system", "content": "Be brief."}
    chat = [
        GenItem(f"g/{i}", [system, {"role": "user", "content": f"after {c}?"}], chr(ord(c) + 1), ["z"])
        for i, c in enumerate("abcdefgh")
    ]
    text = [GenItem(f"s/{i}", f"after {c}?", chr(ord(c) + 1), ["z"]) for i, c in enumerate("abcdefgh")]
    for items in (chat, text):
        train, _ = declared_split(items, 0.5, "g")
        assert train and all(example.completion == chr(ord(example.prompt[-2]) + 1) for example in train)
    example = declared_split(chat, 0.5, "g")[0][0]
    assert example.row == {
        "prompt": [system, {"role": "user", "content": example.prompt.split("\n")[1]}],
        "completion": [{"role": "assistant", "content": example.completion}],
    }


def test_a_declared_split_says_its_fraction_and_counts_each_side(tmp_path: Path):
    rows = [
        {"context": f"what comes after {c}?", "choices": ["x", chr(ord(c) + 1)], "label": 1} for c in "abcdefghijkl"
    ]
    task = load_task(
        TaskSpec(name="t", source="jsonl", path=str(jsonl(tmp_path / "d.jsonl", rows)), test_fraction=0.25)
    )
    assert task.info["split"] == "declared: 0.25 of the evaluation rows held out by sha256 of normalised context"
    assert (task.info["train_available"], task.info["test_available"]) == (len(task.train), len(task.eval))
    assert len(task.train) > len(task.eval) > 0


def test_given_training_examples_make_every_item_a_test_item_even_when_none_are_left():
    items = [ChoiceItem(f"t/{i}", f"what comes after {c}?", ["x", "y"], 0) for i, c in enumerate("abcd")]
    train, test, split = hold_out("t", items, [], 0.5, "shipped", "test")
    assert (train, split) == ([], "shipped") and [item.id for item in test] == _sha_order(
        ["t/0", "t/1", "t/2", "t/3"], "t"
    )


def test_a_later_user_turn_or_a_context_of_several_turns_repeats_an_evaluation_item():
    """Before each assistant turn the last user turn alone, and the turns so far without the system turn, are
    compared: a conversation's second question, or an evaluation context that is itself a conversation."""
    system = {"role": "system", "content": "Be brief."}
    turns = [
        system,
        {"role": "user", "content": "next a ="},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "next q ="},
        {"role": "assistant", "content": "r"},
    ]
    example = Example("Be brief.\nnext a =\nnext q =", "r", {"messages": turns})
    assert repeats([example], [GenItem("q", "Next q =", "r")]) == [(0, "q")]
    assert repeats([example], [GenItem("chat", turns[1:4], "r")]) == [(0, "chat")]
    assert repeats([example], [GenItem("other", "next z =", "a")]) == []


def test_a_text_that_is_an_evaluation_context_or_starts_with_a_shorter_one_repeats_it():
    """A language-modeling text equal to a context; and one that starts inside a word of a longer context but
    at a word's end of a shorter one ("translate cat" in "translate cat foodie", not "translate cat food")."""
    items = [
        ChoiceItem("cat", "Translate: cat", ["a", "b"], 0),
        ChoiceItem("food", "Translate: cat food", ["a", "b"], 0),
    ]
    texts = ["translate: CAT", "Translate: cat foodie is a word", "Translate: catfood"]
    assert repeats([Example(t, "", {"text": t}) for t in texts], items) == [(0, "cat"), (1, "cat")]


def test_the_overlap_error_counts_every_clash_names_three_and_the_first_item_of_a_shared_context():
    items = [ChoiceItem("first", "next a =", ["b", "c"], 0), ChoiceItem("second", "Next a =", ["b", "c"], 0)]
    items += [ChoiceItem(f"t/{c}", f"next {c} =", ["b", "c"], 0) for c in "xyz"]
    train = [Example(f"next {c} =", "b") for c in "axyz"]
    with pytest.raises(OverlapError) as raised:
        check_overlap("t", train, items)
    assert str(raised.value).startswith(
        "task 't': 4 training example(s) repeat evaluation items (normalised text), e.g. first <- 'next a ='; "
        "t/x <- 'next x ='; t/y <- 'next y ='. Evaluation"
    )
