"""A run trains the same whether or not the work before its training was cached: the base model's
scores (lm-eval seeds every generator as it scores) and a chained run's parent (tests/test_alignment.py)."""

from __future__ import annotations

from pathlib import Path

from bench.plan import plan
from bench.run.worker import run
from bench.suite import parse_suite
from tests.conftest import fast_suite


def test_a_run_trains_the_same_with_the_base_scores_computed_or_cached(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))  # no base scores cached yet
    suite = fast_suite(
        "rerun",
        [{"lora": {"dropout": 0.1, "learning_rate": 1e-2}}],  # dropout draws from the generator every step
        budget={"steps": 6, "batch_size": 4, "seq_len": 16},
        measure={"accuracy": True, "latency": False, "throughput_warmup_steps": 1},
        execution={"threads": 1},
    )
    (spec,) = plan(parse_suite(suite))
    first = run(spec, "test-machine", tmp_path / "first")
    second = run(spec, "test-machine", tmp_path / "second")
    assert first.status == second.status == "ok", (first.reason, second.reason)
    assert first.model["base_scores"]["reused_from_cache"] is False
    assert second.model["base_scores"]["reused_from_cache"] is True
    assert len(first.loss_curve) == 6 and first.loss_curve == second.loss_curve
