"""The preference checks before a run (bench.estimate.lengths) at their exact boundaries, against what DPOTrainer and
RewardTrainer drop at budget.seq_len (a mutation audit: each test fails on a mutant that the checks' own tests
passed; tests/test_mutants_estimate.py has the estimate's, tests/test_mutants_measure.py the measurements'). None
trains."""

from __future__ import annotations

import json
import string
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.estimate.lengths import _verdict, too_long_pairs
from bench.suite import parse_suite
from bench.tasks.preference import PreferencePair, read_jsonl, split_pairs
from tests.conftest import fast_suite
from tests.test_alignment_seq_len import first_trainer

# preference pairs against budget.seq_len (bench.estimate.lengths)


def _prompt(letters: int, start: int) -> str:
    """'code x y ... =': on the tiny preset's word-level tokenizer `letters` + 2 ids, distinct per `start`."""
    return "code " + " ".join(string.ascii_lowercase[(start + i) % 26] for i in range(letters)) + " ="


def _preference_suite(tmp_path: Path, pairs: list[tuple[str, str, str]], strategy: str, seeds: list[int]) -> Any:
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": prompt, "chosen": chosen, "rejected": rejected} for prompt, chosen, rejected in pairs]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    preference = {"jsonl": str(path), "heldout_size": 2}
    return parse_suite(fast_suite("edge", [strategy], preference=preference, seeds=seeds))


@pytest.mark.parametrize(
    ("strategy", "letters", "dropped"),
    [
        ("dpo", 14, True),  # a prompt of exactly seq_len (16) ids leaves no answer token: DPOTrainer drops it
        ("dpo", 13, False),  # 15 ids: kept, its answers cut
        ("rlhf", 12, False),  # prompt + answer + end of sequence exactly 16 ids: RewardTrainer keeps it
        ("rlhf", 13, True),  # 17 ids: dropped
    ],
)
def test_the_check_before_a_run_drops_what_the_trainer_drops_at_exactly_seq_len(
    tmp_path: Path, strategy: str, letters: int, dropped: bool
):
    edge = [(_prompt(letters, start), " a", " t") for start in range(12)]
    short = [(_prompt(2, start), " a", " t") for start in range(6)]
    trainer, _ = first_trainer(strategy, tmp_path, [PreferencePair(*pair) for pair in edge[:6] + short])
    assert trainer.truncation["dropped"] == 6 * dropped  # the trainer's own rule, at seq_len 16
    problems, warnings = too_long_pairs(_preference_suite(tmp_path, edge, strategy, [0]))
    if dropped:
        (problem,) = problems
        assert "preference.jsonl: 10 of 10 training pairs (seed 0) too long for budget.seq_len 16" in problem
        assert warnings == []
    else:
        assert (problems, warnings) == ([], [])


def test_a_refusal_for_every_seed_is_said_once_for_the_first_seed(tmp_path: Path):
    pairs = [(_prompt(14, start), " a", " t") for start in range(12)]
    problems, _ = too_long_pairs(_preference_suite(tmp_path, pairs, "dpo", [0, 1]))
    assert len(problems) == 1 and "(seed 0)" in problems[0]


def test_the_pairs_lost_are_said_for_the_first_seed_that_loses_any(tmp_path: Path):
    """Two of 12 prompts fill seq_len: seed 1's split holds one of them out, seed 2's trains on both."""
    pairs = [(_prompt(2, start), " a", " t") for start in range(10)] + [
        (_prompt(14, start), " a", " t") for start in (0, 1)
    ]
    suite = _preference_suite(tmp_path, pairs, "dpo", [1, 2])
    long = {pair[0] for pair in pairs[10:]}
    file_pairs = read_jsonl(Path(suite.preference.jsonl))
    trained = {seed: sum(p.prompt in long for p in split_pairs(file_pairs, 2, "x", seed).train) for seed in (1, 2)}
    assert trained == {1: 1, 2: 2}
    problems, warnings = too_long_pairs(suite)
    assert problems == []
    assert warnings == [
        f"{suite.preference.jsonl}: 1 of 10 training pairs (seed 1) too long for budget.seq_len 16 would be dropped "
        "from dpo training (DPOTrainer drops a pair whose prompt alone fills seq_len)"
    ]


def _budget(batch: int = 4) -> Any:
    return SimpleNamespace(budget=SimpleNamespace(seq_len=16, batch_size=batch))


def test_pairs_dropped_and_pairs_alike_together_leave_too_few_that_differ():
    """3 dropped, 4 kept alike, 3 that differ < a batch of 4 (7 kept: enough were it not for the alike)."""
    fates = ["dropped"] * 3 + ["identical"] * 4 + [None] * 3
    problem, warnings = _verdict(_budget(), Path("p.jsonl"), "dpo", 0, fates)
    assert warnings == []
    assert problem == (
        "p.jsonl: preference.jsonl: 4 of 10 training pairs (seed 0) have chosen and rejected with the same token "
        "ids at budget.seq_len 16 (they differ only after seq_len tokens, or tokenize alike: words the tokenizer "
        "does not know); and 3 of 10 training pairs (seed 0) too long for budget.seq_len 16 (DPOTrainer drops a "
        "pair whose prompt alone fills seq_len), leaving 3 that differ < budget.batch_size 4: no preference for "
        "dpo to learn (DPO's loss stays at ln 2); make chosen and rejected differ in their first tokens or raise "
        "budget.seq_len"
    )


def test_a_single_pair_alike_at_seq_len_is_warned():
    problem, warnings = _verdict(_budget(), Path("p.jsonl"), "rlhf", 3, ["identical"] + [None] * 9)
    assert problem is None
    assert warnings == [
        "p.jsonl: 1 of 10 training pairs (seed 3) have chosen and rejected with the same token ids at budget.seq_len "
        "16 (they differ only after seq_len tokens, or tokenize alike: words the tokenizer does not know): rlhf "
        "learns nothing from them"
    ]
