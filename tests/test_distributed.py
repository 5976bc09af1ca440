"""Several processes per run (execution.processes): torchrun, data parallel on CPU with gloo.

The budget is global: a 2-process run does the same optimizer steps on the same global batches as
a 1-process run (accelerate shards each global batch across the ranks), so its loss curve is the
1-process curve up to floating-point order, far inside seed noise."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.api import run_suite
from bench.suite import SuiteError, parse_suite
from tests.conftest import fast_suite


def _suite(name: str, processes: int, seeds: list[int]) -> dict:
    return fast_suite(
        name,
        [{"full": {"learning_rate": 3.0e-3}}],
        budget={"steps": 12, "batch_size": 8, "seq_len": 16},
        seeds=seeds,
        task={"name": "cipher", "train_size": 256, "eval_limit": 20},
        execution={"timeout_s": 300, "processes": processes, "backend": "local"},
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("distributed")
    one = run_suite(parse_suite(_suite("one-process", 1, [0, 1, 2])), folder).results
    two = run_suite(parse_suite(_suite("two-processes", 2, [0])), folder).results
    return one, two


def test_two_processes_record_world_size_and_the_global_budget(runs):
    one, (two,) = runs
    assert two.status == "ok", two.reason
    assert two.budget["world_size"] == 2 and two.budget["per_rank_batch"] == 4 and two.budget["global_batch"] == 8
    single = next(r for r in one if r.seed == 0)
    assert single.budget["world_size"] == 1
    # the matched budget in global terms: the same optimizer steps, tokens and samples
    for field in ("steps_done", "tokens_seen", "samples_seen"):
        assert two.budget[field] == single.budget[field], field
    assert two.spec["processes"] == 2


def test_two_process_loss_is_the_one_process_loss_within_seed_noise(runs):
    one, (two,) = runs
    losses = {r.seed: r.metrics["train.final_loss"].value for r in one}
    seed_spread = max(losses.values()) - min(losses.values())
    assert seed_spread > 0
    assert abs(two.metrics["train.final_loss"].value - losses[0]) < 0.1 * seed_spread, (losses, two.metrics)


def test_every_rank_reports_its_memory_and_the_metric_is_the_maximum(runs):
    _, (two,) = runs
    ranks = two.memory["per_rank"]
    assert len(ranks) == 2
    peaks = [rank["memory.train.host_peak_mib"] for rank in ranks]
    assert all(peak > 0 for peak in peaks)
    assert two.metrics["memory.train.host_peak_mib"].value == max(peaks)
    assert {rank["memory.train.weights_trainable_mib"] for rank in ranks} == {
        two.metrics["memory.train.weights_trainable_mib"].value
    }


def test_processes_must_split_the_global_batch(tmp_path: Path):
    with pytest.raises(SuiteError, match="execution.processes: 3 processes cannot split budget.batch_size 8"):
        parse_suite(_suite("uneven", 3, [0]))


def test_fsdp_on_cpu_is_skipped_with_the_reason(tmp_path: Path):
    """accelerate takes FSDP arguments on CPU and runs plain data parallel: not an FSDP record."""
    suite = _suite("fsdp-cpu", 2, [0])
    suite["execution"]["parallel"] = "fsdp"
    (result,) = run_suite(parse_suite(suite), tmp_path).results
    assert result.status == "skipped" and "fsdp needs CUDA" in result.reason


def test_scaling_efficiency_is_global_throughput_over_n_times_one_process(runs):
    from bench.recommend.scaling import scaling

    one, two = runs
    (row,) = scaling(one, two)
    clean = [r.metrics["train.tokens_per_s"].value for r in one if not r.timing_contaminated]
    multi = [r.metrics["train.tokens_per_s"].value for r in two if not r.timing_contaminated]
    assert row.label == "full" and row.processes == 2 and row.same_budget
    if clean and multi:  # a contaminated side has no throughput to compare, and says so
        assert row.efficiency == pytest.approx((sum(multi) / len(multi)) / (2 * sum(clean) / len(clean)))
    else:
        assert row.efficiency is None
