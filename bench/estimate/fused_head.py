"""TRL's fused LM head, as its DPO and RLOO/GRPO trainers compute log-probabilities: what it keeps for
backward and the workspace it holds beyond that, for bench.estimate.model (docs/memory.md).

TRL 1.16 patches the trained model's forward (`add_fused_lm_head`) so that the last hidden states go
through the LM head in tiles of 4,096 tokens x 32,768 vocabulary entries (`ChunkedLogProbFunction`):
the (sequences, tokens, vocabulary) logits never exist. It keeps the hidden states (a copy of all but
the last position) and a few float32 numbers a token for backward, which recomputes each tile. The
tiles are folded by Triton kernels on CUDA and by torch operations elsewhere, and these hold different
workspaces: the torch fallback makes float32 copies of each tile (on this CPU about 1 MiB a token at
SmolLM2's 49,152-entry vocabulary), the Triton kernels fold a tile in place.

Neither is guessed: TRL's own function runs forward and backward here on fake tensors (torch's
FakeTensorMode: shapes, no storage) under torch's MemTracker, which follows every tensor's storage from
its creation to its release. For CUDA its Triton launches, which write into buffers the Python code has
already allocated, are replaced by launches that do nothing (`_as_on_triton`), so the count is of what
the Python code allocates around them. The torch tools are private (`torch.distributed._tools`,
`torch._subclasses`): torch is pinned (constraints/cpu.txt), and tests/test_estimate_fused_head.py checks
the result against DPO steps' measured peaks.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from bench.strategies.base import base_model_of

# The per-token outputs each trainer asks the fused head for (trl/trainer/dpo_trainer.py; rloo_ and grpo_trainer.py)
OUTPUTS = {
    "dpo": ("log_probs", "entropy", "mean_logits", "is_top1"),
    "rlhf": ("log_probs", "entropy"),
}


@dataclass(frozen=True)
class HeadMemory:
    saved: int  # bytes kept for backward from the forward until the head's backward
    workspace: int  # bytes held at once beyond those, at the worst moment of forward or backward


class FusedHeadLoss:
    """The loss of a step through TRL's fused head, for bench.estimate.meta.activation_peak: the
    backbone runs on the meta device as the trainer runs it (its saved tensors are counted there), and
    its last hidden state stands for the head's input; `memory` then counts the head itself."""

    def __init__(self) -> None:
        self.shape: tuple[int, int, int] | None = None  # (sequences, tokens, hidden size)
        self.dtype: Any = None
        self.vocabulary = 0
        self.head_trains = False

    def __call__(self, model: Any, ids: Any) -> Any:
        base = base_model_of(model)
        head = base.get_output_embeddings().weight
        hidden = base.base_model(input_ids=ids, use_cache=False).last_hidden_state
        self.shape, self.dtype = tuple(hidden.shape), hidden.dtype
        self.vocabulary, self.head_trains = head.shape[0], head.requires_grad
        return hidden.sum()  # a sum keeps nothing for backward: the head's own tensors are `memory`'s

    def memory(self, objective: str, device: str) -> HeadMemory:
        if self.shape is None:
            raise RuntimeError("the fused head's memory is known after the backbone's forward")
        return head_memory(self.shape, self.vocabulary, self.dtype, self.head_trains, OUTPUTS[objective], device)


def head_memory(
    shape: tuple[int, int, int], vocabulary: int, dtype: Any, head_trains: bool, outputs: tuple[str, ...], device: str
) -> HeadMemory:
    """TRL's fused head over hidden states of `shape` (sequences, tokens, hidden), forward and backward,
    on fake tensors: every position is scored, as off CUDA (on CUDA TRL scores only the positions with a
    label, the completions: an upper bound there)."""
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker
    from trl.kernels.chunked_logprob import ChunkedLogProbFunction
    from trl.trainer.utils import _CHUNKED_LOGPROB_CHUNK_SIZE

    sequences, tokens, width = shape
    on_triton = _as_on_triton() if device == "cuda" else contextlib.nullcontext()
    with FakeTensorMode(), on_triton:
        hidden = torch.empty(sequences, tokens, width, dtype=dtype, requires_grad=True)
        weight = torch.empty(vocabulary, width, dtype=dtype, requires_grad=head_trains)
        labels = torch.zeros(sequences, tokens, dtype=torch.long)
        tracker = MemTracker()
        tracker.track_external(hidden, weight, labels)
        with tracker:
            before = _live(tracker, "current")
            log_probs = ChunkedLogProbFunction.apply(
                hidden[:, :-1].reshape(-1, width), weight, None, labels[:, 1:].reshape(-1), 1.0,
                _CHUNKED_LOGPROB_CHUNK_SIZE, None, 1.0, outputs,
            )[0]  # fmt: skip
            loss = -log_probs.sum()
            saved = _live(tracker, "current") - before
            loss.backward()
        peak = _live(tracker, "peak") - before
    return HeadMemory(saved, max(peak - saved, 0))


def _live(tracker: Any, moment: str) -> int:
    return sum(categories["Total"] for categories in tracker.get_tracker_snapshot(moment).values())


class _NoLaunch:
    """A Triton kernel that is indexed by its grid and called, and does nothing."""

    def __getitem__(self, grid: Any) -> Any:
        return lambda *args, **kwargs: None


@contextlib.contextmanager
def _as_on_triton() -> Iterator[None]:
    """TRL's chunked log-prob module as it runs on CUDA: its Triton path taken, each launch a no-op (a
    kernel writes into buffers already allocated), and the float32 accumulation in place
    (`torch.addmm(..., out_dtype=float32, out=acc)` on CUDA; elsewhere it makes float32 copies)."""
    import trl.kernels.chunked_logprob as kernel

    required = ("_use_triton", "_forward_kernel", "_backward_kernel", "_addmm_fp32")
    missing = [name for name in required if not hasattr(kernel, name)]
    if missing:
        raise RuntimeError(f"trl.kernels.chunked_logprob has no {', '.join(missing)}: this TRL is not the one modelled")
    absent = object()
    saved = {name: getattr(kernel, name, absent) for name in (*required, "triton")}  # triton: where installed
    kernel._use_triton = lambda device: True
    kernel._forward_kernel = kernel._backward_kernel = _NoLaunch()
    kernel.triton = types.SimpleNamespace(cdiv=lambda a, b: -(-a // b))
    kernel._addmm_fp32 = lambda accumulator, a, b: None
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is absent:  # `triton`, where it is not installed
                delattr(kernel, name)
            else:
                setattr(kernel, name, value)
