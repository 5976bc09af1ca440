"""Data checked before training (issue 25, item 4): every data file a suite names is read once, every
problem reported at once as `file:line: field: what`, exit 2, no run started, never a traceback."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.plan import plan
from bench.spec import TaskSpec
from bench.suite import parse_suite
from bench.tasks import load_task
from bench.tasks.check import data_problems
from bench.tasks.files import read_rows
from tests.conftest import bench_cli, fast_suite, write_suite

EVAL = [{"context": f"Q{i}: 2+{i}=", "choices": [str(2 + i), str(3 + i)], "label": 0} for i in range(4)]
BAD_ROWS: list[tuple[Any, str]] = [
    ({"prompt": "a", "completion": "b"}, ""),  # sets the file's format: prompt-completion
    ({"text": "hello"}, ":2: mixed kinds: a language-modeling row, but line 1 is prompt-completion"),
    ({"messages": [{"role": "", "content": "x"}]}, ":3: field 'messages[0].role': empty role"),
    ({"messages": [{"role": "bot", "content": "x"}]}, ":4: field 'messages[0].role': unknown role 'bot'"),
    ({"messages": [{"role": "user", "content": "x"}]}, ":5: field 'messages': no assistant turn"),
    ({"messages": [{"role": "assistant", "content": 3}]}, ":6: field 'messages[0].content': expected a string"),
    ({"context": "c", "choices": ["a", "b"]}, ":7: field 'label': required field is missing (the answer)"),
    ({**EVAL[0], "id": "z"}, ""),
    ({**EVAL[1], "id": "z"}, ":9: field 'id': duplicate id 'z' (first on line 8)"),
    ("{nope", ":10: not valid JSON"),
    (
        {"prompt": [{"role": "user", "content": "q"}], "completion": "a"},
        ":11: field 'completion': expected a non-empty",
    ),
]


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def data_suite(folder: Path, path: Path, **task: Any) -> dict[str, Any]:
    """A suite whose task and retained task read `path`; batches of 1, so a one-row training set trains."""
    spec = {"name": "mine", "source": "jsonl", "path": str(path), **task}
    budget = {"steps": 4, "batch_size": 1, "seq_len": 16}
    return fast_suite("data", ["lora"], task=spec, retain=[{**spec, "name": "again"}], budget=budget)


def test_every_problem_of_a_file_is_reported_at_once_and_the_file_is_read_once(tmp_path: Path, monkeypatch):
    path = write(tmp_path / "bad.jsonl", [row for row, _ in BAD_ROWS])
    reads = []
    import bench.tasks.check as check

    monkeypatch.setattr(check, "read_rows", lambda p, n: reads.append(p) or read_rows(p, n))
    problems = data_problems(parse_suite(data_suite(tmp_path, path)))
    assert reads == [path]  # the task and the retained task name the same file
    expected = [f"{path}{message}" for _, message in BAD_ROWS if message]
    assert len(problems) == len(expected)
    for line, message in zip(problems, expected):
        assert line.startswith(message)


def test_accepted_formats_and_losses(tmp_path: Path):
    conversation = [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]
    files = {
        "text": [{"text": "2+2=4"}],
        "pc": [{"prompt": "2+2=", "completion": "4", "id": "t1"}],  # an id on a training row: allowed
        "messages": [{"messages": [{"role": "system", "content": "Be brief."}, *conversation]}],
        "conv-pc": [{"prompt": conversation[:1], "completion": conversation[1:]}],
    }
    for name, rows in files.items():
        suite = data_suite(tmp_path, write(tmp_path / f"{name}.jsonl", [*rows, *EVAL]))
        suite["model"] = {"preset": "tiny-llama", "chat_template": "{{ messages }}"}
        assert data_problems(parse_suite(suite)) == [], name
    wrong = data_suite(tmp_path, tmp_path / "text.jsonl", loss="completion")
    (problem, again) = data_problems(parse_suite(wrong))
    assert problem.startswith("task.loss: 'completion' does not apply to the language-modeling rows")
    assert again.startswith("retain[0].loss:")


def test_conversational_rows_on_a_model_without_a_template_are_refused(tmp_path: Path):
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, *EVAL]
    suite = data_suite(tmp_path, write(tmp_path / "chat.jsonl", rows))
    problems = data_problems(parse_suite(suite))
    assert problems[0] == (
        "task.path: conversational rows need a chat template, and model preset 'tiny-llama' has none: "
        "give one with model.chat_template"
    )
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}))
    suite["model"] = {"path": str(folder)}
    (problem, _) = data_problems(parse_suite(suite))
    assert problem.startswith(f"task.path: conversational rows need a chat template, and model folder '{folder}'")
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{{ messages }}"}))
    assert data_problems(parse_suite(suite)) == []


def test_datasets_folders_and_parquet_csv_files_are_read(tmp_path: Path):
    import datasets

    columns = ["prompt", "completion", "context", "choices", "label"]
    rows = [{key: row.get(key) for key in columns} for row in [{"prompt": "2+2=", "completion": "4"}, *EVAL[:2]]]
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "folder"))
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    (tmp_path / "d.json").write_text(json.dumps(rows))
    for path in (tmp_path / "folder", tmp_path / "d.parquet", tmp_path / "d.json"):
        read = read_rows(path, "t")
        assert read.problems == [] and len(read.train) == 1 and len(read.items) == 2, path
    (tmp_path / "d.csv").write_text('prompt,completion,context,choices,label\n2+2=,4,,,\n,,q,"[""a"", ""b""]",0\n')
    read = read_rows(tmp_path / "d.csv", "t")
    assert read.problems == [] and read.items[0].choices == ["a", "b"] and read.train[0].completion == "4"
    task = load_task(TaskSpec(name="t", source="dataset", path=str(tmp_path / "d.parquet"), loss="all"))
    assert (
        task.info["source"] == "dataset" and task.info["format"] == "prompt-completion" and task.info["loss"] == "all"
    )
    (tmp_path / "e.csv").write_text("context,choices,label\nq,a,0\n")
    (problem,) = read_rows(tmp_path / "e.csv", "t").problems
    assert problem.startswith(f"{tmp_path / 'e.csv'}:2: field 'choices': expected a list")  # line 1: the header


def test_validate_and_run_exit_2_before_any_run(tmp_path: Path):
    path = write(tmp_path / "bad.jsonl", [row for row, _ in BAD_ROWS])
    suite_file = write_suite(tmp_path, data_suite(tmp_path, path))
    validated = bench_cli("validate", str(suite_file), env={"COLUMNS": "400"})
    assert validated.returncode == 2 and "Traceback" not in validated.stderr
    assert "9 problem(s)" in validated.stderr and "duplicate id 'z'" in validated.stderr
    results = tmp_path / "results"
    ran = bench_cli("run", str(suite_file), "--results", str(results))
    assert ran.returncode == 2 and "Traceback" not in ran.stderr and "9 problem(s)" in ran.stderr
    assert not results.exists()  # no run started, no failed records


def test_new_suite_fields_leave_existing_run_ids_alone():
    base = fast_suite("s", ["lora"], task={"name": "cipher"})
    ids = {spec.run_id for spec in plan(parse_suite(base))}
    assert ids == {spec.run_id for spec in plan(parse_suite({**base, "model": {"preset": "tiny-llama"}}))}
    templated = {**base, "model": {"preset": "tiny-llama", "chat_template": "{{ messages }}"}}
    assert ids != {spec.run_id for spec in plan(parse_suite(templated))}
    mine = {"name": "mine", "source": "jsonl", "path": "data.jsonl"}

    def run_ids(**task: Any) -> set[str]:
        return {spec.run_id for spec in plan(parse_suite({**base, "task": {**mine, **task}}))}

    assert run_ids() == run_ids(loss=None) != run_ids(loss="all")


KEYS = ["text", "prompt", "completion", "messages", "context", "choices", "label", "id", "role", "content", "x"]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=3), inner),
    max_leaves=8,
)
MESSAGE = st.fixed_dictionaries(
    {"role": st.sampled_from(["user", "assistant", "system", "", "bot"]) | JSON, "content": JSON}
)
ROW = st.one_of(
    st.dictionaries(st.sampled_from(KEYS), JSON, max_size=4),
    st.fixed_dictionaries({"messages": st.lists(MESSAGE | JSON, max_size=3)}),
    st.fixed_dictionaries({"prompt": st.lists(MESSAGE, max_size=2) | JSON, "completion": st.lists(MESSAGE) | JSON}),
    st.fixed_dictionaries(
        {"context": JSON, "choices": st.lists(st.text(max_size=2) | JSON, max_size=3), "label": JSON}
    ),
    JSON,
)
LINE = ROW.map(json.dumps) | st.text(max_size=12) | st.binary(max_size=8).map(lambda b: b.decode("latin-1"))
FILE = st.tuples(st.lists(LINE, max_size=8), st.sampled_from([".jsonl", ".json", ".csv"]))


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(FILE)
def test_malformed_data_files_give_problems_never_a_traceback(case: tuple[list[str], str]):
    lines, suffix = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"data{suffix}"
        path.write_bytes("\n".join(lines).encode("utf-8", "surrogatepass"))
        suite = parse_suite(data_suite(Path(folder), path, loss="all"))
        problems = data_problems(suite)  # raises nothing, whatever the file holds
        assert all(isinstance(p, str) and p for p in problems)
        rows = read_rows(path, "mine")
        if rows.problems:
            assert all(p.startswith(str(path)) for p in rows.problems)
        else:  # what passes the check loads
            from bench.tasks.jsonl import build_jsonl

            try:
                build_jsonl("mine", str(path), 10, 10, 0.5)
            except ValueError as error:  # only the overlap check, reported by data_problems too
                assert "repeat evaluation items" in str(error) and problems


@pytest.mark.parametrize("content", [b"\xff\xfe\x00", b"", b"\n\n"])
def test_undecodable_or_empty_files(tmp_path: Path, content: bytes):
    path = tmp_path / "d.jsonl"
    path.write_bytes(content)
    (problem,) = read_rows(path, "t").problems
    assert problem.startswith(str(path)) and ("cannot read" in problem or "no evaluation rows" in problem)


@pytest.mark.parametrize(
    ("strategies", "preference", "needs"),
    [(["full", "dpo"], None, "dpo/rlhf"), (["full"], {"from_task": True}, "the alignment metrics")],
)
def test_pairs_from_a_task_that_cannot_build_them_are_refused_before_any_run(
    tmp_path: Path, strategies, preference, needs
):
    """A jsonl task with dpo and no `preference.jsonl`: pairs would be built from the task, which only a
    synthetic task can do; `bench validate` said valid and every dpo run then failed."""
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in [{"text": f"row {i}"} for i in range(8)] + EVAL))
    suite = fast_suite("mine", strategies, task={"name": "mine", "source": "jsonl", "path": str(data)})
    if preference:
        suite["preference"] = preference
    problems = data_problems(parse_suite(suite))
    assert len(problems) == 1 and problems[0].startswith(f"preference: {needs} need preference pairs"), problems
    assert "task 'mine' (source jsonl)" in problems[0] and "preference: {jsonl: <file>}" in problems[0]
    assert data_problems(parse_suite(fast_suite("synthetic", strategies, preference=preference))) == []


def test_one_problem_on_many_rows_is_listed_three_times_then_counted(tmp_path: Path):
    """A file of text rows after one prompt-completion row: every row is "mixed kinds"; 33 lines said
    the same thing."""
    path = tmp_path / "mixed.jsonl"
    rows = [{"prompt": "a", "completion": "b"}, *({"text": f"t{i}"} for i in range(10)), *EVAL]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    problems = read_rows(path, "mixed").problems
    mixed = "mixed kinds: a language-modeling row, but line 1 is prompt-completion"
    assert problems == [
        f"{path}:2: {mixed}",
        f"{path}:3: {mixed}",
        f"{path}:4: {mixed}",
        f"{path}: {mixed}: 7 more rows like it (lines 5 to 11)",
    ]


def test_an_empty_row_a_json_error_and_a_relative_path_say_what_they_are(tmp_path: Path, monkeypatch):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"text": "a"}\n{"text": "b\tc"}\n{}\n' + "".join(json.dumps(row) + "\n" for row in EVAL))
    problems = read_rows(path, "rows").problems
    assert problems[0] == f"{path}:2: not valid JSON: Invalid control character at column 12"
    assert problems[1].startswith(f"{path}:3: an empty row ({{}})")
    monkeypatch.chdir(tmp_path)
    (missing,) = read_rows(Path("data/nothere.jsonl"), "gone").problems
    where = f"(a relative path is read from the directory bench runs in: {tmp_path})"
    assert missing == f"data/nothere.jsonl: no such file or folder {where}"
