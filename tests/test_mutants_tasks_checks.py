"""The data a user brings (bench/tasks: check, fingerprint, math_answer) as a mutation audit found no test would
notice if it broke: each test fails on a named mutant of the data check, the data digests or the MATH answer's
spelling that the existing tests passed (2026-12-08). None trains. Rows, files and the split:
test_mutants_tasks_rows.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.suite import parse_suite
from bench.tasks.check import data_problems
from bench.tasks.fingerprint import DIGEST_KEY, MISSING, changed_data, data_fingerprint, digest
from bench.tasks.math_answer import last_boxed, normalize_math
from tests.conftest import fast_suite
from tests.test_data_edges import EVAL, suite_on, write

# ---- check: what `bench validate` refuses before any run ---------------------------------------------------

CHAT_MODEL = {"preset": "tiny-llama", "chat_template": "{{ messages }}"}
CHAT_ROWS = [{"context": [{"role": "user", "content": f"next {c} ="}], "answer": "z"} for c in "abcdefgh"]


def test_a_missing_chat_template_file_is_refused(tmp_path: Path):
    suite = suite_on(write(tmp_path / "d.jsonl", EVAL), batch_size=1)
    suite["model"] = {"preset": "tiny-llama", "chat_template": str(tmp_path / "chat.jinja")}
    assert data_problems(parse_suite(suite)) == [
        f"model.chat_template: no such template file '{tmp_path / 'chat.jinja'}'"
    ]


def test_a_file_with_a_bad_row_gives_that_problem_alone(tmp_path: Path):
    """The split, batch and loss checks run on a file that read without problems only (here the one evaluation
    row is refused: "0 evaluation items" would be a second, misleading problem)."""
    rows = [{"prompt": f"{c} :", "completion": "z"} for c in "abcd"] + [{**EVAL[0], "label": 2}]
    path = write(tmp_path / "d.jsonl", rows)
    assert data_problems(parse_suite(suite_on(path, batch_size=1))) == [
        f"{path}:5: field 'label': expected the index of the correct choice (0..1), got 2"
    ]


def test_a_retained_task_needs_no_full_batch_of_training_rows(tmp_path: Path):
    learned = write(tmp_path / "learned.jsonl", [{"prompt": f"{c} :", "completion": "z"} for c in "abcd"] + EVAL)
    retained = write(tmp_path / "retained.jsonl", [{"prompt": "a :", "completion": "z"}, *EVAL])
    suite = suite_on(learned)
    suite["retain"] = [{"name": "kept", "source": "jsonl", "path": str(retained)}]
    assert data_problems(parse_suite(suite)) == []


def test_the_loss_of_an_evaluation_only_file_is_that_of_prompt_completion_rows(tmp_path: Path):
    path = write(tmp_path / "d.jsonl", EVAL)
    (problem,) = data_problems(parse_suite(suite_on(path, batch_size=1, test_fraction=0.5, loss="assistant")))
    assert problem == (
        f"task.loss: 'assistant' does not apply to the prompt-completion rows of {path} (accepted: completion, all)"
    )


def test_generation_on_a_built_in_task_of_a_generative_olmo_name_but_another_source_is_refused():
    suite = fast_suite("s", ["full"], task={"name": "gsm8k", "generation": {"max_new_tokens": 4}})
    (problem,) = data_problems(parse_suite(suite))
    assert problem.startswith("task.generation: task 'gsm8k' (synthetic) is multiple choice;")


@pytest.mark.parametrize(("chat_template", "problems"), [(None, 0), (True, 0), (False, 1)])
def test_message_contexts_are_refused_only_where_generation_turns_the_chat_template_off(
    tmp_path: Path, chat_template, problems
):
    path = write(tmp_path / "chat.jsonl", CHAT_ROWS)
    generation = {"max_new_tokens": 4, **({} if chat_template is None else {"chat_template": chat_template})}
    suite = {**suite_on(path, batch_size=1, generation=generation), "model": CHAT_MODEL}
    found = data_problems(parse_suite(suite))
    assert found == [f"task.generation.chat_template: false, but the contexts of {path} are messages"][:problems]


def test_text_contexts_rendered_with_the_chat_template_need_a_model_with_one(tmp_path: Path):
    path = write(tmp_path / "gen.jsonl", [{"context": f"next {c} =", "answer": "z"} for c in "abcdefgh"])
    suite = suite_on(path, batch_size=1, generation={"max_new_tokens": 4, "chat_template": True})
    assert data_problems(parse_suite(suite)) == [
        "task.path: generative contexts with the chat template need a chat template, and model preset "
        "'tiny-llama' has none: give one with model.chat_template"
    ]


def test_a_model_folder_has_a_chat_template_in_a_file_of_its_own_not_in_an_empty_config_entry(tmp_path: Path):
    """chat_template.jinja beside the tokenizer counts; `"chat_template": null` does not; a folder that is not
    there is the model loader's to name (no data problem)."""
    rows = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}, *EVAL]
    suite = suite_on(write(tmp_path / "chat.jsonl", rows), batch_size=1)
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(json.dumps({"chat_template": None}))
    suite["model"] = {"path": str(folder)}
    (problem,) = data_problems(parse_suite(suite))
    assert problem.startswith(f"task.path: conversational rows need a chat template, and model folder '{folder}'")
    (folder / "chat_template.jinja").write_text("{{ messages }}")
    assert data_problems(parse_suite(suite)) == []
    suite["model"] = {"path": str(tmp_path / "not-there")}
    assert data_problems(parse_suite(suite)) == []


def test_pairs_that_repeat_evaluation_items_are_refused_only_where_a_strategy_trains_on_them(tmp_path: Path):
    """sft runs only score the pairs (the alignment metrics): no refusal for them."""
    from tests.test_preference_audit import _leaking_suite

    suite, path, _ = _leaking_suite(tmp_path, "standard", "task")
    assert data_problems(suite)[0].startswith(f"{path}:9: field 'prompt': 3 preference pair(s)")
    sft = suite.model_copy(update={"strategies": parse_suite(fast_suite("x", ["lora"])).strategies})
    assert data_problems(sft) == []


def test_every_seeds_split_of_the_pairs_is_checked_not_only_the_first(tmp_path: Path):
    """Seed 0 holds out a prompt of one pair; seed 4 the prompt of 12 of the 15, leaving 3 < a batch of 4."""
    from tests.test_preference_audit import pair_rows
    from tests.test_preference_audit import write as write_pairs

    path = write_pairs(tmp_path / "pairs.jsonl", pair_rows(["code a ="] * 12 + ["code b =", "code c =", "code d ="]))
    preference = {"jsonl": str(path), "heldout_size": 1}
    assert data_problems(parse_suite(fast_suite("p", ["dpo"], preference=preference, seeds=[0]))) == []
    (problem,) = data_problems(parse_suite(fast_suite("p", ["dpo"], preference=preference, seeds=[0, 4])))
    assert problem.startswith(
        f"{path}: preference.heldout_size: 3 training pair(s) (15 rows less the 12 pairs of the 1 prompt(s) seed 4 "
        "holds out, heldout_size 1: the pairs of a prompt are held out together) < budget.batch_size 4"
    )


# ---- fingerprint: which files a stored run is held against --------------------------------------------------


def _fingerprinted(tmp_path: Path):
    """A run of a parquet task (source dataset) retaining a jsonl task: both files are its data."""
    import datasets

    from bench.plan import plan

    datasets.Dataset.from_list(EVAL).to_parquet(str(tmp_path / "learned.parquet"))
    retained = write(tmp_path / "retained.jsonl", EVAL)
    task = {"name": "learned", "source": "dataset", "path": str(tmp_path / "learned.parquet")}
    retain = [{"name": "kept", "source": "jsonl", "path": str(retained)}]
    return plan(parse_suite(fast_suite("fp", ["full"], task=task, retain=retain)))[0], retained


def test_a_dataset_file_and_a_retained_tasks_file_are_fingerprinted_and_an_edit_of_either_is_seen(tmp_path: Path):
    spec, retained = _fingerprinted(tmp_path)
    stored = {DIGEST_KEY: data_fingerprint(spec)}
    assert set(stored[DIGEST_KEY]) == {"task:learned", "retain:kept"}
    write(retained, EVAL[:3])
    assert changed_data(stored, spec) == ["retain:kept"]
    import datasets

    datasets.Dataset.from_list(EVAL[1:]).to_parquet(str(tmp_path / "learned.parquet"))
    assert changed_data(stored, spec) == ["retain:kept", "task:learned"]


def test_stored_digests_missing_a_role_or_not_a_mapping(tmp_path: Path):
    """A role the record lacks is a change (it was not held against that file); a digest entry that is not
    a mapping is nothing to hold the run against."""
    spec, _ = _fingerprinted(tmp_path)
    now = data_fingerprint(spec)
    assert changed_data({DIGEST_KEY: {"task:learned": now["task:learned"]}}, spec) == ["retain:kept"]
    assert changed_data({DIGEST_KEY: {}}, spec) == ["retain:kept", "task:learned"]
    assert changed_data({DIGEST_KEY: "0" * 64}, spec) == []


def test_a_plugins_code_is_held_against_only_by_records_that_kept_its_digest(tmp_path: Path, monkeypatch):
    import bench.tasks.fingerprint as fingerprint

    spec, _ = _fingerprinted(tmp_path)
    code = tmp_path / "u_mine.py"
    code.write_text("STRATEGY = None\n")
    monkeypatch.setattr(fingerprint, "plugin_source", lambda strategy: ("u_mine", str(code)))
    now = data_fingerprint(spec)
    data_only = {role: found for role, found in now.items() if role != "plugin:u_mine"}
    assert changed_data({DIGEST_KEY: data_only}, spec) == []  # a record from before plugin digests
    assert changed_data({DIGEST_KEY: {**now, "plugin:u_mine": "0" * 64}}, spec) == ["plugin:u_mine"]
    monkeypatch.setattr(fingerprint, "plugin_source", lambda strategy: None)  # no longer found
    assert changed_data({DIGEST_KEY: now}, spec) == ["plugin:u_mine"]


def test_a_digest_follows_a_file_moved_between_subfolders_reads_home_paths_and_keeps_the_cache(
    tmp_path: Path, monkeypatch
):
    folder = tmp_path / "saved"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "data.arrow").write_bytes(b"abc")
    before = digest(str(folder))
    (folder / "test").mkdir()
    (folder / "train" / "data.arrow").rename(folder / "test" / "data.arrow")
    assert digest(str(folder)) != before
    monkeypatch.setenv("HOME", str(tmp_path))
    assert digest("~/saved") == digest(str(folder)) != MISSING
    cache = {"~/saved": "taken earlier"}
    assert digest("~/saved", cache) == "taken earlier"


# ---- math_answer: one spelling of a MATH answer, for the gold answer and the generation alike ----------------


def test_a_boxed_answer_without_braces_ends_at_the_closing_dollar():
    assert last_boxed("so x = \\boxed 5$. Done") == "5"


@pytest.mark.parametrize(
    ("written", "normalised"),
    [
        ("\\boxed{\\dfrac{1}{2}}", "\\frac{1}{2}"),  # the inner text of a box, then its spelling
        ("\\tfrac{1}{2}", "\\frac{1}{2}"),
        ("90^{\\circ}", "90"),
        ("1\\,000", "1000"),  # a thin space
        ("x\\ y", "xy"),  # a control space
        ("-1,000", "-1000"),
        ("1,000.5", "1000.5"),
        ("12,34", "12,34"),  # not thousands: the comma is the answer's
        ("(100,200)", "(100,200)"),  # a point, not the number 100200
        ("5\\mbox{ cm}", "5cm"),
        ("\\textbf{(A)}", "(A)"),
        ("\\mathrm{B}", "B"),
    ],
)
def test_math_answers_written_differently_read_alike(written: str, normalised: str):
    assert normalize_math(written) == normalised
