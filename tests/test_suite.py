from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.suite import SuiteError, load_suite, parse_suite
from tests.conftest import REPO, fast_suite


def problems_of(data: dict) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        parse_suite(data)
    return caught.value.problems


def test_negative_lora_rank_names_the_field_path_value_and_expectation():
    problems = problems_of(fast_suite("s", ["full", {"lora": {"r": -4}}]))
    assert problems == ["strategies[1].lora.r: expected a positive integer, got -4"]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"budget": {"steps": 0}}, "budget.steps: expected a positive integer, got 0"),
        ({"budget": {"stepz": 10}}, "budget.stepz: unknown key"),
        ({"colour": "red"}, "colour: unknown key"),
        ({"seeds": [1, 1]}, "seeds: expected distinct seeds, got [1, 1]"),
        ({"task": {"name": "cipher", "eval_limit": "many"}}, "task.eval_limit: expected a valid integer"),
        ({"model": {"preset": "tiny-llama", "path": "/x"}}, "model: expected exactly one of preset"),
        ({"strategies": []}, "strategies: expected a non-empty list"),
        ({"strategies": ["lorra"]}, "strategies[0]: unknown strategy 'lorra'; did you mean 'lora'?"),
        ({"strategies": [{"lora": {"rank": 8}}]}, "strategies[0].lora.rank: unknown key"),
        ({"strategies": ["full", "full"]}, "strategies: label 'full' is used twice"),
    ],
)
def test_bad_fields_are_named(change, expected):
    problems = problems_of(fast_suite("s", ["full"]) | change)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_every_problem_is_reported_at_once():
    data = fast_suite("s", [{"lora": {"r": 0}}], budget={"steps": -1}, colour=1)
    problems = problems_of(data)
    assert len(problems) == 3
    assert {p.split(":")[0] for p in problems} == {"strategies[0].lora.r", "budget.steps", "colour"}


def test_missing_task_is_named():
    data = fast_suite("s", ["full"])
    del data["task"]
    assert problems_of(data) == ["task: required field is missing"]


def test_missing_file_and_bad_yaml(tmp_path: Path):
    with pytest.raises(SuiteError, match="file not found"):
        load_suite(tmp_path / "absent.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(broken)


def test_defaults_are_resolved_into_the_strategy_options():
    suite = parse_suite(fast_suite("s", ["lora", {"lora": {"r": 4, "label": "lora-r4"}}]))
    first, second = suite.strategies
    assert (first.label, first.options["r"], first.options["learning_rate"]) == ("lora", 8, 2e-4)
    assert (second.label, second.options["r"]) == ("lora-r4", 4)


@pytest.mark.parametrize("path", sorted((REPO / "suites").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_suite_validates(path: Path):
    suite = load_suite(path)
    assert suite.strategies and suite.seeds


# Nothing absurd is accepted: fuzzed values that are not finite or far past any machine are refused
# with the field path. Hypothesis draws the value; every draw must be refused.
ABSURD_FLOATS = st.sampled_from([float("inf"), float("-inf"), float("nan")]) | st.floats(
    min_value=1e31, max_value=1e308
)
NUMERIC_FIELDS = [
    ("budget", "steps"),
    ("budget", "batch_size"),
    ("budget", "seq_len"),
    ("budget", "gradient_accumulation"),
    ("budget", "max_tokens"),
    ("budget", "max_seconds"),
    ("training", "weight_decay"),
    ("training", "max_grad_norm"),
    ("training", "warmup_ratio"),
    ("measure", "eval_batch_size"),
    ("measure", "latency_repeats"),
    ("execution", "timeout_s"),
    ("execution", "threads"),
    ("task", "train_size"),
    ("task", "test_fraction"),
]


@settings(max_examples=60, deadline=None)
@given(field=st.sampled_from(NUMERIC_FIELDS), value=ABSURD_FLOATS)
def test_absurd_numbers_are_refused_with_their_field_path(field, value):
    section, key = field
    data = fast_suite("s", ["full"])
    data[section] = {**(data.get(section) or {}), key: value}
    problems = problems_of(data)
    assert any(problem.startswith(f"{section}.{key}:") for problem in problems), (field, value, problems)


@settings(max_examples=40, deadline=None)
@given(option=st.sampled_from(["learning_rate", "alpha", "dropout"]), value=ABSURD_FLOATS)
def test_absurd_strategy_options_are_refused(option, value):
    problems = problems_of(fast_suite("s", [{"lora": {option: value}}]))
    assert any(problem.startswith(f"strategies[0].lora.{option}:") for problem in problems), problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"budget": {"batch_size": 1e30}}, "budget.batch_size: expected an integer, and this one is far too large"),
        ({"budget": {"batch_size": 2**21}}, "budget.batch_size: expected less than or equal to 1048576"),
        ({"budget": {"max_seconds": float("inf")}}, "budget.max_seconds: expected a finite number"),
        ({"seeds": [-1]}, "seeds[0]: expected greater than or equal to 0"),
        ({"seeds": [2**40]}, "seeds[0]: expected less than or equal to 4294967295"),
        ({"strategies": [{"full": {"learning_rate": 50.0}}]}, "strategies[0].full.learning_rate: expected less than"),
    ],
)
def test_absurd_values_name_the_limit(change, expected):
    problems = problems_of(fast_suite("s", ["full"]) | change)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_yaml_spellings_of_infinity_and_nan_are_refused(tmp_path: Path):
    path = tmp_path / "s.yaml"
    path.write_text(
        "name: s\nmodel: {preset: tiny-llama}\ntask: {name: cipher}\n"
        "budget: {max_seconds: .inf}\ntraining: {weight_decay: .nan}\n"
        "strategies: [{lora: {learning_rate: .inf}}]\n"
    )
    with pytest.raises(SuiteError) as caught:
        load_suite(path)
    fields = {problem.split(":")[0] for problem in caught.value.problems}
    assert fields == {"budget.max_seconds", "training.weight_decay", "strategies[0].lora.learning_rate"}
