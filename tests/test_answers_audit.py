"""The report's answers audited: timing answers rank only the runs whose timing they trust, a record without
timing quality is not called quiet, and forgetting at the floor names no winner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.records.results import Metric, RunResult
from bench.records.store import load_records
from bench.report import aggregate
from bench.report.html import render
from tests.synthetic_records import make_record

ROOT = Path(__file__).resolve().parents[1]
LATENCY = "latency.ttft_ms.p50"
CONTAMINATED = "train: other processes used 0.75 cores (limit 0.25)"


def labelled(label: str, seed: int, **options: object) -> RunResult:
    """A synthetic run of strategy `label` (tests/synthetic_records knows full and lora only)."""
    base = make_record("lora", seed, **options)  # type: ignore[arg-type]
    spec = {**base.spec, "strategy": label, "label": label}
    return base.model_copy(update={"run_id": f"{label}-{seed}", "strategy": label, "label": label, "spec": spec})


def by_question(records: list[RunResult]) -> dict[str, aggregate.Answer]:
    return {answer.question: answer for answer in aggregate.answers(records)}


def test_lowest_latency_is_ranked_on_clean_runs_only():
    """results/smollm2-forgetting: full's 37.3 ms was the mean of a clean 38.22 and a contaminated 36.34, and
    it won while the note said the contaminated run was left out; over clean runs full-5x (37.6) wins."""
    records = [
        labelled("full", 0, values={LATENCY: 38.22}),
        labelled("full", 1, values={LATENCY: 36.34}, contaminated=CONTAMINATED),
        labelled("full-5x", 0, values={LATENCY: 39.06}),
        labelled("full-5x", 1, values={LATENCY: 36.14}),
    ]
    latency = by_question(records)["Lowest latency"]
    assert (latency.winner, latency.runner_up) == ("full-5x", "full")
    assert latency.winner_mean == pytest.approx(37.60) and latency.runner_up_mean == pytest.approx(38.22)
    assert "(1 run with contaminated timing left out)" in latency.note and "2 vs 1 seeds" in latency.note


def test_runner_up_figure_is_its_clean_mean():
    """A strategy's figure in a timing answer is the mean of its clean runs (lora's clean seed, 162), never one
    that pools in the contaminated seed (112)."""
    speed = "train.tokens_per_s"
    records = [
        labelled("ia3", 0, values={speed: 174.0}),
        labelled("ia3", 1, values={speed: 184.0}),
        labelled("lora", 0, values={speed: 162.0}),
        labelled("lora", 1, values={speed: 112.0}, contaminated=CONTAMINATED),
        labelled("lora-5x", 0, values={speed: 157.0}),
        labelled("lora-5x", 1, values={speed: 157.0}),
    ]
    fastest = by_question(records)["Fastest to train"]
    assert (fastest.winner, fastest.runner_up, fastest.runner_up_mean) == ("ia3", "lora", 162.0)


def test_a_strategy_without_a_clean_run_is_not_ranked():
    records = [
        labelled("full", 0, values={LATENCY: 9.0}, contaminated=CONTAMINATED),
        labelled("ia3", 0, values={LATENCY: 12.0}),
        labelled("lora", 0, values={LATENCY: 13.0}),
    ]
    latency = by_question(records)["Lowest latency"]
    assert (latency.winner, latency.runner_up) == ("ia3", "lora")
    assert "full: no clean run, not ranked" in latency.note


def test_every_run_contaminated_names_no_winner():
    """results/smollm2-instruct-pc: every run's timing was contaminated, yet the answer named lora at
    16.5 tokens/s ("0 vs 0 seeds")."""
    records = [labelled(label, 0, contaminated=CONTAMINATED) for label in ("dpo", "full", "lora")]
    found = by_question(records)
    for question in ("Fastest to train", "Lowest latency"):
        answer = found[question]
        assert answer.winner is None and answer.runner_up is None and answer.beyond_noise is None
        assert answer.note.startswith("timing could not be compared: all 3 runs that measured it had contaminated")
    assert found["Most accurate"].winner is not None  # quality is not timing: still answered
    table = re.search(r'<table class="answers" id="answers">(.*?)</table>', render(records), re.S).group(1)
    assert ">None<" not in table and "timing could not be compared" in table


def untimed(label: str, seed: int) -> RunResult:
    """A run whose record holds no timing quality (as results/smollm2-cpu's)."""
    return make_record(label, seed).model_copy(update={"timing_quality": None})


def _timing_section(page: str) -> str:
    return re.search(r'<section id="timing-quality">(.*?)</section>', page, re.S).group(1)


def test_unrecorded_timing_quality_is_not_called_quiet():
    records = [untimed(label, seed) for label in ("full", "lora") for seed in (0, 1)]
    section = _timing_section(render(records))
    assert "No run" not in section and "under a quarter of a core" not in section
    assert "Timing quality was not recorded for 4 of 4 runs" in section
    fastest = by_question(records)["Fastest to train"]
    assert "timing quality not recorded for 4 runs: contamination unknown" in fastest.note


def test_partly_recorded_timing_quality_says_both():
    records = [untimed("full", 0), untimed("lora", 0), make_record("full", 1), make_record("lora", 1)]
    section = _timing_section(render(records))
    assert "No run that recorded timing quality (2 of 4) recorded" in section
    assert "Timing quality was not recorded for 2 of 4 runs" in section


def test_recorded_quiet_runs_are_still_called_quiet():
    section = _timing_section(render([make_record(label, seed) for label in ("full", "lora") for seed in (0, 1)]))
    assert "No run recorded contamination" in section and "not recorded" not in section


def test_committed_smollm2_cpu_report_says_timing_quality_was_not_recorded():
    records = list(load_records(ROOT / "results" / "smollm2-cpu"))
    section = _timing_section(render(records))
    assert "Timing quality was not recorded for 12 of 12 runs" in section and "No run" not in section


def at_floor(label: str, seed: int, before: dict[str, float]) -> RunResult:
    """A run whose retained tasks scored `before` before training (per task) and did not move."""
    record = make_record(label, seed)
    metrics = dict(record.metrics)
    for task, value in before.items():
        metrics[f"accuracy_before.{task}"] = Metric(value=value, unit="acc", higher_is_better=True)
        metrics[f"forgetting.{task}"] = Metric(value=0.0 if value == 0 else -0.1, unit="acc", higher_is_better=True)
    metrics["forgetting.mean"] = Metric(value=0.0, unit="acc", higher_is_better=True)
    return record.model_copy(update={"metrics": metrics})


def test_forgetting_at_the_floor_names_no_winner():
    """results/smollm2-instruct-pc: every retained task scored 0 before and after, and the answer named dpo
    ("tie"): nothing could be forgotten, so "least forgetting" cannot be measured there."""
    floor = {"next-letter": 0.0, "copy": 0.0}
    records = [at_floor(label, seed, floor) for label in ("full", "lora") for seed in (0, 1)]
    forgetting = by_question(records)["Least forgetting"]
    assert forgetting.winner is None and forgetting.beyond_noise is None and not forgetting.by_item
    assert "forgetting cannot be measured" in forgetting.note and "(next-letter, copy)" in forgetting.note
    assert "floor" in forgetting.note


def test_forgetting_partly_at_the_floor_is_answered_and_says_so():
    before = {"next-letter": 0.0, "copy": 0.6}
    records = [at_floor(label, seed, before) for label in ("full", "lora") for seed in (0, 1)]
    forgetting = by_question(records)["Least forgetting"]
    assert forgetting.winner is not None
    assert "next-letter: 0 before training, nothing to forget there" in forgetting.note


def test_committed_instruct_pc_answers():
    found = by_question(list(load_records(ROOT / "results" / "smollm2-instruct-pc")))
    assert found["Least forgetting"].winner is None and "(floor)" in found["Least forgetting"].note
    assert found["Fastest to train"].winner is None and found["Lowest latency"].winner is None
    assert found["Most accurate"].winner == "lora"
