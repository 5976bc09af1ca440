from pathlib import Path

import pytest

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
