"""Log-likelihood scoring that computes the output head only where a continuation is scored.

lm-eval's HFLM turns every position of every request into full-vocabulary logits and a
log-softmax over them, then keeps the few continuation positions. For multiple-choice items the
context is long and the continuation a word or two, so almost all of that work (on SmolLM2,
49,152 logits per position) is thrown away. `ContinuationScorer` is HFLM with one method
replaced: requests are sorted by length (longest first, so a batch pads little); identical
inputs (the choices of one item when each is one token) run once; the model runs with its output
head bypassed; the hidden states of the continuation positions are gathered, and the head and
log-softmax run on those alone. The arithmetic per scored position is the same; scores are
tested to be identical to lm-eval's own path (tests/test_scorer.py).

Hand-written because lm-eval has no hook for it (its TODO says as much); everything else (task
loading, request building, tokenisation, metrics) stays lm-eval's.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any

from lm_eval.models.huggingface import HFLM

Request = tuple[tuple[str, str], list[int], list[int]]


def supported(model: Any) -> str | None:
    """Why the fast path cannot score this model (None: it can)."""
    config = getattr(model, "config", None)
    if getattr(config, "final_logit_softcapping", None):
        return "the model caps its logits after the head"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if head is None:
        return "no output head to bypass"
    return None


@contextmanager
def _head_bypassed(model: Any):
    """The model's output head passes hidden states through; yields the real head."""
    head = model.get_output_embeddings()
    real = head.forward
    head.forward = lambda hidden, *args, **kwargs: hidden
    try:
        yield real
    finally:
        del head.forward  # the class's own forward again


class ContinuationScorer(HFLM):
    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        import torch

        order = sorted(range(len(requests)), key=lambda i: -(len(requests[i][1]) + len(requests[i][2])))
        size = self.batch_size if isinstance(self.batch_size, int) else int(override_bs or 16)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        with torch.no_grad(), _head_bypassed(self.model) as head:
            for start in range(0, len(order), size):
                chunk = order[start : start + size]
                for index, answer in zip(chunk, self._score([requests[i] for i in chunk], head)):
                    results[index] = answer
        return results  # type: ignore[return-value]

    def _score(self, chunk: list[Request], head: Any) -> list[tuple[float, bool]]:
        import torch
        import torch.nn.functional as F

        unique: dict[tuple[int, ...], int] = {}  # one row per distinct input: choices of one token share it
        spans = []  # per request: (its row, where its input ends, how many tokens it scores)
        for _, context, continuation in chunk:
            whole = tuple((context + continuation)[-(self.max_length + 1) :][:-1])  # as lm-eval truncates
            row = unique.setdefault(whole, len(unique))
            spans.append((row, len(whole), len(continuation)))
        width = max(len(tokens) for tokens in unique)
        ids = torch.zeros(len(unique), width, dtype=torch.long, device=self.device)
        for tokens, row in unique.items():
            ids[row, : len(tokens)] = torch.tensor(tokens, dtype=torch.long)
        hidden = self.model(ids).logits  # the bypassed head: hidden states, [batch, positions, width]
        offset = hidden.shape[1] - width  # prompt-learning tokens in front, where a model keeps them
        rows = [row for row, end, count in spans for _ in range(count)]
        positions = [offset + p for _, end, count in spans for p in range(end - count, end)]
        scored = F.log_softmax(head(hidden[rows, positions]), dim=-1, dtype=self.softmax_dtype)
        answers, cursor = [], 0
        for (_, _, continuation), (_, _, count) in zip(chunk, spans):
            block = scored[cursor : cursor + count]
            cursor += count
            target = torch.tensor(continuation[-count:], dtype=torch.long, device=block.device)
            logprob = float(block.gather(1, target.unsqueeze(1)).sum())
            answers.append((logprob, bool((block.argmax(dim=-1) == target).all())))
        return answers
