"""Preference pairs: the builder, JSONL validation (file, line and field in every error), the suite's
`preference:` section, and how chained runs are planned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.plan import plan
from bench.suite import SuiteError, parse_suite
from bench.tasks.preference import (
    PreferenceError,
    PreferencePair,
    build_preference,
    load_preference,
    read_jsonl,
    split_pairs,
    write_jsonl,
)
from bench.tasks.synthetic import CIPHER, LETTERS
from tests.conftest import fast_suite


def test_builder_pairs_a_correct_answer_with_a_plausible_wrong_one():
    data = build_preference("cipher", train_size=200, heldout_size=50, seed=0)
    assert (len(data.train), len(data.heldout), data.source) == (200, 50, "task:cipher")
    for pair in data.train + data.heldout:
        letter = pair.prompt.split()[1]
        assert pair.chosen == " " + CIPHER[letter]
        assert pair.rejected.strip() in LETTERS and pair.rejected != pair.chosen
    assert build_preference("cipher", 200, 50, seed=0) == data  # deterministic
    assert build_preference("cipher", 200, 50, seed=1).train != data.train
    assert data.train[:50] != data.heldout  # separate random streams
    assert len(data.prompts()) == len(set(data.prompts()))


def test_builder_works_for_multi_token_answers():
    pair = build_preference("copy", 5, 5).train[0]
    assert pair.chosen == " " + pair.prompt.removeprefix("copy ").removesuffix(" :")
    assert len(pair.rejected.split()) == 3 and pair.rejected != pair.chosen


def test_jsonl_round_trip(tmp_path: Path):
    pairs = [PreferencePair("q1 :", " a", " b"), PreferencePair("q2 :", " c", " d")]
    write_jsonl(pairs, tmp_path / "p.jsonl")
    assert read_jsonl(tmp_path / "p.jsonl") == pairs


def test_every_bad_row_is_reported_with_file_line_and_field(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    rows = [
        {"prompt": "ok :", "chosen": " a", "rejected": " b"},
        {"prompt": "no rejected :", "chosen": " a"},
        {"prompt": "empty :", "chosen": "  ", "rejected": " b"},
        {"prompt": "same :", "chosen": " a", "rejected": " a"},
        {"prompt": 3, "chosen": " a", "rejected": " b"},
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n{not json\n")
    with pytest.raises(PreferenceError) as raised:
        read_jsonl(path)
    problems = raised.value.problems
    assert len(problems) == 5, problems
    assert f"{path}:2: field 'rejected': required field is missing" in problems
    assert f"{path}:3: field 'chosen': empty text" in problems
    assert any(p.startswith(f"{path}:4: field 'rejected': equal to 'chosen'") for p in problems)
    assert any(p.startswith(f"{path}:5: field 'prompt': expected text") for p in problems)
    assert any(p.startswith(f"{path}:6: not valid JSON") for p in problems)
    assert str(path) in str(raised.value)


def test_missing_file_and_split(tmp_path: Path):
    with pytest.raises(PreferenceError, match="no such file or folder"):
        read_jsonl(tmp_path / "absent.jsonl")
    pairs = [PreferencePair(f"q{i} :", " a", " b") for i in range(10)]
    data = split_pairs(pairs, heldout_size=3, source="x")
    assert (len(data.train), len(data.heldout)) == (7, 3)
    assert set(data.train + data.heldout) == set(pairs)


def test_suite_preference_section_from_jsonl(tmp_path: Path):
    write_jsonl([PreferencePair(f"q{i} :", " a", " b") for i in range(20)], tmp_path / "p.jsonl")
    suite = parse_suite(fast_suite("s", ["lora"], preference={"jsonl": str(tmp_path / "p.jsonl"), "heldout_size": 5}))
    data = load_preference(suite.preference, suite.task.name)
    assert (len(data.train), len(data.heldout)) == (15, 5)


def test_bad_preference_section_names_the_field():
    with pytest.raises(SuiteError) as raised:
        parse_suite(fast_suite("s", ["dpo"], preference={"from_task": False, "heldout_size": 0, "colour": 1}))
    text = str(raised.value)
    assert "preference.heldout_size: expected a positive integer" in text
    assert "preference.colour: unknown key" in text


def test_plan_gives_non_sft_objectives_pairs_from_the_task_and_leaves_sft_ids_unchanged():
    specs = {s.label: s for s in plan(parse_suite(fast_suite("s", ["lora", "dpo", "rlhf"])))}
    assert specs["lora"].preference is None and specs["lora"].parent is None
    assert specs["dpo"].preference.from_task and specs["rlhf"].preference.from_task
    plain = {s.label: s.run_id for s in plan(parse_suite(fast_suite("s", ["lora"])))}
    assert plain["lora"] == specs["lora"].run_id  # the new optional fields do not move old run_ids


def _chain(lora_rank: int) -> dict:
    return fast_suite("s", [{"lora": {"r": lora_rank}}, {"dpo": {"start_from": "lora", "label": "dpo-after"}}])


def test_a_chained_run_embeds_its_parent_and_follows_its_changes():
    specs = {s.label: s for s in plan(parse_suite(_chain(8)))}
    parent = specs["dpo-after"].parent
    assert parent["label"] == "lora" and parent["run_id"] == specs["lora"].run_id
    assert parent["options"]["r"] == 8
    changed = {s.label: s for s in plan(parse_suite(_chain(4)))}
    assert changed["dpo-after"].run_id != specs["dpo-after"].run_id


def test_start_from_must_name_an_sft_strategy_of_the_suite():
    with pytest.raises(SuiteError) as raised:
        parse_suite(
            fast_suite(
                "s",
                [
                    {"dpo": {"start_from": "nothing"}},
                    {"rlhf": {"start_from": "dpo"}},
                ],
            )
        )
    text = str(raised.value)
    assert "strategies[0].dpo.start_from: expected 'base' or the label of a strategy" in text
    assert "strategies[1].rlhf.start_from:" in text
