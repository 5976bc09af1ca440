"""Behaviour of bench ab (bench/analysis/ab.py) that a mutation audit found no test would notice if it broke: each
test fails on a named mutant (the audit's totals: tests/test_mutants_history_ab.py)."""

from __future__ import annotations

import pytest

from bench.analysis.ab import compare_rounds
from bench.analysis.verdicts import ALL_STRATEGIES, SAME, WORSE
from tests.conftest import fast_suite, write_suite
from tests.synthetic_records import make_record, make_set, store

CONTAMINATED = "train: other processes used 1.0 cores"
DRIFT7 = [1.0, 0.6, 1.4, 0.7, 1.3, 0.8, 1.2]  # the machine's speed in each round


def _round(speed: float, dirty: tuple[str, ...] = (), **kw) -> list:
    """One round of full and lora at the machine's `speed`; the strategies in `dirty` had their timing disturbed."""
    return [
        r
        for label in ("full", "lora")
        for r in make_set(labels=(label,), contaminated=CONTAMINATED if label in dirty else None, **kw)
    ]


def test_each_strategy_drops_the_round_pairs_its_own_timing_was_disturbed_in_on_either_side():
    """lora's baseline runs of round 2 and full's candidate runs of round 4 were contaminated: each strategy drops
    the one pair of its own, on whichever side, and keeps the other's; the suite row keeps every round."""
    base = [_round(1.0, ("lora",) if i == 1 else (), scale={"train.tokens_per_s": s}) for i, s in enumerate(DRIFT7)]
    cand = [
        _round(1.0, ("full",) if i == 3 else (), scale={"train.tokens_per_s": s * 0.85}) for i, s in enumerate(DRIFT7)
    ]
    rows = {c.strategy: c for c in compare_rounds(base, cand).changes if c.metric == "train.tokens_per_s"}
    for label in ("full", "lora"):
        assert (rows[label].verdict, rows[label].n_baseline, rows[label].p_value) == (WORSE, 6, 1 / 64)
        assert rows[label].note == "6 interleaved rounds, paired (1 contaminated round pair dropped)"
    assert rows[ALL_STRATEGIES].n_baseline == 7


def _fake_rounds(monkeypatch) -> list[str]:
    """bench ab's rounds with each side's `bench run` replaced by storing one clean round of seed 0: the names
    of the rounds run, in order."""
    import bench.analysis.ab as ab

    calls: list[str] = []

    def fake_round(suite, folder, source, extra, only, planned, name):
        calls.append(name)
        store([r for r in make_set(seeds=(0,)) if not only or r.label in only], folder)
        (folder / ".done").write_text("")

    monkeypatch.setattr(ab, "_run_round", fake_round)
    return calls


def test_ab_rounds_alternate_which_side_runs_first(tmp_path, monkeypatch):
    """ABBA: a drift over the session falls on both sides alike."""
    import bench.analysis.ab as ab

    calls = _fake_rounds(monkeypatch)
    suite = write_suite(tmp_path, fast_suite("s", ["full", "lora"]))
    ab.run_rounds(suite, tmp_path / "out", 4, say=lambda m: None)
    assert calls == [
        "baseline round 1",
        "candidate round 1",
        "candidate round 2",
        "baseline round 2",
        "baseline round 3",
        "candidate round 3",
        "candidate round 4",
        "baseline round 4",
    ]


def test_one_strategy_is_its_own_suite_level_hypothesis():
    """A suite of one strategy adds no `all strategies` row: the strategy's row is the hypothesis and gates."""
    base = [make_set(labels=("full",), scale={"train.tokens_per_s": s}) for s in DRIFT7]
    cand = [make_set(labels=("full",), scale={"train.tokens_per_s": s * 0.85}) for s in DRIFT7]
    result = compare_rounds(base, cand)
    assert not [c for c in result.changes if c.strategy == ALL_STRATEGIES]
    row = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert row.parent is None and row.regression and row.p_value == 1 / 128


def _rounds(speeds: dict[str, float], metric: str = "train.tokens_per_s", drift: list[float] = DRIFT7) -> list:
    """Drifting rounds in which each strategy's `metric` is its factor times the machine's speed."""
    return [[r for label, f in speeds.items() for r in make_set(labels=(label,), scale={metric: s * f})] for s in drift]


def _rows(result, metric: str = "train.tokens_per_s") -> dict:
    return {c.strategy: c for c in result.changes if c.metric == metric}


def test_a_suite_row_beyond_noise_but_within_the_threshold_is_no_change_and_its_strategies_are_tested():
    """full 20% slower, lora 5% faster: their mean moved 8.3%, every round the same way (p 1/128), within 10%."""
    result = compare_rounds(_rounds({"full": 1, "lora": 1}), _rounds({"full": 0.8, "lora": 1.05}))
    suite, full = _rows(result)[ALL_STRATEGIES], _rows(result)["full"]
    assert suite.verdict == SAME and not suite.regression and suite.p_value == 1 / 128
    assert suite.note.startswith("beyond round noise, within ±10%: its strategies' rows are tested")
    assert full.regression and result.failed


def test_a_change_exactly_at_the_threshold_is_within_it_for_a_strategy_and_for_the_suite():
    alone = compare_rounds(_rounds({"full": 1}), _rounds({"full": 0.8}))
    at = abs(_rows(alone)["full"].change)
    full = _rows(compare_rounds(_rounds({"full": 1}), _rounds({"full": 0.8}), thresholds={"train.tokens_per_s": at}))
    assert full["full"].verdict == SAME and full["full"].p_value is None
    both = compare_rounds(_rounds({"full": 1, "lora": 1}), _rounds({"full": 0.8, "lora": 1}))
    at = abs(_rows(both)[ALL_STRATEGIES].change)
    suite = compare_rounds(
        _rounds({"full": 1, "lora": 1}), _rounds({"full": 0.8, "lora": 1}), thresholds={"train.tokens_per_s": at}
    )
    assert _rows(suite)[ALL_STRATEGIES].verdict == SAME and _rows(suite)["full"].regression


def test_a_slower_latency_is_worse_for_each_strategy_and_for_the_suite():
    base = _rounds({"full": 1, "lora": 1}, "latency.ttft_ms.p50")
    result = compare_rounds(base, _rounds({"full": 1.5, "lora": 1.5}, "latency.ttft_ms.p50"))
    rows = _rows(result, "latency.ttft_ms.p50")
    assert {label: row.verdict for label, row in rows.items()} == {"full": WORSE, "lora": WORSE, ALL_STRATEGIES: WORSE}
    assert rows[ALL_STRATEGIES].change == pytest.approx(0.5) and result.failed


def test_five_rounds_can_reach_an_alpha_of_exactly_one_in_32():
    result = compare_rounds(
        _rounds({"full": 1}, drift=DRIFT7[:5]), _rounds({"full": 0.8}, drift=DRIFT7[:5]), alpha=1 / 32
    )
    row = _rows(result)["full"]
    assert (row.verdict, row.p_value, row.note) == (WORSE, 1 / 32, "5 interleaved rounds, paired")
    assert row.regression


def test_a_dropped_contaminated_round_is_no_issue_of_the_comparison():
    """The pair went with it; compare's issue `timing contaminated` (of pooled runs) is not bench ab's."""
    base = [make_set(scale={"train.tokens_per_s": s}) for s in DRIFT7]
    cand = [make_set(scale={"train.tokens_per_s": s * 0.85}) for s in DRIFT7]
    base[1] = make_set(scale={"train.tokens_per_s": DRIFT7[1]}, contaminated=CONTAMINATED)
    result = compare_rounds(base, cand)
    assert result.issues == [] and result.to_json()["issues"] == []
    assert _rows(result)["full"].note == "6 interleaved rounds, paired (1 contaminated round pair dropped)"


def test_no_ab_row_says_its_timings_were_brought_to_equal_machine_speed():
    """Pairing in time replaces the reference workload: a row left without a clean pair (every baseline round
    contaminated) says it was not adjusted, in --json too."""
    base = [make_set(scale={"train.tokens_per_s": s}, contaminated="train: steal 9%") for s in DRIFT7[:5]]
    cand = [make_set(scale={"train.tokens_per_s": s * 0.85}) for s in DRIFT7[:5]]
    written = compare_rounds(base, cand).to_json()["changes"]
    held = [c for c in written if c["held"] == "every one of 5 round pairs had contaminated timing"]
    assert len(held) == 10 and not [c for c in written if c["adjusted"]]


def test_a_contaminated_round_still_contaminated_at_the_limit_is_kept_for_the_comparison(tmp_path, monkeypatch):
    """Every try disturbed, one rerun allowed: the rerun's folder stays the round (its pair is dropped later)."""
    import bench.analysis.ab as ab

    calls: list[str] = []

    def fake_round(suite, folder, source, extra, only, planned, name):
        calls.append(name)
        store(make_set(seeds=(0,), contaminated=CONTAMINATED), folder)
        (folder / ".done").write_text("")

    monkeypatch.setattr(ab, "_run_round", fake_round)
    suite = write_suite(tmp_path, fast_suite("s", ["full", "lora"]))
    base, _ = ab.run_rounds(suite, tmp_path / "out", 1, max_reruns=1, say=lambda m: None)
    assert calls == ["baseline round 1", "baseline round 1", "candidate round 1", "candidate round 1"]
    assert sorted(p.name for p in (tmp_path / "out" / "baseline").iterdir()) == ["round-1", "round-1.contaminated-1"]
    assert ab.contaminated_round(ab.load_rounds(base)[0])


def test_a_round_whose_bench_run_exits_1_with_a_record_of_every_run_is_done(tmp_path, monkeypatch):
    """Exit 1: some runs failed, and their records say why; any other exit is a crash, and the round not done."""
    import subprocess

    import bench.analysis.ab as ab

    folder, exits = tmp_path / "round-1", []

    def fake_run(command, **kwargs):
        store([make_record("full", 0), make_record("lora", 0, status="failed", reason="boom")], folder)
        return subprocess.CompletedProcess(command, exits.pop(0), stderr="1 of 2 runs failed\n")

    monkeypatch.setattr(ab.subprocess, "run", fake_run)
    planned = {("full", 0), ("lora", 0)}
    exits.append(1)
    ab._run_round(tmp_path / "s.yaml", folder, ab.SOURCE, {}, None, planned, "baseline round 1")
    assert (folder / ".done").exists()
    (folder / ".done").unlink()
    exits.append(2)
    with pytest.raises(ab.RoundError, match="baseline round 1: bench run exited 2 \\(not marked done\\)"):
        ab._run_round(tmp_path / "s.yaml", folder, ab.SOURCE, {}, None, planned, "baseline round 1")
    assert not (folder / ".done").exists()


def test_rounds_made_for_more_strategies_serve_only_the_ones_asked_for(tmp_path):
    from bench.analysis.ab import load_rounds

    store(make_set(seeds=(0, 1)), tmp_path / "round-1")
    (only,) = load_rounds([tmp_path / "round-1"], ["lora"])
    assert sorted((r.label, r.seed) for r in only) == [("lora", 0), ("lora", 1)]
    assert len(load_rounds([tmp_path / "round-1"])[0]) == 4


def test_a_round_that_recorded_no_throughput_is_left_out_of_the_suite_row():
    """lora's baseline round 1 recorded 0 tokens/s: no log ratio exists there; the suite row averages what does."""
    base = _rounds({"full": 1, "lora": 1})
    base[0] = [*make_set(labels=("full",)), *make_set(labels=("lora",), values={"train.tokens_per_s": 0.0})]
    suite = _rows(compare_rounds(base, _rounds({"full": 0.8, "lora": 0.8})))[ALL_STRATEGIES]
    assert (suite.verdict, suite.n_baseline, suite.p_value) == (WORSE, 7, 1 / 128)
    assert suite.change == pytest.approx(-0.2)
