"""Mutation audit of the decisions `bench compare` shows: each test here fails on a mutant of bench/analysis/
(compare, timing, selection) that the rest of the suite let through (the audit and its totals:
tests/test_mutants_decisions.py)."""

from __future__ import annotations

import random

import pytest

from bench.analysis.compare import compare_records
from bench.analysis.selection import comparable, keyed_records, suites_of
from bench.analysis.timing import speed_change, speed_factors, start_diff
from bench.analysis.verdicts import BETTER, LATENCY_TAIL, NOT_COMPARABLE, SAME, UNKNOWN, WORSE
from bench.records.results import RunResult
from tests.synthetic_records import TASK, make_record, make_set, timing
from tests.test_compare_sessions import _sessions
from tests.test_mutants_decisions import _set

# ---- bench/analysis/compare.py ----------------------------------------------------------------------------------

TOKENS = "train.tokens_per_s"


def _change(comparison, metric: str, strategy: str = "full"):
    return next(c for c in comparison.changes if c.metric == metric and c.strategy == strategy)


def test_one_session_against_two_is_its_mean_against_theirs():
    """Two nights against tonight: the session means are tested (prediction test), never tonight's 3 runs as 3."""
    rng = random.Random(11)
    nights, tonight = _sessions(rng, 2, 0.02, tag="night-"), _sessions(rng, 1, 0.0, scale=0.7, tag="tonight-")
    change = _change(compare_records(nights, tonight, fail_on=[TOKENS]), TOKENS)
    assert (change.test, change.n_baseline, change.n_candidate, change.verdict) == ("sessions", 2, 1, WORSE)
    assert "2 vs 1 sessions: one session's mean against the others' (t prediction test" in change.note


def test_a_change_of_a_negative_baseline_keeps_its_direction():
    """forgetting.mean -0.50 -> -0.40 is 20% less forgetting: a change of +20%, not -20%."""
    change = _change(compare_records(make_set(), make_set(scale={"forgetting.mean": 0.8})), "forgetting.mean")
    assert change.baseline < change.candidate < 0
    assert change.change == pytest.approx(0.2) and change.verdict == BETTER


def test_a_change_of_exactly_the_threshold_is_no_change():
    base = [make_record("full", s, values={TOKENS: 2000.0}) for s in range(5)]
    faster = [make_record("full", s, values={TOKENS: 2200.0}) for s in range(5)]
    change = _change(compare_records(base, faster, adjust_timing=False), TOKENS)
    assert change.change == 0.1 and change.verdict == SAME and change.note == "within ±10%"


def test_timing_of_a_set_that_mixes_hardware_is_not_compared():
    """Both sides ran seed 1 on another CPU: the same mix of fingerprints, still no timing verdict (nor a gate)."""

    def runs(scale: float) -> list[RunResult]:
        slow = {TOKENS: scale}
        return [make_record("full", s, scale=slow, cpu="Other CPU" if s == 1 else "Test CPU") for s in range(3)]

    result = compare_records(runs(1.0), runs(0.7))
    change = _change(result, TOKENS)
    assert (change.verdict, change.gating) == (NOT_COMPARABLE, False)
    assert change.note == "hardware differs (mixed fingerprints within a set)" and not result.failed


def _latency_tail(record: RunResult, factor: float) -> RunResult:
    """The record with 100 first-token latencies (a p90 that can be gated) and its p90 times `factor`."""
    timings = dict(record.timings)
    timings["latency.ttft_ms"] = timing("ms", [x * factor for x in record.timings["latency.ttft_ms"].samples * 10])
    return _set(record, "latency.ttft_ms.p90", record.metrics["latency.ttft_ms.p90"].value * factor).model_copy(
        update={"timings": timings}
    )


def test_a_latency_tail_does_not_gate_by_default():
    base = [_latency_tail(make_record("full", s), 1.0) for s in range(5)]
    slower = [_latency_tail(make_record("full", s), 1.5) for s in range(5)]
    result = compare_records(base, slower)
    change = _change(result, "latency.ttft_ms.p90")
    assert (change.verdict, change.gating, change.held) == (WORSE, False, LATENCY_TAIL)
    assert not result.failed
    assert compare_records(base, slower, fail_on=["latency.ttft_ms.p90"]).failed  # asked for: it gates


def test_a_thin_latency_tail_never_gates_even_when_asked_for():
    """--fail-on latency.ttft_ms.p90 over runs of which one holds 10 latency samples: a p90 of 10 samples is
    one slow moment, so the row is held (the fewest samples of any run decide, not the most)."""
    base = [_latency_tail(make_record("full", s), 1.0) for s in range(5)]
    slower = [_latency_tail(make_record("full", s), 1.5) for s in range(5)]
    thin = make_record("full", 4, scale={"latency.ttft_ms.p90": 1.5})
    result = compare_records(base, [*slower[:4], thin], fail_on=["latency.ttft_ms.p90"])
    change = _change(result, "latency.ttft_ms.p90")
    assert (change.verdict, change.gating) == (WORSE, False)
    assert change.held == "p90 of 10 samples per run is not a stable quantile (needs 100)"
    assert not result.failed


def test_a_row_outside_fail_on_that_cannot_tell_says_it_does_not_gate():
    two = {"seeds": (0, 1), "labels": ("full",)}
    result = compare_records(make_set(**two), make_set(**two, scale={TOKENS: 0.7}), fail_on=[f"accuracy.{TASK}"])
    change = _change(result, TOKENS)
    assert (change.verdict, change.gating, change.held) == (UNKNOWN, False, "not in --fail-on")
    assert change.note.startswith("not gated: not in --fail-on; ")


# ---- bench/analysis/selection.py --------------------------------------------------------------------------------


def _at(record: RunResult, clock: str) -> RunResult:
    return record.model_copy(update={"started_at": f"2026-11-23T{clock}:00+00:00"})


def test_the_spec_kept_is_the_one_with_the_newest_run():
    """A spec whose seed 1 ran at 20:00 is newer than one that ran both seeds at 15:00, though its seed 0 ran first."""
    older = [_at(make_record("lora", 0), "10:00"), _at(make_record("lora", 1), "20:00")]
    edited = [_at(make_record("lora", s, learning_rate=1e-3), clock) for s, clock in ((0, "15:00"), (1, "15:05"))]
    selection = comparable(older + edited)
    assert [r.spec["options"]["learning_rate"] for r in selection.records] == [3e-3, 3e-3]
    assert selection.notes == [
        "lora: 2 runs of an older spec left out (1 older spec); the newest spec's runs are shown"
    ]


def test_the_nights_note_comes_first():
    again = _at(make_record("lora", 0), "11:00").model_copy(update={"run_id": "lora-0-again"})
    records = [_at(make_record("lora", 0), "10:00"), again, _at(make_record("lora", 1, learning_rate=1e-3), "09:00")]
    notes = comparable(records).notes
    assert len(notes) == 2 and notes[0].startswith("2 nights (runs of one spec and seed repeated, 1 older repeats")
    assert notes[1].startswith("lora: 1 run of an older spec left out")


def test_suites_and_strategies_come_in_name_order_with_their_seeds_sorted():
    other = make_record("full", 0).model_copy(update={"suite": "alpha"})
    assert list(suites_of([make_record("lora", 0), other])) == ["alpha", "smoke"]
    shuffled = [make_record("lora", 1), make_record("full", 2), make_record("lora", 0), make_record("full", 0)]
    grouped = keyed_records(shuffled)
    assert list(grouped) == ["full", "lora"]
    assert {name: [r.seed for r in runs] for name, runs in grouped.items()} == {"full": [0, 2], "lora": [0, 1]}


# ---- bench/analysis/timing.py -----------------------------------------------------------------------------------


def test_one_session_against_two_of_which_one_measured_nothing_cannot_tell():
    """The second night recorded no tokens/s: one session mean a side is left, which no test can decide."""
    rng = random.Random(11)
    nights = _sessions(rng, 2, 0.02, tag="night-")
    nights[3:] = [_set(record, TOKENS, None) for record in nights[3:]]
    result = compare_records(nights, _sessions(rng, 1, 0.0, scale=0.7, tag="tonight-"), fail_on=[TOKENS])
    change = _change(result, TOKENS)
    assert (change.verdict, change.n_baseline, change.n_candidate) == (UNKNOWN, 1, 1) and not result.failed
    assert "1 vs 1 sessions: too few for any test to reach p<=0.05; add sessions" in change.note


def test_runs_without_a_session_keep_the_run_as_the_unit_of_timing():
    """Half the baseline predates sessions (schema 5): sessions cannot be counted, so the runs are the unit."""
    full = {"labels": ("full",)}
    night = [r.model_copy(update={"session": "night-1"}) for r in make_set(**full)]
    base = night + make_set(seeds=(3, 4, 5), **full)
    cand = [
        r.model_copy(update={"session": "night-2"})
        for r in make_set(seeds=(0, 1, 2, 3, 4, 5), scale={TOKENS: 0.7}, **full)
    ]
    change = _change(compare_records(base, cand), TOKENS)
    assert (change.test, change.n_baseline, change.n_candidate, change.verdict) == ("runs", 6, 6, WORSE)


def test_a_side_without_reference_workload_says_no_reference():
    full = {"labels": ("full",)}
    assert speed_change(make_set(**full), make_set(reference=None, **full)) == "no reference"
    change = _change(compare_records(make_set(**full), make_set(reference=None, **full)), TOKENS)
    assert change.adjusted is False and change.note == "within ±10%"


def test_latencies_in_ms_are_brought_to_one_machine_speed_as_seconds_are():
    """A run whose reference took twice as long ran on a machine half as fast: its ms shrink as its seconds do."""
    fast, slow = make_record("full", 0, reference=0.007), make_record("full", 1, reference=0.014)
    factors = speed_factors([fast, slow], "ms")
    assert factors == speed_factors([fast, slow], "s") == {id(fast): 1.5, id(slow): 0.75}


def _started(records: list[RunResult], odd: str, even: str) -> list[RunResult]:
    return [r.model_copy(update={"start": odd if r.seed % 2 else even}) for r in records]


def test_host_memory_of_sides_that_each_mix_warm_and_cold_starts_is_not_compared():
    def mixed() -> list[RunResult]:
        return _started(make_set(labels=("full",)), "warm", "cold (no warm server)")

    result = compare_records(mixed(), mixed())
    change = _change(result, "memory.train.host_peak_mib")
    assert change.verdict == NOT_COMPARABLE
    assert change.note == "warm and cold starts differ (baseline cold/warm, candidate cold/warm)"


def test_a_cold_start_is_one_kind_whatever_its_reason():
    cold = _started(make_set(labels=("full",)), "cold", "cold")
    told = _started(make_set(labels=("full",)), "cold (no warm server)", "cold (no warm server)")
    warm = _started(make_set(labels=("full",)), "warm", "warm")
    assert start_diff(cold, told) == ""
    assert start_diff(warm, told) == "warm and cold starts differ (baseline warm, candidate cold)"
