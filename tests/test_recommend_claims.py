"""`bench recommend`'s claims audited against the report: a lighter strategy is chosen only where the interval of
its difference stays within a tolerance, dominance says which differences are by means only, a strategy whose
runs all failed is rejected with why, unknown timing quality is said, speed is ranked within one hardware, and
the report's "Which strategy for my GPU?" says where no GPU memory was measured."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import pytest

from bench.recommend import recommend, render_text
from bench.records.results import RunResult
from bench.records.store import load_records
from bench.report.html import render
from bench.report.planning import recommendation_section
from tests.synthetic_records import make_record

ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30
H200 = "x86_64-16c-1x-nvidia-h200"


@cache
def committed(suite: str) -> tuple[RunResult, ...]:
    return tuple(load_records(ROOT / "results" / suite))


def _failed(record: RunResult, reason: str) -> RunResult:
    return record.model_copy(update={"status": "failed", "reason": reason, "metrics": {}, "timings": {}})


def _on_h200(record: RunResult) -> RunResult:
    """The record as if run on an H200 machine (another hardware fingerprint)."""
    environment = record.environment
    hardware = environment.hardware.model_copy(update={"gpus": ["NVIDIA H200"], "cores": 16})
    moved = environment.model_copy(update={"machine": H200, "gpus": ["NVIDIA H200"], "hardware": hardware})
    return record.model_copy(update={"environment": moved, "run_id": f"{record.run_id}-h200"})


def test_two_seeds_whose_interval_admits_a_large_drop_keep_the_more_accurate():
    """/tmp/user11/e10_noia3: lora was chosen as "within seed noise of full" on 2 seeds, while the report's
    quality table gives lora - full = -2.0 points [-33.8, +29.8], detectable >= 35.2 points."""
    records = [r for r in committed("smollm2-forgetting") if r.label != "ia3"]
    rec = recommend(records, 24 * GIB)
    assert rec.choice == "full"
    said = "lora needs less memory (1 GiB) but the data cannot tell whether it is within the 2-point tolerance of it"
    assert said in rec.reason
    assert "-2.0 points (95% interval -33.8 to +29.8, detectable >= 35.2 points)" in rec.reason


def test_a_narrow_interval_still_chooses_the_lighter_and_says_its_bounds():
    """13 seeds (results/smollm2-forgetting-sized): ia3 - full = -0.5 points [-1.6, +0.7], within 2 points."""
    rec = recommend(list(committed("smollm2-forgetting-sized")), 24 * GIB)
    assert rec.choice == "ia3"
    assert rec.reason.startswith("ia3: less memory than full, the most accurate of the 4 strategies that fit 24 GiB")
    assert "within the 2-point tolerance of it: 0.88 vs 0.89, -0.5 points (95% interval -1.6 to +0.7" in rec.reason


def test_the_tolerance_is_an_option():
    rec = recommend(list(committed("smollm2-forgetting-sized")), 24 * GIB, tolerance=0.01)
    assert rec.choice == "full" and "cannot tell whether it is within the 1-point tolerance of it" in rec.reason


def test_dominance_says_which_differences_are_by_means_only():
    """results/smollm2-forgetting: "lora: dominated by ia3 (higher accuracy, less forgetting, faster training)"
    compared means of 2 seeds that the report does not tell apart."""
    rec = recommend(list(committed("smollm2-forgetting")), 24 * GIB)
    assert rec.dominated["lora"] == (
        "dominated by ia3 (less memory; by means only, not beyond seed noise: higher accuracy, less forgetting,"
        " faster training)"
    )
    assert rec.dominated["lora-5x"].startswith(
        "dominated by ia3 (less memory, higher accuracy (p = 0.046 for this pair alone), less forgetting"
    )


def test_a_strategy_whose_runs_all_failed_is_rejected_with_why():
    """/tmp/user11/e3b_allfailed: ia3's runs failed out of memory, and it vanished from the answer."""
    oom = "CUDA out of memory (simulated)"
    records = [_failed(r, oom) if r.label == "ia3" else r for r in committed("smollm2-forgetting")]
    rec = recommend(records, 24 * GIB)
    assert rec.rejected["ia3"] == (
        f"all 2 runs failed: {oom}; out of memory on x86_64-2c-cpu: it did not fit there,"
        " and nothing was measured to plan with"
    )
    assert "  ia3: all 2 runs failed: CUDA out of memory" in render_text(rec)
    assert all(row["rejected"]["ia3"].startswith("all 2 runs failed") for row in recommendation_section(records))


def test_the_cli_rejects_a_strategy_whose_runs_all_failed(tmp_path: Path, capsys):
    from bench.cli.main import main
    from tests.synthetic_records import store

    records = [_failed(r, "CUDA out of memory") if r.label == "ia3" else r for r in committed("smollm2-forgetting")]
    store(records, tmp_path / "results")
    assert main(["recommend", str(tmp_path / "results"), "--memory", "24GiB"]) == 0
    assert "ia3: all 2 runs failed: CUDA out of memory" in " ".join(capsys.readouterr().out.split())


def test_unrecorded_timing_quality_is_said():
    """results/smollm2-cpu records no timing quality (full's tokens/s span 8.43 to 39.1): contamination unknown."""
    rec = recommend(list(committed("smollm2-cpu")), 24 * GIB, objective="throughput")
    assert (
        "timing quality not recorded for 12 runs (adapter, full, ia3, lora, prompt, qlora): contamination unknown,"
        " so their tokens/s may include other load"
    ) in rec.notes


def test_speed_is_ranked_within_one_hardware():
    """/tmp/user11/e9_gpucpu_same: ia3 timed on an H200 was ranked fastest against strategies timed on a CPU."""
    records = [_on_h200(r) if r.label == "ia3" else r for r in committed("smollm2-forgetting")]
    rec = recommend(records, 24 * GIB, objective="throughput")
    assert rec.choice == "lora @ x86_64-2c-cpu"
    assert "the fastest to train of the 5 strategies that fit 24 GiB, among those timed on x86_64-2c-cpu" in rec.reason
    assert f"not ranked against ia3 @ {H200} (179 tokens/s), which was timed on other hardware" in rec.reason
    assert "faster training" not in rec.dominated["lora @ x86_64-2c-cpu"]  # nor in dominance across hardware


def test_one_hardware_under_two_machine_names_is_ranked_together():
    """The same fingerprint (tests/test_recommend_machines.py): its tokens/s compare, so nothing is set apart."""
    records = [
        make_record(label, seed).model_copy(
            update={"environment": make_record(label, seed).environment.model_copy(update={"machine": machine})}
        )
        for machine, label in (("ci-a", "full"), ("ci-b", "lora"))
        for seed in (0, 1)
    ]
    rec = recommend(records, 24 * GIB, objective="throughput")
    assert rec.choice == "full @ ci-a" and "not ranked against" not in rec.reason


@pytest.mark.parametrize("objective", ["accuracy", "throughput"])
def test_the_report_says_no_gpu_memory_was_measured_on_cpu_runs(objective: str):
    """The report recommended "ia3 at 2.3 GiB (host RSS)" for 8, 24 and 80 GiB GPUs from CPU runs."""
    records = list(committed("smollm2-cpu"))
    if objective == "throughput":
        records = [
            r.model_copy(update={"metrics": {k: v for k, v in r.metrics.items() if "accuracy" not in k}})
            for r in records
        ]
    rows = recommendation_section(records)
    assert [row["memory"] for row in rows] == ["8 GiB", "24 GiB", "80 GiB"]
    for row in rows:
        assert row["objective"] == objective
        assert "at 2.3 GiB host RSS" in row["reason"]
        assert row["caveat"].startswith(
            "no GPU memory measured: these runs ran on CPU; host RSS shown, which is not what a GPU would need; run"
            " `bench estimate SUITE --device-memory SIZE`"
        )
        assert row["caveat"] not in row["notes"]  # said once, above the table
    page = render(records)
    assert page.count("No GPU memory measured: these runs ran on CPU") == 1 and "recommend-caveat" in page


def test_gpu_measured_memory_carries_no_caveat():
    rows = recommendation_section(list(committed("smollm2-gpu-memory")))
    assert rows and all(row["caveat"] is None and "No GPU memory" not in row["reason"] for row in rows)


def _close_on_speed(seeds: tuple[int, ...]) -> list[RunResult]:
    """full and lora of `seeds`, lora lighter (600 vs 650 MiB) and about 1% slower in tokens/s."""
    from tests.synthetic_records import make_set

    lora = make_set(seeds=seeds, labels=("lora",), scale={"train.tokens_per_s": 2000 / 1600 * 0.99})
    return make_set(seeds=seeds, labels=("full",)) + lora


def test_the_interval_alone_decides_even_where_no_seed_test_could_reach_alpha():
    """3 vs 3 seeds: the permutation test's smallest p is 0.1, yet lora is within 5% at the low end of its interval."""
    rec = recommend(_close_on_speed((0, 1, 2)), 24 * GIB, objective="throughput")
    assert rec.choice == "lora" and "within the 5% tolerance" in rec.reason


def test_a_seed_whose_figure_is_not_finite_is_left_out_of_the_interval():
    import math

    records = _close_on_speed((0, 1, 2, 3, 4, 5))
    broken = next(r for r in records if r.label == "lora" and r.seed == 5)
    metrics = {**broken.metrics, "train.tokens_per_s": broken.metrics["train.tokens_per_s"].model_copy(
        update={"value": math.nan})}  # fmt: skip
    records = [broken.model_copy(update={"metrics": metrics}) if r is broken else r for r in records]
    rec = recommend(records, 24 * GIB, objective="throughput")
    assert rec.choice == "lora" and "within the 5% tolerance" in rec.reason


def test_each_suite_of_a_report_gets_its_own_gpu_caveat():
    page = render([*committed("smollm2-gpu-memory"), *committed("smollm2-cpu")])
    assert page.count("smollm2-cpu: No GPU memory measured: these runs ran on CPU") == 1
    assert "smollm2-gpu-memory: No GPU memory measured" not in page
