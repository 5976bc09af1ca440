"""Alignment metrics on held-out preference pairs (definitions and caveats: docs/alignment.md).

- align.preference_accuracy: share of pairs where the policy gives the chosen completion a higher
  log-likelihood than the rejected one (completion tokens + eos, or the chat template's turn, given
  the prompt), on the token ids DPOTrainer trains on (bench/evaluate/rendering.py; every TRL format).
- align.reward_margin: DPO's implicit reward margin with beta = 1 and the base model as reference:
  mean of (log pi(c) - log pi(r)) - (log base(c) - log base(r)), in nats. 0 for an unchanged model.
- align.mean_reward: mean score of the trained reward model on the policy's greedy answers to the
  held-out prompts (only where a reward model was trained: rlhf); align.mean_reward_before: the same
  for the base model's answers, under the same reward model.
- align.reward_model_accuracy: share of held-out pairs the reward model ranks chosen above rejected.
- align.win_rate_vs_base: greedy answers of the tuned and the base model on the held-out prompts,
  judged by the ground truth (an answer wins when it equals the pair's chosen completion and the
  other does not; a tie counts one half). The same judge for every strategy, so rates compare.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bench.evaluate.rendering import answer_text, answer_turns, dpo_ids, prompt_ids, reward_ids
from bench.tasks.preference import PreferenceData, Turns, prompt_key

BATCH = 32


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


def win_rate(tuned: dict[str, str], base: dict[str, str], preference: PreferenceData) -> float:
    """Per held-out pair: 1 if only the tuned answer equals chosen, 0 if only the base's, else 1/2."""
    total = 0.0
    for pair in preference.heldout:
        reference = answer_text(pair.chosen)
        tuned_right, base_right = tuned[pair.key] == reference, base[pair.key] == reference
        total += 0.5 if tuned_right == base_right else float(tuned_right)
    return total / len(preference.heldout)


def alignment_metrics(
    model: Any, tokenizer: Any, preference: PreferenceData, base: BaseScores, reward_model: Any | None
) -> dict[str, tuple[float | None, str, str | None]]:
    """name -> (value, unit, reason when missing); every metric here is higher-is-better."""
    margins = pair_margins(model, tokenizer, preference)
    answers = greedy_answers(model, tokenizer, preference.prompts(), answer_length(tokenizer, preference))
    implicit = [after - before for after, before in zip(margins, base.margins)]
    metrics: dict[str, tuple[float | None, str, str | None]] = {
        "align.preference_accuracy": (sum(m > 0 for m in margins) / len(margins), "acc", None),
        "align.preference_accuracy_before": (base.accuracy, "acc", None),
        "align.reward_margin": (sum(implicit) / len(implicit), "nats", None),
        "align.win_rate_vs_base": (win_rate(answers, base.answers, preference), "rate", None),
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
