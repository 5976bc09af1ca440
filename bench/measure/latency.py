"""Batch-1 generation latency through `generate` itself: time to first token and per-token decode."""

from __future__ import annotations

from typing import Any

from transformers.generation.streamers import BaseStreamer

from bench.measure.timing import clock


class _TokenClock(BaseStreamer):
    """`generate` calls put() once with the prompt, then once per new token; we stamp each call."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value: Any) -> None:
        self.stamps.append(clock())

    def end(self) -> None:
        pass


def generation_latency(
    model: Any, tokenizer: Any, prompt: str, new_tokens: int, repeats: int, warmup: int
) -> tuple[list[float], list[float]]:
    """Return (time-to-first-token samples, per-token decode samples) in milliseconds, warm-up excluded."""
    import torch

    inputs = tokenizer(prompt, return_tensors="pt").to(model.device)
    ttft, decode = [], []
    model.eval()
    for repeat in range(warmup + repeats):
        streamer = _TokenClock()
        start = clock()
        with torch.no_grad():
            model.generate(
                **inputs,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                streamer=streamer,
                pad_token_id=tokenizer.pad_token_id,
            )
        if repeat < warmup:
            continue
        token_stamps = streamer.stamps[1:]  # the first stamp is the prompt
        ttft.append((token_stamps[0] - start) * 1000)
        decode.extend((later - earlier) * 1000 for earlier, later in zip(token_stamps, token_stamps[1:]))
    return ttft, decode
