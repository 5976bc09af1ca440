"""Preference pairs against budget.seq_len, DPO's label_smoothing, RLHF's algorithms and whitespace-only pairs
(the alignment audit of /tmp/user5: each test failed before its fix)."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import ValidationError

from bench.cli.suites import check_data
from bench.estimate.lengths import too_long_pairs
from bench.models.load import load_model
from bench.strategies import STRATEGIES, PrepareContext
from bench.suite import Budget, ModelSpec, SuiteError, Training, parse_suite
from bench.tasks.check import data_problems
from bench.tasks.preference import PreferenceData, PreferencePair, parse_row
from bench.training.train import trainer_arguments
from tests.conftest import fast_suite

BUDGET = Budget(steps=2, batch_size=4, seq_len=16)
LONG = "code a = " * 8 + "code c ="  # 26 words: longer than seq_len 16 on the word-level tiny tokenizer


def _pairs(short: int, long: int) -> list[PreferencePair]:
    """Pairs of distinct prompts (the split holds out every pair of a prompt together)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return [PreferencePair(f"code {c} =", " a", " t") for c in letters[:short]] + [
        PreferencePair(LONG[: -len("c =")] + f"{c} =", " x", " l") for c in letters[:long]
    ]


def first_trainer(name: str, tmp_path: Path, pairs: list[PreferencePair], **options: Any) -> tuple[Any, PreferenceData]:
    """The first trainer `name` builds on the tiny preset: DPO's, or RLHF's reward phase; nothing trains
    (tests/test_preference_audit.py builds its trainers with it too)."""
    from bench.training.alignment import dpo_trainer, rlhf_phases

    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda message: None)
    strategy = STRATEGIES.get(name)
    validated = strategy.Options(lora={"r": 4, "alpha": 8}, **options)
    model = strategy.prepare(loaded.model, validated, PrepareContext(loaded.tokenizer, BUDGET, 0, "cpu"))
    preference = PreferenceData(train=pairs, heldout=pairs[:1], source="jsonl:pairs.jsonl")
    arguments = trainer_arguments(BUDGET, Training(), 1e-3, 0, "cpu", tmp_path)
    inputs = {"options": validated, "preference": preference, "artefacts": {}}
    if name == "dpo":
        return dpo_trainer(model, loaded.tokenizer, None, arguments, BUDGET, **inputs), preference
    _, trainer, _ = next(rlhf_phases(model, loaded.tokenizer, None, arguments, BUDGET, **inputs))
    return trainer, preference


@pytest.mark.parametrize("name", ["dpo", "rlhf"])
def test_pairs_dropped_at_seq_len_are_counted_as_budget_truncation(name: str, tmp_path: Path):
    """Before: TRL dropped the 4 long pairs silently and the record counted all 12 as trained on."""
    trainer, preference = first_trainer(name, tmp_path, _pairs(8, 4))
    assert len(trainer.train_dataset) == 8
    counts = {key: trainer.truncation[key] for key in ("seq_len", "rows", "truncated", "dropped", "longest")}
    assert counts == {"seq_len": 16, "rows": 12, "truncated": 4, "dropped": 4, "longest": counts["longest"]}
    assert counts["longest"] > 16 and preference.truncation == trainer.truncation


@pytest.mark.parametrize("name", ["dpo", "rlhf"])
def test_fewer_pairs_left_than_a_batch_is_a_one_line_error(name: str, tmp_path: Path):
    """Before: every run died in training with `num_samples should be a positive integer value, but got 0`."""
    with pytest.raises(ValueError) as raised:
        first_trainer(name, tmp_path, _pairs(2, 10))
    message = str(raised.value)
    assert message.startswith("preference jsonl:pairs.jsonl: ") and "\n" not in message
    assert "2 of 12 training pairs left after budget.seq_len 16 (10 dropped" in message
    assert "fewer than budget.batch_size 4" in message


def test_the_record_counts_the_pairs_trained_on():
    from bench.run.alignment import record_trained_pairs

    counts = {"seq_len": 32, "rows": 60, "truncated": 28, "dropped": 28, "longest": 55, "rule": "r"}
    run = SimpleNamespace(budget={"preference": {"train_pairs": 60, "heldout": 19}})
    record_trained_pairs(run, SimpleNamespace(truncation=counts))
    assert run.budget == {
        "preference": {"train_pairs": 32, "too_long_dropped": 28, "heldout": 19},
        "truncation": counts,
    }


def test_robust_needs_label_smoothing_and_only_robust_takes_it(tmp_path: Path):
    """Before: `loss_type: robust` ran the sigmoid loss exactly (label_smoothing was not an option)."""
    options = STRATEGIES.get("dpo").Options
    with pytest.raises(ValidationError, match="loss_type 'robust' needs label_smoothing > 0"):
        options(loss_type="robust")
    with pytest.raises(ValidationError, match="label_smoothing 0.1: loss_type 'sigmoid' ignores it"):
        options(label_smoothing=0.1)
    with pytest.raises(ValidationError, match="label_smoothing"):
        options(loss_type="robust", label_smoothing=0.5)  # TRL's range: [0, 0.5)
    trainer, _ = first_trainer("dpo", tmp_path, _pairs(8, 0), loss_type="robust", label_smoothing=0.1)
    assert trainer.args.label_smoothing == 0.1 and trainer.loss_types == ["robust"]


def test_ppo_is_refused_when_the_suite_is_validated():
    """Before: validated, then each run loaded the model and scored the base before failing."""
    from bench.suite import SuiteError

    suite = fast_suite("ppo", [{"rlhf": {"algorithm": "ppo"}}])
    with pytest.raises(SuiteError) as raised:
        parse_suite(suite)
    assert "strategies[0].rlhf.algorithm: expected 'rloo' or 'grpo', got 'ppo'" in raised.value.problems


def test_conversational_answers_that_differ_by_spaces_alone_are_refused():
    """Before: refused for text pairs, accepted for conversational ones."""
    user = [{"role": "user", "content": "code a ="}]
    for chosen, rejected in (("b", "b "), (" b", "b\n")):
        row = {
            "prompt": user,
            "chosen": [{"role": "assistant", "content": chosen}],
            "rejected": [{"role": "assistant", "content": rejected}],
        }
        pair, problems = parse_row(row)
        assert pair is None and problems[0][0] == "rejected" and "spaces aside" in problems[0][1]
    assert parse_row({"prompt": "code a =", "chosen": " b", "rejected": " b "})[0] is None


def _suite(tmp_path: Path, rows: list[dict[str, str]], heldout: int = 2, strategy: str = "dpo") -> Any:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    suite = fast_suite("lengths", [strategy], preference={"jsonl": str(path), "heldout_size": heldout})
    return parse_suite(suite), path


def _rows(short: int, long: int) -> list[dict[str, str]]:
    return [{"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected} for pair in _pairs(short, long)]


def test_a_heldout_size_larger_than_the_file_says_it_was_clamped(tmp_path: Path):
    suite, path = _suite(tmp_path, _rows(3, 0), heldout=100)
    (problem,) = data_problems(suite)
    assert problem.startswith(
        f"{path}: preference.heldout_size: 1 training pair(s) (3 rows, heldout_size 100 clamped to 2: at least one "
        "prompt trains) < budget.batch_size 4"
    )


@pytest.mark.parametrize("strategy", ["dpo", "rlhf"])
def test_pairs_too_long_for_seq_len_are_refused_or_warned_before_any_run(strategy: str, tmp_path: Path, capsys):
    """Before: validate passed both files; the first made every run fail in training, the second lost pairs
    silently."""
    suite, path = _suite(tmp_path, _rows(0, 12), strategy=strategy)
    assert data_problems(suite) == []  # the rows are fine; their length needs the model's tokenizer
    with pytest.raises(SuiteError) as refused:
        check_data(suite, "suite.yaml")
    (problem,) = refused.value.problems
    assert problem.startswith(f"{path}: preference.jsonl: 10 of 10 training pairs (seed 0) too long for budget.")
    assert "leaving 0 < budget.batch_size 4" in problem
    suite, path = _suite(tmp_path, _rows(6, 6), strategy=strategy)
    problems, (warning,) = too_long_pairs(suite)
    assert (
        problems == [] and warning.startswith(f"{path}: ") and f"would be dropped from {strategy} training" in warning
    )
    check_data(suite, "suite.yaml")  # a warning, not a refusal
    assert "warning: " in capsys.readouterr().err
