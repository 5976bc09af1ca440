"""Preference pairs as token ids, rendered exactly as TRL 1.16 renders them for training, so the
alignment metrics score the sequences the trainers saw (tests/test_preference_formats.py checks the ids
against DPOTrainer's and RewardTrainer's own datasets on the same rows).

- standard rows (text): the eos token's text is appended to each answer, then prompt + answer is
  tokenized as one text (DPOTrainer and RewardTrainer alike);
- conversational rows (messages): the tokenizer's chat template renders prompt + answer; DPO's prompt
  alone is rendered with the generation prompt;
- DPO: the completion starts where the prompt's ids and prompt + answer's ids part (the shorter of the
  two answers' common starts; TRL's `common_prefix_length`), not always after the prompt's ids.
"""

from __future__ import annotations

from typing import Any

from bench.tasks.preference import PreferencePair, Turns


def _ids(tokenizer: Any, value: Turns, **template: Any) -> list[int]:
    if isinstance(value, list):
        if not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"model {getattr(tokenizer, 'name_or_path', '') or '?'!r} has no chat template, and the preference "
                "pairs are conversational: give one with the suite's model.chat_template"
            )
        rendered = tokenizer.apply_chat_template(value, tokenize=True, return_dict=True, **template)
        return list(rendered["input_ids"])
    return list(tokenizer(text=value)["input_ids"])


def _with_eos(tokenizer: Any, text: str) -> str:
    return text if text.endswith(tokenizer.eos_token) else text + tokenizer.eos_token


def _common(ids: list[int], other: list[int]) -> int:
    length = 0
    for left, right in zip(ids, other):
        if left != right:
            break
        length += 1
    return length


def prompt_ids(tokenizer: Any, prompt: Turns) -> list[int]:
    """The prompt as a model continues it: text as it is, a conversation with the generation prompt."""
    return _ids(tokenizer, prompt, add_generation_prompt=True) if isinstance(prompt, list) else _ids(tokenizer, prompt)


def dpo_ids(tokenizer: Any, pair: PreferencePair) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) ids as DPOTrainer tokenizes the pair."""
    prompt, chosen, rejected = pair.prompt, pair.chosen, pair.rejected
    if not isinstance(chosen, list):
        chosen, rejected = _with_eos(tokenizer, chosen), _with_eos(tokenizer, rejected)
    start = prompt_ids(tokenizer, prompt)
    with_chosen, with_rejected = _ids(tokenizer, prompt + chosen), _ids(tokenizer, prompt + rejected)
    length = min(_common(start, with_chosen), _common(start, with_rejected))
    return start[:length], with_chosen[length:], with_rejected[length:]


def reward_ids(tokenizer: Any, prompt: Turns, completion: Turns) -> list[int]:
    """prompt + completion as RewardTrainer tokenizes one side of a pair (a whole sequence)."""
    if isinstance(completion, list):
        return _ids(tokenizer, prompt + completion)
    return _ids(tokenizer, _with_eos(tokenizer, prompt + completion))


def answer_turns(prompt: Turns, text: str) -> Turns:
    """A generated answer as the completion of `prompt`: an assistant message, or text after a space."""
    if isinstance(prompt, list):
        return [{"role": "assistant", "content": text}]
    return " " + text if text else ""


def answer_text(completion: Turns) -> str:
    """What a completion says: its text, or its assistant messages' content."""
    if isinstance(completion, list):
        return "\n".join(m["content"] for m in completion if m["role"] == "assistant").strip()
    return completion.strip()
