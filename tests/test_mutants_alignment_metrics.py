"""Mutation audit of bench/evaluate/alignment.py (the rest of bench/evaluate/ in tests/test_mutants_evaluate.py):
each test here fails on a mutant that the rest of the suite let through (which tokens a sequence's log-likelihood
sums, what a greedy answer is, when a margin is a tie or a success, whose answers the reward model scores).
Hand-made models, tokenizers and margins: no training."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

import bench.evaluate.alignment as alignment
from bench.evaluate.rendering import answer_text
from bench.tasks.preference import PreferenceData, PreferencePair


class _Bigram:
    """A model whose next-token logits depend on the current token alone (a fixed 6 x 6 table)."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.table = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))

    def eval(self):
        return self

    def __call__(self, input_ids, attention_mask):
        return SimpleNamespace(logits=self.table[input_ids])

    def logp(self, previous: int, token: int) -> float:
        return float(torch.log_softmax(self.table[previous], dim=-1)[token])


def test_a_sequence_is_scored_on_its_tokens_after_the_prompt_and_never_on_padding():
    """alignment.sequence_logps: the sum of log p(token | before) over the tokens after the prompt (from the
    second token where the prompt is empty), in a batch where shorter rows are padded."""
    model = _Bigram()
    rows = [([1, 2, 3, 4], 2), ([5, 1], 0), ([2, 3, 3], 1)]
    got = alignment.sequence_logps(model, rows, pad=0)
    expected = [
        model.logp(2, 3) + model.logp(3, 4),
        model.logp(5, 1),
        model.logp(2, 3) + model.logp(3, 3),
    ]
    assert got == pytest.approx(expected, abs=1e-5)
    # batches of BATCH (32) rows: a lone row, and the 33rd row, are scored too
    assert alignment.sequence_logps(model, [([5, 1], 0)], pad=0) == pytest.approx([model.logp(5, 1)], abs=1e-5)
    assert len(alignment.sequence_logps(model, [([5, 1], 0)] * 33, pad=0)) == 33


class _Vocabulary:
    """A tokenizer of one id a word (0 is padding), each new word the next id; decodes as " word" a token."""

    pad_token_id = 0

    def __init__(self) -> None:
        self.words = ["<pad>"]

    def __call__(self, text: str) -> dict[str, list[int]]:
        self.words += [word for word in dict.fromkeys(text.split()) if word not in self.words]
        return {"input_ids": [self.words.index(word) for word in text.split()]}

    def batch_decode(self, rows, skip_special_tokens: bool) -> list[str]:
        return ["".join(f" {self.words[t]}" for t in row.tolist() if t or not skip_special_tokens) for row in rows]


class _Echo:
    """A model whose greedy answer repeats the last token of its input (what a left-padded row ends with)."""

    device = torch.device("cpu")

    def eval(self):
        return self

    def generate(self, input_ids, attention_mask, max_new_tokens, do_sample, pad_token_id):
        return torch.cat([input_ids, input_ids[:, -1:].repeat(1, max_new_tokens)], dim=1)


def test_greedy_answers_are_the_generated_tokens_alone_stripped_for_each_prompt():
    """alignment.greedy_answers: prompts of different lengths are padded on the left (each row ends with its
    prompt), only the new tokens are decoded, and the text is stripped before it is judged."""
    answers = alignment.greedy_answers(_Echo(), _Vocabulary(), ["copy a b", "say c"], 2)
    assert answers == {"copy a b": "b b", "say c": "c c"}


def _three_pairs(monkeypatch, margins: list[float], tuned: list[str]) -> PreferenceData:
    """Three held-out pairs whose chosen text is longer, shorter and as long as the rejected one; the
    policy's margins and greedy answers made by hand."""
    sides = [(" yes", " no"), (" ok", " fine"), (" same", " four")]
    pairs = [PreferencePair(f"q{number} :", chosen, rejected) for number, (chosen, rejected) in enumerate(sides)]
    data = PreferenceData(train=[], heldout=pairs, source="test")
    monkeypatch.setattr(alignment, "pair_margins", lambda model, tokenizer, preference: list(margins))
    monkeypatch.setattr(alignment, "answer_length", lambda tokenizer, preference: 4)
    answers = {pair.key: answer for pair, answer in zip(pairs, tuned)}
    monkeypatch.setattr(alignment, "greedy_answers", lambda model, tokenizer, prompts, length: answers)
    return data


def test_a_zero_margin_is_not_a_preferred_pair(monkeypatch):
    """alignment.measure_base and align.preference_accuracy: a pair counts only where chosen is strictly more
    likely than rejected; a margin of 0 (both equally likely) is not a success."""
    data = _three_pairs(monkeypatch, [0.0, 2.0, -1.0], ["x", "y", "z"])
    base = alignment.measure_base(None, None, data)
    assert base.accuracy == pytest.approx(1 / 3) and base.margins == [0.0, 2.0, -1.0]
    metrics = alignment.alignment_metrics(None, None, data, base, None)
    assert metrics["align.preference_accuracy"] == (pytest.approx(1 / 3), "acc", None)
    # without a reward model (every strategy but rlhf) its three metrics are missing, with the reason
    reason = "no reward model in this run (only rlhf trains one)"
    assert metrics["align.mean_reward"] == (None, "reward", reason) == metrics["align.mean_reward_before"]
    assert metrics["align.reward_model_accuracy"] == (None, "acc", reason)


def test_the_reward_model_scores_each_models_own_answers_and_a_tie_is_not_ranked(monkeypatch):
    """alignment.alignment_metrics with a reward model (rlhf): align.mean_reward scores the tuned model's
    answers, align.mean_reward_before the base model's, and align.reward_model_accuracy counts the pairs whose
    chosen side scores strictly higher. The reward model here scores an answer by its length in characters."""
    data = _three_pairs(monkeypatch, [1.0, 1.0, 1.0], ["right", "a longer one", "x"])

    def by_length(reward_model, tokenizer, prompts, completions):
        return [float(len(answer_text(completion))) for completion in completions]

    monkeypatch.setattr(alignment, "reward_scores", by_length)
    base = alignment.BaseScores([1.0] * 3, 1.0, {pair.key: "ab" for pair in data.heldout})
    metrics = alignment.alignment_metrics(None, None, data, base, reward_model=object())
    assert metrics["align.mean_reward"] == (pytest.approx((5 + 12 + 1) / 3), "reward", None)
    assert metrics["align.mean_reward_before"] == (2.0, "reward", None)
    assert metrics["align.reward_model_accuracy"] == (pytest.approx(1 / 3), "acc", None)  # yes > no only


def test_a_generated_answer_is_scored_with_one_end_of_sequence_token(monkeypatch):
    """alignment.score_sequences (rlhf's reward during training): an answer that stopped at its own eos, padded
    after it, is scored as prompt + answer + one eos, as RewardTrainer saw its pairs."""
    rows: list[list[int]] = []

    def score_ids(reward_model, tokenizer, batch):
        rows.extend(batch)
        return [0.0] * len(batch)

    monkeypatch.setattr(alignment, "score_ids", score_ids)
    tokenizer = _Vocabulary()
    tokenizer.eos_token_id = 9
    alignment.score_sequences(None, tokenizer, ["copy a b"], [[2, 9, 0, 0]])
    assert rows == [[1, 2, 3, 2, 9]]


def test_a_margin_within_the_tie_nats_is_a_tie_and_one_beyond_is_not():
    """alignment.TIE_NATS: float noise of two passes (|margin| <= 1e-4 nats) counts one half, more counts whole."""
    assert alignment.reward_accuracy([3e-6]) == 0.5 and alignment.reward_accuracy([-5e-5]) == 0.5
    assert alignment.reward_accuracy([2e-4]) == 1.0 and alignment.reward_accuracy([-2e-4]) == 0.0


def test_answers_are_generated_as_long_as_the_longest_chosen_answer():
    """alignment.answer_length: the longest held-out chosen completion (with its eos), not the shortest."""
    tokenizer = _Vocabulary()
    tokenizer.eos_token = "</s>"
    sides = [(" yes", " no"), (" a b c", " d"), (" e f", " g")]
    pairs = [PreferencePair(f"q{number} :", chosen, rejected) for number, (chosen, rejected) in enumerate(sides)]
    assert alignment.answer_length(tokenizer, PreferenceData(train=[], heldout=pairs, source="test")) == 3


def test_each_models_exact_matches_are_its_own():
    """alignment.answer_metrics: align.exact_match counts the tuned model's right answers, align.exact_match_before
    the base model's (2 and 1 of 3 here)."""
    pairs = [PreferencePair(f"q{number} :", f" right{number}", f" wrong{number}") for number in range(3)]
    data = PreferenceData(train=[], heldout=pairs, source="test")
    tuned = dict(zip([pair.key for pair in pairs], ["right0", "right1", "wrong2"]))
    base = dict(zip([pair.key for pair in pairs], ["right0", "wrong1", "wrong2"]))
    metrics = alignment.answer_metrics(tuned, base, data)
    assert metrics["align.exact_match"][0] == pytest.approx(2 / 3)
    assert metrics["align.exact_match_before"][0] == pytest.approx(1 / 3)
    assert metrics["align.win_rate_vs_base"][0] == pytest.approx((1 + 2 / 2) / 3)
