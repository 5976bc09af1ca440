"""Preference data that validates but makes the align.* metrics say less than they seem to: a held-out side
of copies of a few pairs, and chosen answers systematically longer (or shorter) than rejected ones. Each
test failed before: `bench validate` said nothing, and the record had no count of distinct held-out pairs."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import bench.evaluate.rendering as rendering
from bench.cli.suites import check_data
from bench.estimate.lengths import too_long_pairs
from bench.plan import plan
from bench.run.alignment import load_preference_data
from bench.suite import parse_suite
from bench.tasks.check import data_problems
from tests.conftest import fast_suite

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _suite(tmp_path: Path, rows: list[dict[str, Any]], strategies: list[str], **preference: Any) -> Any:
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    preference = {"jsonl": str(path), "heldout_size": 2, **preference}
    return parse_suite(fast_suite("pw", strategies, preference=preference, seeds=[0, 1]))


def _rows(prompts: list[str], chosen: str = " b", rejected: str = " c") -> list[dict[str, Any]]:
    return [{"prompt": prompt, "chosen": chosen, "rejected": rejected} for prompt in prompts]


# 1. a held-out side of few distinct pairs


@pytest.mark.parametrize("strategies", [["lora"], ["dpo"]])
def test_a_held_out_side_of_copies_is_warned_per_seed(tmp_path: Path, strategies: list[str], capsys):
    """Before: `valid`; 2 prompts each repeating one pair 50 times hold out 50 copies of one pair, and every
    align.* metric is that pair's 0 or 1 shown as a share of 50."""
    suite = _suite(tmp_path, _rows(["code a ="] * 50) + _rows(["code b ="] * 50), strategies, heldout_size=20)
    assert data_problems(suite) == []
    path = suite.preference.jsonl
    problems, warnings = too_long_pairs(suite)
    assert problems == []
    assert warnings == [
        f"{path}: held-out: 50 pairs, 1 distinct (seed {seed}): align.* metrics are the outcome of 1 pair, each "
        "scored 50 times on average; remove the repeated rows or add distinct pairs"
        for seed in (0, 1)
    ]
    check_data(suite, "suite.yaml")  # a warning, not a refusal
    assert "warning: " + warnings[0] in capsys.readouterr().err.replace("\n", " ").replace("  ", " ")
    # at most half distinct is warned; a small held-out side of distinct pairs, or 3 distinct of 4, is not
    rows = _rows([f"code {a} =" for a in LETTERS[:12]])  # 2 held out, both distinct
    assert too_long_pairs(_suite(tmp_path, rows, strategies)) == ([], [])
    rows = _rows(["code a ="] * 2) + _rows(["code a ="], " d") + _rows(["code a ="], " e")
    rows += _rows(["code b ="]) + _rows(["code b ="], " d") + _rows(["code b ="], " e") + _rows(["code b ="], " f")
    assert too_long_pairs(_suite(tmp_path, rows, strategies, heldout_size=4)) == ([], [])  # 4 held: 3 or 4 distinct
    rows = _rows(["code a =", "code b =", "code c =", "code d ="] * 2)  # 2 held out, 1 distinct: half
    warned = too_long_pairs(_suite(tmp_path, rows, strategies))[1]
    assert warned and all(": held-out: 2 pairs, 1 distinct (seed" in warning for warning in warned)


def test_the_record_counts_distinct_held_out_pairs(tmp_path: Path):
    """Before: `budget.preference` said `heldout: 50` and nothing showed they were one pair."""
    suite = _suite(tmp_path, _rows(["code a ="] * 50) + _rows(["code b ="] * 50), ["lora"], heldout_size=20)
    for spec in plan(suite):
        run = SimpleNamespace(spec=spec, budget={})
        load_preference_data(run)
        recorded = run.budget["preference"]
        assert (recorded["heldout"], recorded["heldout_distinct"], recorded["heldout_prompts"]) == (50, 1, 1)


# 2. chosen answers systematically longer or shorter than rejected ones


LENGTHS = [(" b c d", " e", "longer", 0), (" e", " b c d", "shorter", 1)]  # (chosen, rejected, what, near)


@pytest.mark.parametrize("strategies", [["lora"], ["dpo"], ["dpo", "rlhf"]])
@pytest.mark.parametrize(("chosen", "rejected", "what", "near"), LENGTHS)
def test_chosen_answers_longer_or_shorter_than_rejected_are_warned(
    tmp_path: Path, strategies: list[str], chosen: str, rejected: str, what: str, near: int, monkeypatch
):
    """Before: `valid`, and align.preference_accuracy sat near 0 (or 1) whatever training did. The answers'
    lengths are counted on the token ids DPO's check renders: one tokenization of each pair."""
    rows = _rows([f"code {a} =" for a in LETTERS[:19]], chosen, rejected) + _rows(["code t ="], " x", " y")
    suite = _suite(tmp_path, rows, strategies)
    calls = []
    dpo_ids = rendering.dpo_ids
    monkeypatch.setattr(rendering, "dpo_ids", lambda *args: calls.append(args) or dpo_ids(*args))
    problems, warnings = too_long_pairs(suite)
    assert problems == [] and len(calls) == 20  # one tokenization of every pair, dpo's fates included
    long, short = (4.0 * 19 + 2) / 20, (2.0 * 19 + 2) / 20  # " b c d" + eos: 4 ids; " e" + eos: 2
    means = (long, short) if what == "longer" else (short, long)
    assert warnings == [
        f"{suite.preference.jsonl}: the chosen answer is {what} than the rejected one in 19 of 20 pairs (95%; "
        f"mean {means[0]:.1f} against {means[1]:.1f} tokens): align.preference_accuracy (summed log-likelihoods: "
        f"every token lowers one) leans towards {near} whatever training does; read align.reward_accuracy "
        "(relative to the base model), not it"
    ]


def test_the_length_warning_starts_at_90_percent_of_pairs(tmp_path: Path):
    """Chosen longer in 18 of 20 pairs (90%) is warned; in 17 of 20 (85%), or never, it is not."""
    prompts = [f"code {a} =" for a in LETTERS[:20]]
    rows = _rows(prompts[:18], " b c", " d") + _rows(prompts[18:], " d", " b c")
    (warning,) = too_long_pairs(_suite(tmp_path, rows, ["dpo"]))[1]
    assert "the chosen answer is longer than the rejected one in 18 of 20 pairs (90%; mean 2.9 against 2.1" in warning
    rows = _rows(prompts[:17], " b c", " d") + _rows(prompts[17:], " d", " b c")
    assert too_long_pairs(_suite(tmp_path, rows, ["dpo"])) == ([], [])
    assert too_long_pairs(_suite(tmp_path, _rows(prompts), ["dpo"])) == ([], [])
