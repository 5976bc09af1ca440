"""The fast log-likelihood path scores exactly what lm-eval's own HFLM path scores."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.evaluate.accuracy import evaluate_accuracy
from bench.evaluate.scorer import ContinuationScorer, supported
from bench.models.load import load_model
from bench.spec import Budget, ModelSpec, TaskSpec
from bench.strategies import STRATEGIES, PrepareContext
from bench.tasks import load_task


@pytest.fixture(scope="module")
def tasks():
    return [load_task(TaskSpec(name=name, eval_limit=60)) for name in ("cipher", "copy", "next-letter")]


def _model(strategy: str | None):
    torch.manual_seed(0)
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)
    if strategy is None:
        return loaded.model, loaded.tokenizer
    chosen = STRATEGIES.get(strategy)
    prepared = chosen.prepare(loaded.model, chosen.Options(), PrepareContext(loaded.tokenizer, Budget(), 0, "cpu"))
    for parameter in prepared.parameters():  # move the adapter off its identity initialisation
        if parameter.requires_grad:
            parameter.data += 0.05 * torch.randn_like(parameter)
    return prepared, loaded.tokenizer


@pytest.mark.parametrize("strategy", [None, "lora", "prompt", "prefix", "ia3"])
def test_fast_path_gives_identical_per_item_scores(strategy, tasks, tmp_path: Path):
    model, tokenizer = _model(strategy)
    assert supported(model) is None
    slow = evaluate_accuracy(model, tokenizer, tasks, tmp_path / "slow", 16, fast=False)
    fast = evaluate_accuracy(model, tokenizer, tasks, tmp_path / "fast", 16, fast=True)
    for name in slow:
        assert fast[name].correct == slow[name].correct and fast[name].acc == slow[name].acc, name


def test_fast_path_log_likelihoods_match_lm_eval(tasks):
    """Request by request, the same log-likelihood and greedy flag (batch order does not matter)."""
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = _model("lora")
    requests = []
    for item in tasks[0].eval[:20]:
        context = tokenizer(item.context)["input_ids"]
        for choice in item.choices:
            requests.append(((item.context, " " + choice), context, tokenizer(" " + choice)["input_ids"]))
    reference = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=7)._loglikelihood_tokens(requests)
    ours = ContinuationScorer(pretrained=model, tokenizer=tokenizer, batch_size=5)._loglikelihood_tokens(requests)
    for (expected, expected_greedy), (got, greedy) in zip(reference, ours, strict=True):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-5) and greedy == expected_greedy
    assert model.get_output_embeddings().forward.__self__ is model.get_output_embeddings()  # head restored


def _random_requests(seed: int, vocab: int, max_length: int) -> list:
    """Items of 2-4 choices of 1-6 tokens after contexts of 1-40 tokens, some choices repeated, and
    two items long enough that lm-eval truncates them (those cannot be packed)."""
    generator = torch.Generator().manual_seed(seed)

    def tokens(count: int) -> list[int]:
        return torch.randint(3, vocab, (count,), generator=generator).tolist()

    requests = []
    for item in range(24):
        long = item < 2  # context and choice over max_length + 1 tokens: lm-eval cuts the front
        context = tokens(max_length - 2 if long else int(torch.randint(1, 41, (1,), generator=generator)))
        lengths = [5 if long else int(torch.randint(1, 7, (1,), generator=generator)) for _ in range(2 + item % 3)]
        choices = [tokens(length) for length in lengths]
        if item % 5 == 0:
            choices.append(list(choices[0]))  # the same choice twice: one branch, scored twice
        requests += [((f"item {item}", f"choice {number}"), context, choice) for number, choice in enumerate(choices)]
    return requests


@pytest.mark.parametrize("strategy", [None, "lora"])
def test_packed_choices_score_as_lm_eval_does(strategy):
    """Choices packed behind their shared context (4D mask, restarted positions) give lm-eval's
    log-likelihoods and greedy flags; truncated items fall back to one row per request."""
    from lm_eval.models.huggingface import HFLM

    model, tokenizer = _model(strategy)
    reference_model = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
    requests = _random_requests(1, model.config.vocab_size, reference_model.max_length)
    reference = reference_model._loglikelihood_tokens(requests)
    scorer = ContinuationScorer(pretrained=model, tokenizer=tokenizer, batch_size=8)
    rows = scorer._rows(requests)
    assert sum(bool(row.branches) for row in rows) >= 20  # packing happened...
    assert len(rows) < len(requests) // 2  # ...and saved rows
    assert sum(not row.branches and len(row.prefix) == reference_model.max_length for row in rows) == 5
    ours = scorer._loglikelihood_tokens(requests)
    for (expected, expected_greedy), (got, greedy) in zip(reference, ours, strict=True):
        assert got == pytest.approx(expected, rel=1e-4, abs=1e-4) and greedy == expected_greedy


def test_prompt_learning_models_are_not_packed():
    model, tokenizer = _model("prompt")
    scorer = ContinuationScorer(pretrained=model, tokenizer=tokenizer, batch_size=8)
    requests = _random_requests(2, model.config.vocab_size, scorer.max_length)
    assert not any(row.branches for row in scorer._rows(requests))


def test_batches_pad_each_row_by_at_most_a_tenth_and_hold_every_row_once():
    from bench.evaluate.scorer import _Row

    lengths = [200, 195, 181, 180, 179, 150, 40, 39, 38, 37, 36, 35, 34, 5, 5, 1]
    rows = [_Row(prefix=list(range(length))) for length in lengths[::-1]]  # any order in
    scorer = ContinuationScorer.__new__(ContinuationScorer)  # _batches reads only `padding`
    batches = list(scorer._batches(rows, size=4))
    assert [[len(row.tokens) for row in batch] for batch in batches] == [
        [200, 195, 181, 180],
        [179],
        [150],
        [40, 39, 38, 37],
        [36, 35, 34],
        [5, 5],
        [1],
    ]
    for batch in batches:
        assert all(len(row.tokens) >= 0.9 * len(batch[0].tokens) for row in batch)
    scorer.padding = None  # fixed batches of `size`, longest first
    assert [len(batch) for batch in scorer._batches(rows, size=4)] == [4, 4, 4, 4]
