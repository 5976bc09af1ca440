"""Greedy generation across batches: rows that outlive their batch decode together with the next one.

`GreedyGenerator` (bench/evaluate/generation.py) drops a row as soon as it finishes, but a batch still runs
until its longest row stops, and lm-eval runs batches one after the other: with a few long answers spread
over many batches, each pays the long tail alone, one row per step. `PooledGenerator` replaces lm-eval's
`generate_until` loop (its only hook for this) by the same steps in another order: the requests are
tokenised, truncated and sorted exactly as lm-eval does, a chunk of `batch_size` rows is prefilled, and the
rows still running when most of it has finished are carried into the next chunk, their key-value caches
left-padded to a common length and concatenated (masked positions, as in any left-padded batch). A chunk
also ends where its next row would be padded by more than a tenth of its width: with short answers the
prefill is most of the work, and lm-eval pads a whole batch to its longest context. The text
of each request is then decoded and cut at its stop sequences by lm-eval's own functions. Tested identical
to lm-eval's HFLM strings (tests/test_generation.py); anything the fast path cannot do goes to lm-eval's
own `generate_until` unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils import handle_stop_sequences, has_bos_prefix, normalize_gen_kwargs, postprocess_generated_text

from bench.evaluate.generation import GreedyGenerator, generation_unsupported, stopped
from bench.evaluate.scorer import ContinuationScorer, supported


@dataclass
class _Pool:
    """The rows decoding together: their cache, 2D mask, last positions, next input tokens."""

    rows: list[int] = field(default_factory=list)  # request indices
    cache: Any = None
    mask: Any = None
    last: Any = None
    tokens: Any = None


def _full_attention_cache(cache: Any) -> bool:
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in cache.layers)


def _merge(config: Any, first: _Pool, second: _Pool) -> _Pool:
    """One pool of both: caches and masks left-padded to the longer history, then concatenated."""
    import torch
    import torch.nn.functional as F
    from transformers import DynamicCache

    if not first.rows or not second.rows:
        return second if second.rows else first
    width = max(first.mask.shape[1], second.mask.shape[1])

    def pad(tensor: Any, dim_from_end: int) -> Any:
        missing = width - tensor.shape[-dim_from_end]
        if not missing:
            return tensor
        return F.pad(tensor, (0, 0) * (dim_from_end - 1) + (missing, 0))

    layers = [
        (
            torch.cat([pad(a.keys, 2), pad(b.keys, 2)]),
            torch.cat([pad(a.values, 2), pad(b.values, 2)]),
        )
        for a, b in zip(first.cache.layers, second.cache.layers, strict=True)
    ]
    return _Pool(
        rows=first.rows + second.rows,
        cache=DynamicCache(ddp_cache_data=layers, config=config),
        mask=torch.cat([pad(first.mask, 1), pad(second.mask, 1)]),
        last=torch.cat([first.last, second.last]),
        tokens=torch.cat([first.tokens, second.tokens]),
    )


class PooledGenerator(GreedyGenerator):
    """HFLM whose `generate_until` carries long rows across batches (module docstring)."""

    carry_fraction = 0.25  # a chunk is joined by the next once at most this share of a batch still runs
    padding = 0.1  # a chunk ends where the next row would be padded by more than this share of its width

    def generate_until(self, requests: list[Any], disable_tqdm: bool = False) -> list[str]:
        reason = self._unsupported(requests)
        if reason is not None:
            return super().generate_until(requests, disable_tqdm)
        return self._pooled([request.args for request in requests])

    def _unsupported(self, requests: list[Any]) -> str | None:
        if not requests or self.backend != "causal" or not isinstance(self.batch_size, int):
            return "not a causal model with a fixed batch size"
        if isinstance(self.think_end_token, int) or self.tokenizer.pad_token_id not in self.tokenizer.all_special_ids:
            return "thinking tokens or a pad token that decodes to text"
        kwargs = [request.args[1] for request in requests]
        if any(k != kwargs[0] for k in kwargs):
            return "several generation settings"
        normalized = normalize_gen_kwargs(dict(kwargs[0]), self.max_gen_toks)
        plain = {key: value for key, value in normalized.items() if key not in ("until", "max_gen_toks")}
        from transformers import DynamicCache

        if not _full_attention_cache(DynamicCache(config=self.model.config)):
            return "sliding-window or other non-full cache layers"
        return generation_unsupported(self.model, plain)

    def _encode(self, context: str, max_ctx_len: int) -> list[int]:
        """As lm-eval's tok_batch_encode encodes one string (before padding), left-truncated."""
        special: dict[str, bool] = {}
        if has_bos_prefix(context, getattr(self.tokenizer, "bos_token", None)):
            special = {"add_special_tokens": False}
        elif self.add_bos_token is not None:
            special = {"add_special_tokens": self.add_bos_token}
        return self.tokenizer(context, **special)["input_ids"][-max_ctx_len:]

    def _pooled(self, arguments: list[tuple[str, dict[str, Any]]]) -> list[str]:
        import torch

        kwargs = normalize_gen_kwargs(dict(arguments[0][1]), self.max_gen_toks)
        eos = self.tok_decode(self.eot_token_id, skip_special_tokens=False)
        until = handle_stop_sequences(kwargs.pop("until", None), eos=eos)
        budget = kwargs.pop("max_gen_toks")
        encoded = [self._encode(context, self.max_length - budget) for context, _ in arguments]
        order = sorted(range(len(arguments)), key=lambda i: (-len(self.tok_encode(arguments[i][0])), arguments[i][0]))
        stops = [term for term in until if term]
        eos_ids = _eos_ids(self.model)
        generated: list[list[int]] = [[] for _ in arguments]
        pool = _Pool()
        pending = list(order)
        carry = max(1, int(self.batch_size * self.carry_fraction))
        with torch.no_grad():
            while pending or pool.rows:
                if pending and len(pool.rows) <= carry:  # the next chunk joins the rows still running
                    chunk = self._chunk(pending, encoded)
                    pending = pending[len(chunk) :]
                    fresh = self._advance(self._prefill(chunk, encoded), generated, budget, eos_ids, stops)
                    pool = _merge(self.model.config, pool, fresh)
                else:
                    pool = self._advance(self._step(pool), generated, budget, eos_ids, stops)
        texts = []
        for (context, gen_kwargs), tokens in zip(arguments, generated):
            text = postprocess_generated_text(self.tok_decode(tokens), until, None)
            self.cache_hook.add_partial("generate_until", (context, gen_kwargs), text)
            texts.append(text)
        return texts

    def _chunk(self, pending: list[int], encoded: list[list[int]]) -> list[int]:
        """The next rows to prefill (longest first): at most `batch_size`, and none that would be padded
        by more than `padding` of the chunk's width (padding costs the prefill as much as real tokens)."""
        width = len(encoded[pending[0]])
        chunk = [pending[0]]
        for index in pending[1 : self.batch_size]:
            if len(encoded[index]) < (1 - self.padding) * width:
                break
            chunk.append(index)
        return chunk

    def _prefill(self, chunk: list[int], encoded: list[list[int]]) -> _Pool:
        """The chunk's contexts, left-padded as lm-eval pads them, through the model once."""
        import torch
        from transformers import DynamicCache

        width = max(len(encoded[i]) for i in chunk)
        pad = self.tokenizer.pad_token_id
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, index in enumerate(chunk):
            tokens = encoded[index]
            ids[row, width - len(tokens) :] = torch.tensor(tokens, dtype=torch.long)
            mask[row, width - len(tokens) :] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 0)
        cache = DynamicCache(config=self.model.config)
        logits = self.model(
            input_ids=ids, attention_mask=mask, position_ids=positions, cache=cache, use_cache=True, logits_to_keep=1
        ).logits[:, -1]
        tokens = logits.to(torch.float32).argmax(dim=-1)
        return _Pool(rows=list(chunk), cache=cache, mask=mask, last=positions[:, -1:], tokens=tokens)

    def _step(self, pool: _Pool) -> _Pool:
        """One decoding step of every row of the pool: feed the chosen tokens, choose the next."""
        import torch

        pool.mask = torch.cat([pool.mask, pool.mask.new_ones((len(pool.rows), 1))], dim=-1)
        pool.last = pool.last + 1
        logits = self.model(
            input_ids=pool.tokens[:, None],
            attention_mask=pool.mask,
            position_ids=pool.last,
            cache=pool.cache,
            use_cache=True,
        ).logits[:, -1]
        pool.tokens = logits.to(torch.float32).argmax(dim=-1)
        return pool

    def _advance(
        self, pool: _Pool, generated: list[list[int]], budget: int, eos_ids: set[int], stops: list[str]
    ) -> _Pool:
        """Append each row's chosen token; drop the rows that finished (end-of-sequence token, a stop
        sequence in the text, or the budget of new tokens)."""
        import torch

        keep = []
        for position, (row, token) in enumerate(zip(pool.rows, pool.tokens.tolist())):
            generated[row].append(token)
            if token in eos_ids or len(generated[row]) >= budget:
                continue
            if not stopped(self.tokenizer, generated[row], stops):
                keep.append(position)
        if len(keep) < len(pool.rows):
            if not keep:
                return _Pool()
            selected = torch.tensor(keep, device=pool.tokens.device)
            pool.cache.batch_select_indices(selected)
            pool.mask, pool.last, pool.tokens = pool.mask[selected], pool.last[selected], pool.tokens[selected]
            pool.rows = [pool.rows[position] for position in keep]
        return pool


def _eos_ids(model: Any) -> set[int]:
    from bench.evaluate.generation import _eos_ids as eos_ids

    return eos_ids(model)


class FastLM(ContinuationScorer, PooledGenerator):
    """Both fast paths: `_loglikelihood_tokens` from ContinuationScorer, `generate_until` from PooledGenerator."""


def language_model_class(model: Any, fast: bool) -> type[HFLM]:
    """lm-eval's HFLM, or with `fast` its subclass with both fast paths: log-likelihood scoring
    (bench/evaluate/scorer.py, where the model allows it) and greedy generation that carries long rows
    across batches (below, built on bench/evaluate/generation.py's GreedyGenerator)."""
    if not fast:
        return HFLM
    if supported(model) is None:
        return FastLM
    return PooledGenerator
