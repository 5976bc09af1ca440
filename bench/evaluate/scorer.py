"""Log-likelihood scoring that computes the output head only where a continuation is scored.

lm-eval's HFLM turns every position of every request into full-vocabulary logits and a
log-softmax over them, then keeps the few continuation positions. For multiple-choice items the
context is long and the continuation a word or two, so almost all of that work (on SmolLM2,
49,152 logits per position) is thrown away. `ContinuationScorer` is HFLM with one method
replaced: requests are sorted by length, longest first, and a batch ends where the next row would
be padded by more than a tenth of the batch's width (fixed batches padded 6-24%); identical
inputs (the choices of one item when each is one token) run once; the model runs with its output
head bypassed; the hidden states of the continuation positions are gathered, and the head and
log-softmax run on those alone. The arithmetic per scored position is the same; scores are
tested to be identical to lm-eval's own path (tests/test_scorer.py).

The choices of one item share its context, so they are packed into one row (where the model allows
it: not for prompt-learning adapters, which put their own tokens in front, not for ALiBi models (BLOOM,
Falcon with `alibi`, MPT), whose position biases are built from a 2D mask, and not where lm-eval
would truncate): the context once, then each choice as a branch that sees the context and itself
(a 4D attention mask and position ids that restart after the context). An item of four choices
runs its context once instead of four times; the first token of every choice is scored from the
context's last position.

Hand-written because lm-eval has no hook for it (its TODO says as much); everything else (task
loading, request building, tokenisation, metrics) stays lm-eval's.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from lm_eval.models.huggingface import HFLM

from bench.evaluate.generation import prompt_learning

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


def _packable(model: Any) -> bool:
    """Whether choices can share a row: the attention takes an arbitrary mask (SDPA and eager do,
    flash-attention kernels do not), positions come from position ids (not ALiBi's biases, which are
    built from a 2D padding mask) and no prompt-learning adapter puts its own tokens in front."""
    config = getattr(model, "config", None)
    attention = getattr(config, "_attn_implementation", None)
    return attention in ("sdpa", "eager") and not prompt_learning(model) and not uses_alibi(config)


ALIBI_FLAGS = ("alibi", "use_alibi")  # Falcon's `alibi`, MPT's attn_config `alibi`, others' `use_alibi`


def uses_alibi(config: Any) -> bool:
    """Whether a model's attention adds ALiBi biases: BLOOM always; any other whose config (or a
    sub-config such as MPT's `attn_config`) sets an ALIBI_FLAGS flag or `position_embedding_type: alibi`."""
    if config is None:
        return False
    if getattr(config, "model_type", None) == "bloom":
        return True
    raw = config.to_dict() if hasattr(config, "to_dict") else dict(vars(config))
    return _alibi_in(raw)


def _alibi_in(raw: dict[str, Any]) -> bool:
    if any(raw.get(flag) is True for flag in ALIBI_FLAGS) or raw.get("position_embedding_type") == "alibi":
        return True
    return any(_alibi_in(value) for value in raw.values() if isinstance(value, dict))


@dataclass
class _Row:
    """One model input: a prefix, then branches that each see the prefix and themselves. Each
    scored request lists the input positions whose outputs predict its target tokens."""

    prefix: list[int]
    branches: list[list[int]] = field(default_factory=list)
    scored: list[tuple[int, list[int], list[int]]] = field(default_factory=list)  # (request, positions, targets)

    @property
    def tokens(self) -> list[int]:
        return self.prefix + [token for branch in self.branches for token in branch]

    def positions(self) -> list[int]:
        """Position ids: a branch continues from the end of the prefix."""
        return list(range(len(self.prefix))) + [len(self.prefix) + j for b in self.branches for j in range(len(b))]

    def segments(self) -> list[int]:
        """0 for the prefix, i for branch i."""
        return [0] * len(self.prefix) + [i for i, b in enumerate(self.branches, start=1) for _ in b]


class ContinuationScorer(HFLM):
    pack = True  # False: one row per distinct input, as before packing (scripts/eval_speed.py compares)

    def _loglikelihood_tokens(
        self, requests: list[Request], disable_tqdm: bool = False, override_bs: int | None = None
    ) -> list[tuple[float, bool]]:
        import torch

        rows = self._rows(requests)
        size = self.batch_size if isinstance(self.batch_size, int) else int(override_bs or 16)
        results: list[tuple[float, bool] | None] = [None] * len(requests)
        with torch.no_grad(), _head_bypassed(self.model) as head:
            for batch in self._batches(rows, size):
                for index, answer in self._score(batch, head):
                    results[index] = answer
        return results  # type: ignore[return-value]

    padding = 0.1  # at most this fraction of a row's positions is padding; None: fixed batches of `size`

    def _batches(self, rows: list[_Row], size: int) -> Iterator[list[_Row]]:
        """Longest first, at most `size` rows a batch, and a new batch wherever the next row would be
        padded by more than `padding` of the batch's width. On CPU a matrix product runs at nearly full
        speed from about 200 rows of tokens, so smaller batches cost less than the padding they save."""
        rows = sorted(rows, key=lambda row: -len(row.tokens))
        batch: list[_Row] = []
        for row in rows:
            if batch and (
                len(batch) == size
                or (self.padding is not None and len(row.tokens) < (1 - self.padding) * len(batch[0].tokens))
            ):
                yield batch
                batch = []
            batch.append(row)
        if batch:
            yield batch

    def _rows(self, requests: list[Request]) -> list[_Row]:
        """Requests that share a context become one packed row where that is exact; the rest one
        row each, deduplicated by input (the one-token choices of an item share theirs)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for index, (_, context, _) in enumerate(requests):
            groups.setdefault(tuple(context), []).append(index)
        packable = self.pack and _packable(self.model)
        rows: list[_Row] = []
        single: dict[tuple[int, ...], _Row] = {}
        for context, members in groups.items():
            continuations = [requests[i][2] for i in members]
            branch_tokens = sum(len(c) - 1 for c in {tuple(c) for c in continuations})
            if (
                packable
                and context
                and all(continuations)
                and all(len(context) + len(c) <= self.max_length + 1 for c in continuations)  # lm-eval keeps all
                and len(context) + branch_tokens <= self.max_length
            ):
                rows.append(self._packed(list(context), members, requests))
                continue
            for index in members:  # as lm-eval truncates: the last max_length tokens of the input
                _, context_tokens, continuation = requests[index]
                whole = tuple((context_tokens + continuation)[-(self.max_length + 1) :][:-1])
                row = single.setdefault(whole, _Row(prefix=list(whole)))
                count = len(continuation)
                row.scored.append((index, list(range(len(whole) - count, len(whole))), continuation[-count:]))
        return rows + list(single.values())

    @staticmethod
    def _packed(context: list[int], members: list[int], requests: list[Request]) -> _Row:
        row = _Row(prefix=context)
        starts: dict[tuple[int, ...], int] = {}  # identical choices share a branch
        for index in members:
            continuation = requests[index][2]
            if tuple(continuation) not in starts:
                starts[tuple(continuation)] = len(row.tokens)
                row.branches.append(continuation[:-1])  # its last token is only predicted
            start = starts[tuple(continuation)]
            positions = [len(context) - 1] + [start + j for j in range(len(continuation) - 1)]
            row.scored.append((index, positions, continuation))
        return row

    def _score(self, rows: list[_Row], head: Any) -> list[tuple[int, tuple[float, bool]]]:
        import torch
        import torch.nn.functional as F

        width = max(len(row.tokens) for row in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long, device=self.device)
        for number, row in enumerate(rows):
            ids[number, : len(row.tokens)] = torch.tensor(row.tokens, dtype=torch.long)
        if any(row.branches for row in rows):
            hidden = self.model(ids, **self._branch_inputs(rows, width)).logits
        else:  # plain causal rows, right-padded: padding comes after every scored position
            hidden = self.model(ids).logits  # the bypassed head: hidden states, [batch, positions, width]
        offset = hidden.shape[1] - width  # prompt-learning tokens in front, where a model keeps them
        which = [(number, p) for number, row in enumerate(rows) for _, positions, _ in row.scored for p in positions]
        numbers = [number for number, _ in which]
        positions = [offset + p for _, p in which]
        scored = F.log_softmax(head(hidden[numbers, positions]), dim=-1, dtype=self.softmax_dtype)
        answers, cursor = [], 0
        for row in rows:
            for index, row_positions, targets in row.scored:
                block = scored[cursor : cursor + len(row_positions)]
                cursor += len(row_positions)
                target = torch.tensor(targets, dtype=torch.long, device=block.device)
                logprob = float(block.gather(1, target.unsqueeze(1)).sum())
                answers.append((index, (logprob, bool((block.argmax(dim=-1) == target).all()))))
        return answers

    def _branch_inputs(self, rows: list[_Row], width: int) -> dict[str, Any]:
        """A 4D additive mask in which a branch sees the prefix and itself, causally, and position
        ids that restart each branch after the prefix. Padding (never scored) sees the prefix too."""
        import torch

        segments = torch.full((len(rows), width), -1, dtype=torch.long)
        positions = torch.zeros(len(rows), width, dtype=torch.long)
        for number, row in enumerate(rows):
            segments[number, : len(row.tokens)] = torch.tensor(row.segments())
            positions[number, : len(row.tokens)] = torch.tensor(row.positions())
        query, key = segments[:, :, None], segments[:, None, :]
        causal = torch.ones(width, width, dtype=torch.bool).tril()
        allowed = causal & (key >= 0) & ((key == 0) | (key == query))
        allowed |= torch.eye(width, dtype=torch.bool)  # every query keeps a key, whatever its row holds
        dtype = self.model.dtype
        mask = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
        return {"attention_mask": mask[:, None].to(self.device), "position_ids": positions.to(self.device)}
