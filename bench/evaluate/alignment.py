"""Alignment metrics on held-out preference pairs (definitions and caveats: docs/alignment.md).

Every metric here is higher-is-better (bench/run/alignment.py records them so).

- align.reward_accuracy: share of pairs whose implicit reward margin against the base model is above 0,
  (log pi(c) - log base(c)) > (log pi(r) - log base(r)), as TRL's rewards/accuracies; a tie (margins
  within TIE_NATS, as for an unchanged model) counts one half, so an unchanged model scores 0.5.
- align.preference_accuracy: the raw ranking, with no reference: share of pairs where the policy gives
  the chosen completion a higher log-likelihood than the rejected one (completion tokens + eos, or the
  chat template's turn, given the prompt), on the token ids DPOTrainer trains on
  (bench/evaluate/rendering.py; every TRL format). Length-sensitive: a summed log-likelihood falls with
  every token, so where chosen answers are longer it stays near 0 however well DPO trained (a SmolLM2
  DPO run: reward margin +54.8 nats, this 0.0 before and after). align.preference_accuracy_before: the
  same for the base model.
- align.reward_margin: DPO's implicit reward margin with beta = 1 and the base model as reference:
  mean of (log pi(c) - log pi(r)) - (log base(c) - log base(r)), in nats. 0 for an unchanged model.
- align.mean_reward: mean score of the trained reward model on the policy's greedy answers to the
  held-out prompts (only where a reward model was trained: rlhf); align.mean_reward_before: the same
  for the base model's answers, under the same reward model.
- align.reward_model_accuracy: share of held-out pairs the reward model ranks chosen above rejected.
- Greedy answers of the tuned and the base model on the held-out prompts, judged by the ground truth
  (an answer is right when it equals the pair's chosen completion): align.exact_match and
  align.exact_match_before, the share of pairs each model answers right; align.wins_vs_base, the share
  only the tuned model answers right; align.win_rate_vs_base, wins + half the ties (both right or both
  wrong). Losses = exact_match_before - exact_match + wins_vs_base; ties = 1 - wins - losses. Where no
  answer of either model equals either answer of any pair (free text), the judge decided nothing: the
  win rate is missing with that reason, not 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.evaluate.rendering import answer_text, answer_turns, dpo_ids, prompt_ids, reward_ids
from bench.tasks.preference import PreferenceData, Turns, prompt_key

BATCH = 32
# Implicit reward margins (nats) this close to 0 are ties: summed log-likelihoods in float32 of an unchanged
# model can differ in the last bits between two passes; a trained model moves them by far more
TIE_NATS = 1e-4


@dataclass
class BaseScores:
    """What is measured on the base model before training, to compare the tuned model against."""

    margins: list[float]  # log base(chosen) - log base(rejected), per held-out pair
    accuracy: float
    answers: dict[str, str]  # held-out prompt's key (prompt_key) -> greedy answer


def _batches(items: list, size: int = BATCH):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def sequence_logps(model: Any, rows: list[tuple[list[int], int]], pad: int) -> list[float]:
    """Per (ids, prompt length): the sum of log p(ids after the prompt | what precedes them)."""
    import torch

    model.eval()
    sums: list[float] = []
    for batch in _batches(rows):
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in batch], device=model.device)
        mask = torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in batch], device=model.device)
        with torch.no_grad():
            logits = model(input_ids=input_ids, attention_mask=mask).logits.float()
        logps = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, input_ids[:, 1:, None]).squeeze(-1)
        for index, (ids, prompt_length) in enumerate(batch):
            start = max(prompt_length, 1) - 1  # a sequence's first token has no prediction
            sums.append(float(logps[index, start : len(ids) - 1].sum()))
    return sums


def pair_margins(model: Any, tokenizer: Any, preference: PreferenceData) -> list[float]:
    """log pi(chosen) - log pi(rejected) per held-out pair, on the ids DPOTrainer trains on."""
    rendered = [dpo_ids(tokenizer, pair) for pair in preference.heldout]
    pad = tokenizer.pad_token_id
    chosen = sequence_logps(model, [(prompt + answer, len(prompt)) for prompt, answer, _ in rendered], pad)
    rejected = sequence_logps(model, [(prompt + answer, len(prompt)) for prompt, _, answer in rendered], pad)
    return [c - r for c, r in zip(chosen, rejected)]


def answer_length(tokenizer: Any, preference: PreferenceData) -> int:
    """Generation length: the longest held-out chosen completion, in tokens (with its eos or end of turn)."""
    return max(len(dpo_ids(tokenizer, pair)[1]) for pair in preference.heldout)


def greedy_answers(model: Any, tokenizer: Any, prompts: list[Turns], max_new_tokens: int) -> dict[str, str]:
    """Prompt key -> the greedy answer's text; prompts rendered as the model is asked them (left-padded)."""
    import torch

    model.eval()
    pad = tokenizer.pad_token_id
    answers: dict[str, str] = {}
    for batch in _batches(prompts):
        rows = [prompt_ids(tokenizer, prompt) for prompt in batch]
        width = max(len(ids) for ids in rows)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in rows], device=model.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in rows], device=model.device)
        with torch.no_grad():
            output = model.generate(
                input_ids=input_ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                pad_token_id=pad,
            )  # fmt: skip
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        answers.update(zip(map(prompt_key, batch), (text.strip() for text in texts)))
    return answers


def score_ids(reward_model: Any, tokenizer: Any, rows: list[list[int]]) -> list[float]:
    """The reward model's score of each sequence of ids (it reads the last non-padding token)."""
    import torch

    pad = tokenizer.pad_token_id
    scores: list[float] = []
    for batch in _batches(rows):
        width = max(len(row) for row in batch)
        input_ids = torch.tensor([row + [pad] * (width - len(row)) for row in batch], device=reward_model.device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch], device=reward_model.device)
        with torch.no_grad():
            scores.extend(float(v) for v in reward_model(input_ids=input_ids, attention_mask=mask).logits[:, 0])
    return scores


def score_sequences(reward_model: Any, tokenizer: Any, prompts: list[str], completions: list[list[int]]) -> list[float]:
    """The reward model's score of prompt tokens + completion tokens + one eos, as RewardTrainer saw
    its pairs. Works on token ids, so a completion is scored exactly as generated (joining decoded
    text can merge or split words: `"code d =" + "x"` is not `"code d = x"`)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    rows = [
        prompt_ids(tokenizer, prompt) + [t for t in completion if t not in (eos, pad)] + [eos]
        for prompt, completion in zip(prompts, completions)
    ]
    return score_ids(reward_model, tokenizer, rows)


def reward_scores(reward_model: Any, tokenizer: Any, prompts: list[Turns], completions: list[Turns]) -> list[float]:
    """Score completions rendered with their prompts as RewardTrainer renders a pair's side."""
    rows = [reward_ids(tokenizer, prompt, completion) for prompt, completion in zip(prompts, completions)]
    return score_ids(reward_model, tokenizer, rows)


def measure_base(model: Any, tokenizer: Any, preference: PreferenceData) -> BaseScores:
    margins = pair_margins(model, tokenizer, preference)
    answers = greedy_answers(model, tokenizer, preference.prompts(), answer_length(tokenizer, preference))
    return BaseScores(margins=margins, accuracy=sum(m > 0 for m in margins) / len(margins), answers=answers)


def reward_accuracy(implicit: list[float]) -> float:
    """Share of pairs whose implicit reward margin (log pi(c) - log base(c)) - (log pi(r) - log base(r))
    is above 0, as TRL's rewards/accuracies. Ties (|margin| <= TIE_NATS, e.g. an unchanged model) count
    as half, so an unchanged model scores 0.5 (TRL counts them as 0)."""
    return sum(1.0 if m > TIE_NATS else 0.0 if m < -TIE_NATS else 0.5 for m in implicit) / len(implicit)


@dataclass(frozen=True)
class Judged:
    """Greedy answers of the tuned and the base model, judged pair by pair against the chosen text."""

    pairs: int
    wins: int  # only the tuned answer equals chosen
    losses: int  # only the base's does
    tuned_right: int
    base_right: int
    decided: int  # pairs where some answer (tuned or base) equals the chosen or the rejected text

    @property
    def ties(self) -> int:
        """Both right or both wrong."""
        return self.pairs - self.wins - self.losses


def judge_answers(tuned: dict[str, str], base: dict[str, str], preference: PreferenceData) -> Judged:
    """Per held-out pair: is each model's greedy answer the chosen text, and did either give either answer."""
    wins = losses = tuned_right = base_right = decided = 0
    for pair in preference.heldout:
        chosen, rejected = answer_text(pair.chosen), answer_text(pair.rejected)
        tuned_answer, base_answer = tuned[pair.key], base[pair.key]
        tuned_ok, base_ok = tuned_answer == chosen, base_answer == chosen
        wins, losses = wins + (tuned_ok and not base_ok), losses + (base_ok and not tuned_ok)
        tuned_right, base_right = tuned_right + tuned_ok, base_right + base_ok
        decided += bool({tuned_answer, base_answer} & {chosen, rejected})
    return Judged(len(preference.heldout), wins, losses, tuned_right, base_right, decided)


def win_rate(judged: Judged) -> float | None:
    """Wins + half the ties over the held-out pairs; None where the judge decided no pair (Judged.decided)."""
    return (judged.wins + judged.ties / 2) / judged.pairs if judged.decided else None


def answer_metrics(
    tuned: dict[str, str], base: dict[str, str], preference: PreferenceData
) -> dict[str, tuple[float | None, str, str | None]]:
    """The greedy answers' metrics (module docstring): each model's exact matches, wins and the win rate."""
    judged = judge_answers(tuned, base, preference)
    n = judged.pairs
    undecided = (
        f"no greedy answer of the tuned or the base model equals the chosen or the rejected text of any of the "
        f"{n} held-out pairs (free-form answers?): every pair is a tie the judge cannot decide, not a 0.5"
    )
    return {
        "align.win_rate_vs_base": (win_rate(judged), "rate", None if judged.decided else undecided),
        "align.wins_vs_base": (judged.wins / n, "rate", None),
        "align.exact_match": (judged.tuned_right / n, "acc", None),
        "align.exact_match_before": (judged.base_right / n, "acc", None),
    }


def alignment_metrics(
    model: Any, tokenizer: Any, preference: PreferenceData, base: BaseScores, reward_model: Any | None
) -> dict[str, tuple[float | None, str, str | None]]:
    """name -> (value, unit, reason when missing); every metric here is higher-is-better."""
    margins = pair_margins(model, tokenizer, preference)
    answers = greedy_answers(model, tokenizer, preference.prompts(), answer_length(tokenizer, preference))
    implicit = [after - before for after, before in zip(margins, base.margins)]
    metrics: dict[str, tuple[float | None, str, str | None]] = {
        "align.reward_accuracy": (reward_accuracy(implicit), "acc", None),
        "align.preference_accuracy": (sum(m > 0 for m in margins) / len(margins), "acc", None),
        "align.preference_accuracy_before": (base.accuracy, "acc", None),
        "align.reward_margin": (sum(implicit) / len(implicit), "nats", None),
        **answer_metrics(answers, base.answers, preference),
    }
    if reward_model is None:
        reason = "no reward model in this run (only rlhf trains one)"
        missing = (("mean_reward", "reward"), ("mean_reward_before", "reward"), ("reward_model_accuracy", "acc"))
        for name, unit in missing:
            metrics[f"align.{name}"] = (None, unit, reason)
        return metrics
    prompts = preference.prompts()
    after = reward_scores(reward_model, tokenizer, prompts, [answer_turns(p, answers[prompt_key(p)]) for p in prompts])
    base_answers = [answer_turns(p, base.answers[prompt_key(p)]) for p in prompts]
    before = reward_scores(reward_model, tokenizer, prompts, base_answers)
    pairs = preference.heldout
    chosen = reward_scores(reward_model, tokenizer, [p.prompt for p in pairs], [p.chosen for p in pairs])
    rejected = reward_scores(reward_model, tokenizer, [p.prompt for p in pairs], [p.rejected for p in pairs])
    metrics["align.mean_reward"] = (sum(after) / len(after), "reward", None)
    metrics["align.mean_reward_before"] = (sum(before) / len(before), "reward", None)
    metrics["align.reward_model_accuracy"] = (sum(c > r for c, r in zip(chosen, rejected)) / len(pairs), "acc", None)
    return metrics
