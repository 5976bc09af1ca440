"""Generative scores of prompt-learning adapters come from PEFT's `generate` (its virtual tokens are added
inside it). Two ways it went wrong, each measured on SmolLM2-135M-Instruct and tiny-llama:
- PEFT 0.21.2 with transformers 5.25: `generate` lost the prompt after the first tokens (prompt tuning,
  "1212012012012222" where forward passes without cache decode "12 + 7 = 9"); smollm2-instruct's prompt-tuning
  run scored chat-sums 0.06 with it, 0.69 with PEFT 0.22 in batches, 0.81 (the base model's) one row at a time.
- PEFT 0.22, prompt tuning, a left-padded batch (as lm-eval batches generation): the virtual tokens come before
  the padding, so a padded row's answer depended on the rows batched with it. bench's generator now hands
  PEFT one row at a time (bench/evaluate/generation.py GreedyGenerator._rows_alone).
These tests hold the installed PEFT to uncached greedy decoding, and bench's strings to batch-size-1 strings."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from bench.evaluate.generation import GreedyGenerator
from bench.evaluate.generation_pool import PooledGenerator
from bench.models.load import load_model
from bench.strategies import STRATEGIES, PrepareContext
from bench.suite import Budget, ModelSpec
from tests.test_generation import _contexts, _requests

NEW_TOKENS = 8


def _prepared(name: str) -> tuple[Any, Any]:
    """tiny-llama with `name`'s adapter, its virtual tokens moved far from their start so that they decide
    what is generated (a trained prompt does)."""
    torch.manual_seed(0)
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda m: None)
    strategy = STRATEGIES.get(name)
    budget = Budget(steps=1, batch_size=2, seq_len=32)
    model = strategy.prepare(loaded.model, strategy.Options(), PrepareContext(loaded.tokenizer, budget, 0, "cpu"))
    with torch.no_grad():
        for parameter in model.prompt_encoder.parameters():
            parameter.normal_(0, 1.0)
    return model.eval(), loaded.tokenizer


def _uncached_greedy(model: Any, ids: torch.Tensor) -> list[int]:
    """Greedy decoding of one unpadded row by a whole forward pass per token (the virtual tokens in each)."""
    start = ids.shape[1]
    for _ in range(NEW_TOKENS):
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(-1, keepdim=True)], 1)
    return ids[0, start:].tolist()


def _until_eos(tokens: list[int], eos: int | None) -> list[int]:
    return tokens[: tokens.index(eos) + 1] if eos in tokens else tokens


@pytest.mark.parametrize("name", ["prompt", "prefix"])
def test_peft_generate_decodes_what_the_adapted_forward_pass_decodes(name: str):
    model, tokenizer = _prepared(name)
    eos, decoded = tokenizer.eos_token_id, []
    with torch.no_grad():
        for text in ("code a =", "code q = x code b =", "code z"):
            ids = tokenizer([text], return_tensors="pt")["input_ids"]
            generated = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                       max_new_tokens=NEW_TOKENS)  # fmt: skip
            decoded.append(
                (_until_eos(generated[0, ids.shape[1] :].tolist(), eos), _until_eos(_uncached_greedy(model, ids), eos))
            )
    assert all(got == expected for got, expected in decoded), decoded
    assert len({tuple(expected) for _, expected in decoded}) > 1  # the prompts decode differently


@pytest.mark.parametrize("name", ["prompt", "prefix"])
@pytest.mark.parametrize("generator", [GreedyGenerator, PooledGenerator])
def test_a_prompt_learning_answer_does_not_depend_on_the_rows_batched_with_it(name: str, generator: type):
    model, tokenizer = _prepared(name)
    requests = _requests(_contexts(), [], NEW_TOKENS)
    alone = generator(pretrained=model, tokenizer=tokenizer, batch_size=1).generate_until(requests, True)
    batched = generator(pretrained=model, tokenizer=tokenizer, batch_size=16).generate_until(requests, True)
    assert batched == alone
    assert len(set(alone)) > 5  # the items do differ
