"""Alignment metrics audit (user17): the implicit-reward accuracy beside the raw, length-sensitive ranking;
the win rate's wins, exact matches and missing value where the judge decided nothing; the base model's
score on the seeded held-out pairs compared seed by seed in bench compare. Hand-made log-probabilities
and answers (no model), plus one DPO run on the tiny preset (seconds)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

import bench.evaluate.alignment as alignment
from bench.analysis import stats
from bench.analysis.compare import compare_records
from bench.analysis.verdicts import CHANGED, SAME
from bench.records.results import Metric, RunResult
from bench.tasks.preference import PreferenceData, PreferencePair
from tests.synthetic_records import make_set

# Four pairs whose chosen answers are longer (lower summed log-likelihood) than the rejected ones, as in
# the audit's SmolLM2 chat pairs: the policy's raw margins stay negative while DPO moves three of them up.
BASE_MARGINS = [-20.0, -30.0, -25.0, -10.0]  # log base(c) - log base(r)
TUNED_MARGINS = [-5.0, -12.0, -30.0, -10.0]  # log pi(c) - log pi(r): implicit +15, +18, -5, 0 (a tie)


def _pairs(count: int, conversational: bool = False) -> PreferenceData:
    def turns(text: str) -> str | list[dict[str, str]]:
        return [{"role": "assistant", "content": text}] if conversational else f" {text}"

    def prompt(i: int) -> str | list[dict[str, str]]:
        return [{"role": "user", "content": f"q{i}"}] if conversational else f"q{i} :"

    pairs = [PreferencePair(prompt(i), turns(f"right{i}"), turns(f"wrong{i}")) for i in range(count)]
    return PreferenceData(train=[], heldout=pairs, source="test")


def _metrics(monkeypatch, margins: list[float], base_margins: list[float], tuned: list[str], base: list[str]):
    """alignment_metrics with the model's log-probabilities and greedy answers made by hand."""
    data = _pairs(len(margins))
    keys = [pair.key for pair in data.heldout]
    monkeypatch.setattr(alignment, "pair_margins", lambda model, tokenizer, preference: list(margins))
    monkeypatch.setattr(alignment, "answer_length", lambda tokenizer, preference: 4)
    answers = dict(zip(keys, tuned))
    monkeypatch.setattr(alignment, "greedy_answers", lambda model, tokenizer, prompts, length: answers)
    before = sum(m > 0 for m in base_margins) / len(base_margins)
    scores = alignment.BaseScores(margins=list(base_margins), accuracy=before, answers=dict(zip(keys, base)))
    return alignment.alignment_metrics(None, None, data, scores, None)


def test_reward_accuracy_is_measured_against_the_reference_where_the_raw_ranking_sees_length(monkeypatch):
    """Before: only align.preference_accuracy, 0.0 before and after on longer chosen answers, however far
    DPO moved the margins (SmolLM2: +54.8 nats)."""
    names = [f"right{i}" for i in range(4)]
    metrics = _metrics(monkeypatch, TUNED_MARGINS, BASE_MARGINS, names, names)
    assert metrics["align.reward_accuracy"] == (pytest.approx((1 + 1 + 0 + 0.5) / 4), "acc", None)
    # the raw ranking keeps its meaning: no pair's chosen answer outranks its rejected one, before or after
    assert metrics["align.preference_accuracy"][0] == 0.0 == metrics["align.preference_accuracy_before"][0]
    assert metrics["align.reward_margin"][0] == pytest.approx((15 + 18 - 5 + 0) / 4)


def test_reward_accuracy_counts_ties_as_half(monkeypatch):
    assert alignment.reward_accuracy([0.0, 0.0, 0.0]) == 0.5  # an unchanged model
    assert alignment.reward_accuracy([3e-6, -2e-6]) == 0.5  # float noise of two passes is a tie
    assert alignment.reward_accuracy([2.0, -1.0, 0.5, 0.0]) == pytest.approx(2.5 / 4)
    names = [f"right{i}" for i in range(4)]
    unchanged = _metrics(monkeypatch, BASE_MARGINS, BASE_MARGINS, names, names)
    assert unchanged["align.reward_accuracy"][0] == 0.5 and unchanged["align.preference_accuracy"][0] == 0.0
    # a longer chosen answer (raw margin below 0) that training moved up: counted by the reference, not the raw
    moved = _metrics(monkeypatch, [-3.0], [-5.0], ["right0"], ["right0"])
    assert moved["align.reward_accuracy"][0] == 1.0 and moved["align.preference_accuracy"][0] == 0.0


def test_win_rate_is_missing_where_no_answer_matches_either_text(monkeypatch):
    """Before: 0.5 (every pair a tie) on free text, which the report starred as best."""
    free = ["I think so.", "Sure! Here is", "r :", ""]
    metrics = _metrics(monkeypatch, TUNED_MARGINS, BASE_MARGINS, free, list(reversed(free)))
    value, unit, reason = metrics["align.win_rate_vs_base"]
    assert value is None and unit == "rate" and "4 held-out pairs" in reason and "tie" in reason
    assert metrics["align.wins_vs_base"] == (0.0, "rate", None)
    assert metrics["align.exact_match"][0] == metrics["align.exact_match_before"][0] == 0.0


def test_both_right_is_told_from_both_wrong(monkeypatch):
    """Before: both 0.5 and nothing else recorded; an answer equal to the rejected text is judged (wrong)."""
    right, wrong = [f"right{i}" for i in range(4)], [f"wrong{i}" for i in range(4)]
    both_right = _metrics(monkeypatch, TUNED_MARGINS, BASE_MARGINS, right, right)
    both_wrong = _metrics(monkeypatch, TUNED_MARGINS, BASE_MARGINS, wrong, wrong)
    assert both_right["align.win_rate_vs_base"][0] == both_wrong["align.win_rate_vs_base"][0] == 0.5
    assert both_right["align.exact_match"][0] == both_right["align.exact_match_before"][0] == 1.0
    assert both_wrong["align.exact_match"][0] == both_wrong["align.exact_match_before"][0] == 0.0


def test_wins_losses_and_ties_follow_from_the_recorded_shares(monkeypatch):
    # pair 0 win, pair 1 loss, pair 2 both right, pair 3 both wrong (no answer matches: still decided by the rest)
    tuned, base = ["right0", "wrong1", "right2", "x"], ["wrong0", "right1", "right2", "y"]
    metrics = {name: value for name, (value, _, _) in _metrics(monkeypatch, [0.0] * 4, [0.0] * 4, tuned, base).items()}
    data = _pairs(4)
    keys = [pair.key for pair in data.heldout]
    judged = alignment.judge_answers(dict(zip(keys, tuned)), dict(zip(keys, base)), data)
    assert (judged.wins, judged.losses, judged.ties, judged.decided) == (1, 1, 2, 3)
    assert metrics["align.win_rate_vs_base"] == (1 + 2 / 2) / 4
    assert metrics["align.wins_vs_base"] == 0.25
    losses = metrics["align.exact_match_before"] - metrics["align.exact_match"] + metrics["align.wins_vs_base"]
    assert losses == pytest.approx(0.25)
    assert metrics["align.reward_accuracy"] == 0.5  # an unchanged model's margins: every pair a tie


def test_a_conversational_answer_is_judged_on_its_assistant_content():
    data = _pairs(2, conversational=True)
    tuned = {data.heldout[0].key: "right0", data.heldout[1].key: "nonsense"}
    base = {data.heldout[0].key: "wrong0", data.heldout[1].key: "nonsense"}
    metrics = alignment.answer_metrics(tuned, base, data)
    assert metrics["align.win_rate_vs_base"][0] == 0.75 and metrics["align.wins_vs_base"][0] == 0.5


def test_a_missing_win_rate_is_recorded_with_its_reason(monkeypatch):
    from bench.run.alignment import record_alignment

    free = ["a", "b", "c", "d"]
    recorded: dict[str, tuple] = {}
    run = SimpleNamespace(
        metric=lambda name, value, unit, higher: recorded.setdefault(name, (value, unit, higher, None)),
        missing=lambda names, reason: [recorded.setdefault(n, (None, u, h, reason)) for n, u, h in names],
        budget={},
    )
    metrics = _metrics(monkeypatch, TUNED_MARGINS, BASE_MARGINS, free, free)
    monkeypatch.setattr(alignment, "alignment_metrics", lambda *args: metrics)
    record_alignment(run, None, None, SimpleNamespace(truncation=None), None, None)
    value, unit, higher, reason = recorded["align.win_rate_vs_base"]
    assert value is None and higher and "judge cannot decide" in reason
    assert recorded["align.reward_accuracy"][:3] == (0.625, "acc", True)


def test_best_aligned_asks_the_reward_accuracy_first():
    import pandas as pd

    from bench.report.aggregate import QUESTIONS, resolve

    (question,) = [q for q in QUESTIONS if q.text == "Best aligned"]
    assert question.patterns[:2] == ("align.reward_accuracy", "align.preference_accuracy")
    both = pd.DataFrame({"metric": ["align.preference_accuracy", "align.reward_accuracy"], "n": [1, 1]})
    assert resolve(question.patterns, both, "cipher") == "align.reward_accuracy"
    old_records = pd.DataFrame({"metric": ["align.preference_accuracy", "align.reward_margin"], "n": [1, 1]})
    assert resolve(question.patterns, old_records, "cipher") == "align.preference_accuracy"


def _with_align(records: list[RunResult], values: dict[str, dict[int, float]]) -> list[RunResult]:
    """Records with align.* metrics per seed (every align.* metric is recorded higher-is-better)."""
    for record in records:
        for name, by_seed in values.items():
            if record.seed in by_seed:
                record.metrics[name] = Metric(value=by_seed[record.seed], unit="acc", higher_is_better=True)
    return records


BEFORE = {0: 0.5, 1: 7 / 15, 2: 8 / 15}  # resC: the base's preference accuracy on each seed's held-out pairs


def test_compare_treats_reward_accuracy_as_quality_and_the_seeded_base_scores_as_identities():
    for name in ("align.reward_accuracy", "align.wins_vs_base", "align.exact_match", "align.win_rate_vs_base"):
        assert stats.is_quality(name) and not stats.matches(name, stats.IDENTITY), name
    for name in ("align.preference_accuracy_before", "align.exact_match_before"):
        assert not stats.is_quality(name) and stats.matches(name, stats.PER_SEED_CONSTANT), name
    base = _with_align(make_set(labels=("lora",)), {"align.reward_accuracy": {0: 0.9, 1: 0.91, 2: 0.92}})
    worse = _with_align(make_set(labels=("lora",)), {"align.reward_accuracy": {0: 0.5, 1: 0.52, 2: 0.49}})
    result = compare_records(base, worse)
    (change,) = [c for c in result.changes if c.metric == "align.reward_accuracy"]
    assert change.gating and change.test not in ("", "identity") and change.verdict != SAME


def test_the_base_score_on_seeded_pairs_is_compared_seed_by_seed_and_not_called_a_constant():
    """Before: "per-suite constant", and compared as a set of values: the same values on other seeds
    were the same, and a candidate that ran fewer seeds had 'changed'."""
    metric = "align.preference_accuracy_before"
    base = _with_align(make_set(labels=("lora",)), {metric: BEFORE})

    def change_against(candidate: dict[int, float], seeds: tuple[int, ...] = (0, 1, 2)):
        cand = _with_align(make_set(seeds=seeds, labels=("lora",)), {metric: candidate})
        (found,) = [c for c in compare_records(base, cand).changes if c.metric == metric]
        return found

    same = change_against(BEFORE)
    assert same.verdict == SAME and not same.gating and same.test == "identity"
    assert "per-suite constant" not in same.note and "seed by seed" in same.note
    assert change_against({0: BEFORE[0], 1: BEFORE[1]}, seeds=(0, 1)).verdict == SAME
    swapped = change_against({0: BEFORE[1], 1: BEFORE[0], 2: BEFORE[2]})
    assert swapped.verdict == CHANGED and not swapped.gating and "seed 0, 1" in swapped.note
    # the task's base accuracy stays a per-suite constant
    (task,) = [c for c in compare_records(base, base).changes if c.metric == "accuracy_before.cipher"]
    assert task.verdict == SAME and "per-suite constant" in task.note


def test_tiny_dpo_records_the_reward_accuracy_and_a_judged_or_missing_win_rate(tmp_path: Path):
    """One DPO run on the tiny preset through the worker: the new metrics are recorded, higher-is-better."""
    from bench.plan import plan
    from bench.run.worker import run
    from bench.suite import parse_suite
    from tests.conftest import fast_suite

    suite = fast_suite(
        "align-metrics",
        [{"dpo": {"lora": {"r": 8, "alpha": 16}, "learning_rate": 1e-2, "beta": 0.1}}],
        preference={"from_task": True, "train_size": 400, "heldout_size": 40},
        budget={"steps": 30, "batch_size": 8, "seq_len": 16},
        execution={"threads": 1},
    )
    (spec,) = plan(parse_suite(suite))
    result = run(spec, "test-machine", tmp_path)
    assert result.status == "ok", result.reason
    metrics = RunResult.model_validate_json(result.model_dump_json()).metrics
    assert all(metrics[name].higher_is_better for name in metrics if name.startswith("align."))
    accuracy, margin = metrics["align.reward_accuracy"].value, metrics["align.reward_margin"].value
    assert accuracy is not None and margin is not None and margin > 0 and accuracy > 0.5
    win = metrics["align.win_rate_vs_base"]
    assert (win.value is None) == ("judge cannot decide" in (win.reason or ""))
    for name in ("align.wins_vs_base", "align.exact_match", "align.exact_match_before"):
        assert 0 <= metrics[name].value <= 1, name
