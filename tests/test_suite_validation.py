"""`bench validate` refuses, before any run, what every run of a suite would fail on: names no registry knows,
model files that are not there, loosely typed counts, duplicate YAML keys, a retained task given twice or
the learned task retained; a folder or a binary file is one line naming the path. Messages name the field
and the value, never the whole suite."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.cli.suites import check_data, name_problems
from bench.spec import OPTIMIZERS, SCHEDULERS
from bench.suite import SuiteError, load_suite, parse_suite
from tests.conftest import REPO, bench_cli, fast_suite, write_suite


def problems_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        parse_suite(data)
    return caught.value.problems


def suite_with(**overrides: Any) -> dict[str, Any]:
    return fast_suite("s", ["full"]) | overrides


# 1. names no registry knows, and model files that are not there


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"execution": {"backend": "wram"}},
            "execution.backend: unknown backend 'wram'; did you mean 'warm'? (known: local, warm)",
        ),
        ({"model": {"preset": "tiny-lama"}}, "model.preset: unknown preset 'tiny-lama'; did you mean 'tiny-llama'?"),
        ({"task": {"name": "ciphr"}}, "task.name: unknown synthetic task 'ciphr'; did you mean 'cipher'?"),
        ({"retain": [{"name": "copyy"}]}, "retain[0].name: unknown synthetic task 'copyy'; did you mean 'copy'?"),
        ({"task": {"name": "arc", "source": "olmo"}}, "task.name: unknown olmo task 'arc'"),
        ({"model": {"path": "/nonexistent/model"}}, "model.path: '/nonexistent/model' is not a transformers model"),
        ({"model": {"config": "/nonexistent/config"}}, "model.config: '/nonexistent/config' is not a folder"),
        ({"model": {"gguf": "/nonexistent.gguf"}}, "model.gguf: no such file '/nonexistent.gguf'"),
        ({"model": {"packaged": "nopkg"}}, "model.packaged: unknown packaged model 'nopkg'"),
    ],
)
def test_unknown_names_and_missing_model_files_are_refused(change, expected):
    problems = name_problems(parse_suite(suite_with(**change)))
    assert len(problems) == 1 and problems[0].startswith(expected), problems


def test_known_names_pass_and_every_name_problem_comes_at_once():
    assert name_problems(parse_suite(suite_with(task={"name": "boolq", "source": "olmo"}))) == []
    assert name_problems(parse_suite(suite_with(task={"name": "mmlu", "source": "olmo"}))) == []
    suite = parse_suite(suite_with(model={"preset": "tiny-lama"}, task={"name": "ciphr"}, execution={"backend": "x"}))
    with pytest.raises(SuiteError) as caught:
        check_data(suite, "s.yaml")
    assert [problem.split(":")[0] for problem in caught.value.problems] == [
        "execution.backend",
        "model.preset",
        "task.name",
    ]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"optimizer": "adamw_tourch"}, "training.optimizer: unknown optimizer 'adamw_tourch'; did you mean 'adam"),
        ({"lr_scheduler": "foo"}, "training.lr_scheduler: unknown lr_scheduler 'foo' (known: linear, cosine,"),
        ({"lr_scheduler": "cosin"}, "training.lr_scheduler: unknown lr_scheduler 'cosin'; did you mean 'cosine'?"),
    ],
)
def test_unknown_optimizer_and_scheduler_are_refused_at_load(change, expected):
    problems = problems_of(suite_with(training=change))
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    assert ", got " not in problems[0]  # the message quotes the value once


def test_the_optimizer_and_scheduler_names_match_transformers():
    """Kept in bench.spec so that validating needs no transformers; this keeps them in step with it."""
    trainer_utils = pytest.importorskip("transformers.trainer_utils")
    from transformers.training_args import OptimizerNames

    assert SCHEDULERS == tuple(item.value for item in trainer_utils.SchedulerType)
    assert OPTIMIZERS == tuple(item.value for item in OptimizerNames)


def test_validate_exits_2_on_a_name_and_stays_light(tmp_path: Path):
    path = write_suite(tmp_path, suite_with(execution={"backend": "wram"}))
    result = bench_cli("validate", str(path), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert "execution.backend: unknown backend 'wram'; did you mean 'warm'?" in result.stderr
    code = (
        "import sys; from bench.cli.suites import check_data; from bench.suite import load_suite; "
        f"check_data(load_suite({str(REPO / 'suites' / 'smoke.yaml')!r}), 's'); "
        "print(sorted({'torch', 'transformers'} & set(sys.modules)))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert imported.stdout.strip() == "[]"


# 2. what is not a suite file


def test_a_folder_or_a_binary_file_is_one_problem_naming_the_path(tmp_path: Path):
    with pytest.raises(SuiteError) as caught:
        load_suite(tmp_path)
    assert caught.value.problems == [f"{tmp_path} is a folder, not a suite file"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00name: s\n")
    with pytest.raises(SuiteError, match=r"binary\.yaml: 1 problem") as caught:
        load_suite(binary)
    assert caught.value.problems[0].startswith("not UTF-8 text")


@pytest.mark.parametrize("command", ["validate", "run", "estimate"])
def test_the_cli_refuses_a_folder_and_a_binary_file_without_a_traceback(tmp_path: Path, command: str):
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    for given in (tmp_path, binary):
        result = bench_cli(command, str(given))
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr and str(given) in result.stderr.replace("\n", "")  # rich wraps paths


# 3. messages: the field's number type, and no dump of the suite


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"execution": {"timeout_s": 0}}, "execution.timeout_s: expected a positive number, got 0"),
        ({"execution": {"resources": {"memory_gib": 0}}}, "execution.resources.memory_gib: expected a positive num"),
        ({"execution": {"resources": {"memory_gib": -3}}}, "execution.resources.memory_gib: expected a positive num"),
        ({"strategies": [{"full": {"learning_rate": 0}}]}, "strategies[0].full.learning_rate: expected a positive num"),
        ({"budget": {"steps": 0}}, "budget.steps: expected a positive integer, got 0"),
        ({"strategies": [{"lora": {"r": 0}}]}, "strategies[0].lora.r: expected a positive integer, got 0"),
    ],
)
def test_a_positive_bound_is_worded_by_the_fields_type(change, expected):
    problems = problems_of(suite_with(**change))
    assert any(problem.startswith(expected) for problem in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"execution": {"processes": 3}, "budget": {"batch_size": 2}},
            "execution.processes: 3 processes cannot split budget.batch_size 2 evenly",
        ),
        ({"model": {"preset": "tiny-llama", "hub": "a/b"}}, "model: expected exactly one of preset,"),
        ({"budget": {"match": "params"}}, "budget: match: params needs trainable_params_target"),
        ({"budget": {"trainable_params_target": 10}}, "budget: trainable_params_target is only for match: params"),
    ],
)
def test_checks_across_fields_name_them_without_dumping_the_suite(change, expected):
    problems = problems_of(suite_with(**change))
    assert len(problems) == 1 and problems[0].startswith(expected), problems
    assert "{" not in problems[0] and not problems[0].startswith("(top level)"), problems


# 4. strict integers and booleans; duplicate YAML keys


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"budget": {"batch_size": True}}, "budget.batch_size: expected a valid integer, not true or false"),
        ({"budget": {"batch_size": "2"}}, "budget.batch_size: expected a valid integer, not a string"),
        ({"budget": {"batch_size": 2.0}}, "budget.batch_size: expected a valid integer, got 2.0"),
        ({"seeds": ["1"]}, "seeds[0]: expected a valid integer, not a string"),
        ({"strategies": [{"lora": {"r": "8"}}]}, "strategies[0].lora.r: expected a valid integer, not a string"),
        ({"measure": {"accuracy": 1}}, "measure.accuracy: expected a valid boolean, got 1"),
        ({"training": {"gradient_checkpointing": "yes"}}, "training.gradient_checkpointing: expected a valid boolean"),
    ],
)
def test_loose_values_for_integers_and_booleans_are_refused(change, expected):
    problems = problems_of(suite_with(**change))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_seeds_of_the_wrong_type_are_named_one_by_one():
    assert problems_of(suite_with(seeds=[1.0, True])) == [
        "seeds[0]: expected a valid integer, got 1.0",
        "seeds[1]: expected a valid integer, not true or false, got True",
    ]


def test_a_duplicate_key_is_refused_naming_the_key_and_its_lines(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\nname: u\nmodel: {preset: tiny-llama}\ntask: {name: cipher}\n"
        "budget:\n  steps: 2\n  steps: 3\nstrategies: [full]\n"
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert caught.value.problems == [
        "name: duplicate key at line 2 (first at line 1)",
        "budget.steps: duplicate key at line 7 (first at line 6)",
    ]


def test_a_duplicate_key_deep_in_a_list_names_its_place(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\nmodel: {preset: tiny-llama}\ntask: {name: cipher}\nstrategies:\n  - lora:\n      r: 4\n      r: 8\n"
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    assert caught.value.problems == ["strategies[0].lora.r: duplicate key at line 7 (first at line 6)"]


def test_an_empty_file_and_bad_yaml_say_what_and_where(tmp_path: Path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(SuiteError) as caught:
        load_suite(empty)
    assert caught.value.problems == [
        "(top level): the suite is empty; it needs name, model, task, seeds and strategies"
    ]
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: x\n  model: [\n")
    with pytest.raises(SuiteError) as caught:
        load_suite(broken)
    assert f'in "{broken}", line 2' in caught.value.problems[0] and "<unicode string>" not in caught.value.problems[0]


def test_a_merged_anchor_may_be_overridden(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: t\nmodel: {preset: tiny-llama}\ntask: {name: cipher}\nstrategies: [full]\n"
        "seeds: [0]\nmeasure: &m {accuracy: false, latency: false}\nexecution: {timeout_s: 60}\n"
        "budget: {<<: {steps: 2, batch_size: 2}, steps: 3}\n"
    )
    assert load_suite(path).budget.steps == 3


# 5. retain


def test_a_task_retained_twice_or_the_learned_task_retained_is_refused():
    retain = [{"name": "cipher"}, {"name": "copy"}, {"name": "copy"}]
    assert problems_of(suite_with(retain=retain)) == [
        "retain[0]: 'cipher' is the learned task (task.name), not one to retain",
        "retain[2]: 'copy' is retained twice (also retain[1])",
    ]


def test_cross_field_problems_come_together():
    data = suite_with(retain=[{"name": "copy"}, {"name": "copy"}], execution={"processes": 3})
    assert [problem.split(":")[0] for problem in problems_of(data)] == ["retain[1]", "execution.processes"]


def test_an_rloo_batch_that_is_not_whole_groups_is_refused_at_load():
    """Before: the suite validated, and every RLHF run failed once its reward phase had trained."""
    data = suite_with(budget={"steps": 2, "batch_size": 6, "seq_len": 32}, strategies=["full", "rlhf"])
    assert problems_of(data) == [
        "budget.batch_size (6) must be a multiple of num_generations (4): each step scores whole groups of "
        "completions per prompt (strategies[1], rlhf)"
    ]
    assert parse_suite(data | {"strategies": [{"rlhf": {"num_generations": 3}}]}).budget.batch_size == 6


def test_a_misspelt_name_is_told_with_the_schemas_problems(tmp_path: Path, capsys):
    """Before: a suite with a schema problem said only that; its misspelt preset and task came one fix later."""
    from bench.cli.main import main

    data = suite_with(model={"preset": "tiny-lama"}, task={"name": "ciphr", "train_size": 8, "eval_limit": 4})
    data["budget"] = {**data["budget"], "steps": "sixty"}
    path = write_suite(tmp_path, data)
    for command in (["validate", str(path)], ["run", str(path), "--results", str(tmp_path / "r")]):
        assert main(command) == 2
        said = " ".join(capsys.readouterr().err.split())
        assert "3 problem(s)" in said, said
        assert "budget.steps: expected a valid integer" in said
        assert "model.preset: unknown preset 'tiny-lama'; did you mean 'tiny-llama'?" in said
        assert "task.name: unknown synthetic task 'ciphr'; did you mean 'cipher'?" in said


def test_an_empty_list_says_how_many_items_it_needs():
    """pydantic's "List should have at least 1 item after validation, not 0" was shown as it was."""
    assert problems_of(suite_with(seeds=[])) == ["seeds: expected at least 1 item, got []"]


def test_a_problem_line_is_never_broken_when_piped(tmp_path: Path):
    """A CI log is grepped for `field: problem`: rich broke lines at 80 columns when stderr was not a terminal
    (audit user20: `bench validate` and `bench ls` piped), so half a problem was on the next line."""
    preset = "tiny-llama-" + "x" * 90
    path = write_suite(tmp_path, suite_with(model={"preset": preset}))
    result = bench_cli("validate", str(path), env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line.strip() for line in result.stderr.splitlines()]
    assert any(line.startswith(f"- model.preset: unknown preset '{preset}'") for line in lines), result.stderr
    assert any(line.startswith("invalid ") and line.endswith(str(path) + ": 1 problem(s)") for line in lines), lines


@pytest.mark.parametrize("name", ["logs", "artefacts"])
def test_a_suite_named_like_the_folders_readers_skip_is_refused(name: str):
    """Records of a suite named `logs` were written to <results>/logs/<machine>/ and never read back from the
    results folder (readers skip logs/ and artefacts/ folders: mutation audit H)."""
    problems = problems_of(suite_with(name=name))
    assert problems == [f"name: {name!r} is reserved: runs keep their {name} in folders of that name, never read"]
