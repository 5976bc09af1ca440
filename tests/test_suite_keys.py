"""An unknown key in a suite names itself and the nearest valid key (issue 26 item 6): never a bare
"(top level): unknown key", whatever the key (a typo, an empty or blank string, nested anywhere)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.suite import Suite, SuiteError, parse_suite
from tests.conftest import fast_suite


def problems_of(data: dict) -> list[str]:
    with pytest.raises(SuiteError) as caught:
        parse_suite(data)
    return caught.value.problems


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"seed": [0]}, "seed: unknown key; did you mean 'seeds'?"),
        ({"budget": {"stepz": 10}}, "budget.stepz: unknown key; did you mean 'steps'?"),
        (
            {"retain": [{"name": "copy", "eval_limt": 5}]},
            "retain[0].eval_limt: unknown key; did you mean 'eval_limit'?",
        ),
        ({"strategies": [{"lora": {"alpah": 8}}]}, "strategies[0].lora.alpah: unknown key; did you mean 'alpha'?"),
        ({"": 1}, "(top level): unknown key ''; valid keys: budget, description,"),
        ({"  ": 1}, "(top level): unknown key '  '; valid keys: budget,"),
        ({"execution": {"": 1}}, "execution: unknown key ''; valid keys: backend,"),
    ],
)
def test_an_unknown_key_names_itself_and_the_nearest_valid_one(change, expected):
    problems = problems_of(fast_suite("s", ["full"]) | change)
    assert any(problem.startswith(expected) for problem in problems), problems


@settings(max_examples=200, deadline=None)
@given(key=st.text(max_size=6).filter(lambda k: k not in Suite.model_fields))
def test_no_unknown_top_level_key_gives_a_message_without_the_key(key):
    problems = problems_of(fast_suite("s", ["full"]) | {key: 1})
    unknown = [problem for problem in problems if "unknown key" in problem]
    assert len(unknown) == 1, problems
    assert unknown[0] != "(top level): unknown key"
    assert repr(key) in unknown[0] or unknown[0].startswith(f"{key}: unknown key")
    assert "did you mean" in unknown[0] or "valid keys: " in unknown[0]
