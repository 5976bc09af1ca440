"""bench ab: interleaved rounds, timings tested round against round, quality as compare does."""

from __future__ import annotations

from pathlib import Path

from bench.analysis.ab import compare_rounds
from bench.analysis.stats import paired_p
from bench.analysis.verdicts import ALL_STRATEGIES, UNKNOWN, WORSE
from tests.conftest import bench_cli, fast_suite, write_suite
from tests.synthetic_records import make_set

DRIFT = [1.0, 0.6, 1.4, 0.7, 1.3]  # the machine's speed in each round: a drifting, shared host


def rounds(slowdown: float = 1.0) -> list[list]:
    return [make_set(scale={"train.tokens_per_s": speed * slowdown}) for speed in DRIFT]


def test_paired_sign_flip_test_reaches_its_smallest_p_with_five_rounds():
    assert paired_p([2.0] * 5, [1.0] * 5, increased=True) == 1 / 32
    assert paired_p([1.0] * 5, [1.0] * 5, increased=True) == 1.0


def test_a_slowdown_is_found_through_drift_that_hides_it_from_a_pooled_comparison():
    from bench.analysis.compare import compare_records

    pooled = compare_records([r for runs in rounds() for r in runs], [r for runs in rounds(0.85) for r in runs])
    assert not any(c.metric == "train.tokens_per_s" and c.verdict == WORSE for c in pooled.changes)
    result = compare_rounds(rounds(), rounds(slowdown=0.85))
    rows = {(c.strategy, c.metric): c for c in result.changes}
    for label in ("full", "lora"):
        row = rows[(label, "train.tokens_per_s")]
        assert row.test == "rounds" and row.verdict == WORSE and row.p_value == 1 / 32
        assert abs(row.change + 0.15) < 0.03
    assert result.failed


def test_the_same_drift_on_both_sides_is_no_regression():
    result = compare_rounds(rounds(), rounds())
    assert not result.failed
    assert all(c.verdict != WORSE for c in result.changes)


def test_two_rounds_cannot_tell_and_say_so():
    result = compare_rounds(rounds()[:2], rounds(slowdown=0.5)[:2])
    row = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert row.verdict == UNKNOWN and "use >= 5" in row.note


def test_bench_ab_runs_both_sides_interleaved_and_resumes(tmp_path: Path):
    suite = write_suite(tmp_path, fast_suite("ab", ["full"], seeds=[0]))
    out = tmp_path / "ab"
    args = ("ab", str(suite), "--rounds", "2", "--out", str(out), "--candidate-env", "BENCH_TEST_SIDE=candidate")
    args += ("--max-reruns", "0")  # beside busy neighbours every round may be contaminated: no reruns here
    first = bench_cli(*args)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "round 2/2: baseline done" in first.stderr and "interleaved rounds" in first.stdout
    assert sorted(p.name for p in (out / "candidate").iterdir()) == ["round-1", "round-2"]
    again = bench_cli(*args)  # every round is done: nothing runs again
    assert again.returncode == 0 and "done" not in again.stderr


def test_quality_is_compared_once_per_seed_not_once_per_round():
    result = compare_rounds(rounds(), rounds())
    row = next(c for c in result.changes if c.metric == "accuracy.cipher" and c.strategy == "full")
    assert (row.n_baseline, row.n_candidate) == (3, 3)  # 3 seeds, not 5 rounds x 3 seeds


def test_a_contaminated_round_is_dropped_with_its_pair_and_the_rest_still_gate():
    base = [make_set(scale={"train.tokens_per_s": speed}) for speed in DRIFT + [0.9]]
    cand = [make_set(scale={"train.tokens_per_s": speed * 0.85}) for speed in DRIFT + [0.9]]
    base[1] = make_set(scale={"train.tokens_per_s": DRIFT[1]}, contaminated="train: other processes used 1.0 cores")
    result = compare_rounds(base, cand)
    row = next(c for c in result.changes if c.metric == "train.tokens_per_s" and c.strategy == "full")
    assert row.verdict == WORSE and row.gating and row.n_baseline == 5
    assert "1 contaminated round pair dropped" in row.note
    assert result.failed


def test_rows_that_do_not_gate_say_why():
    base = [make_set(scale={"train.tokens_per_s": s}, contaminated="train: steal 9%") for s in DRIFT]
    result = compare_rounds(base, rounds(slowdown=0.85))
    row = next(c for c in result.changes if c.metric == "train.tokens_per_s" and c.strategy == "full")
    assert row.verdict == UNKNOWN and not row.gating
    assert row.note.startswith("not gated: every one of 5 round pairs had contaminated timing")
    assert row.held == "every one of 5 round pairs had contaminated timing"
    assert not result.failed


def test_a_contaminated_round_is_run_again_up_to_the_limit(tmp_path, monkeypatch):
    import bench.analysis.ab as ab
    from tests.synthetic_records import store

    calls: list[str] = []

    def fake_round(suite, folder, source, extra, only, planned, name):
        calls.append(name)
        dirty = len([c for c in calls if c == name]) == 1  # the first try of each round is disturbed
        records = make_set(seeds=(0,), contaminated="train: other processes used 1.0 cores" if dirty else None)
        store(records, folder)
        (folder / ".done").write_text("")

    monkeypatch.setattr(ab, "_run_round", fake_round)
    suite = write_suite(tmp_path, fast_suite("s", ["full", "lora"]))  # a round holds its (label, seed 0) runs
    base, cand = ab.run_rounds(suite, tmp_path / "out", 2, max_reruns=1, say=lambda m: None)
    assert len(calls) == 8  # 2 rounds x 2 sides x (first try + one rerun)
    assert sorted(p.name for p in (tmp_path / "out" / "baseline").iterdir()) == [
        "round-1",
        "round-1.contaminated-1",
        "round-2",
        "round-2.contaminated-1",
    ]
    assert not ab.contaminated_round(ab.load_rounds(base)[0])


def test_a_latency_tail_never_gates_even_when_its_contaminated_rounds_are_dropped():
    base = [make_set(scale={"latency.ttft_ms.p90": 1.0}) for _ in DRIFT + [1.0]]
    cand = [make_set(scale={"latency.ttft_ms.p90": 1.5}) for _ in DRIFT + [1.0]]
    base[0] = make_set(contaminated="train: CPU steal 9%")
    result = compare_rounds(base, cand)
    row = next(c for c in result.changes if c.metric == "latency.ttft_ms.p90" and c.strategy == "full")
    assert not row.gating and row.note.startswith("not gated: a latency tail")
    assert row.held.startswith("a latency tail")  # the contaminated reason gave way: its pairs are gone
    assert not any(c.metric == "latency.ttft_ms.p90" for c in result.regressions)


DRIFT7 = [*DRIFT, 0.8, 1.2]


def rounds_of(speeds: dict[str, float]) -> list[list]:
    """Seven drifting rounds in which each strategy runs at its own speed factor."""
    return [
        [
            r
            for label, factor in speeds.items()
            for r in make_set(labels=(label,), scale={"train.tokens_per_s": s * factor})
        ]
        for s in DRIFT7
    ]


def test_every_strategy_slower_gates_first_as_one_suite_level_hypothesis():
    result = compare_rounds(rounds_of({"full": 1, "lora": 1}), rounds_of({"full": 0.85, "lora": 0.85}))
    rows = {(c.strategy, c.metric): c for c in result.changes}
    suite = rows[(ALL_STRATEGIES, "train.tokens_per_s")]
    assert suite.verdict == WORSE and suite.gating and suite.p_value == 1 / 128
    assert abs(suite.change + 0.15) < 0.01 and "2 strategies in each of 7" in suite.note
    for label in ("full", "lora"):
        assert rows[(label, "train.tokens_per_s")].parent == "train.tokens_per_s"
        assert rows[(label, "train.tokens_per_s")].regression
    assert result.failed


def test_one_strategy_slower_is_not_averaged_away_by_the_suite_level_row():
    result = compare_rounds(rounds_of({"full": 1, "lora": 1}), rounds_of({"full": 0.8, "lora": 1}))
    rows = {(c.strategy, c.metric): c for c in result.changes}
    assert rows[(ALL_STRATEGIES, "train.tokens_per_s")].p_value == 1 / 128  # tested: full moved beyond 10%
    assert rows[("full", "train.tokens_per_s")].regression
    assert not rows[("lora", "train.tokens_per_s")].regression
    assert result.failed


def test_a_strategy_row_gates_only_within_a_suite_row_that_stood():
    from bench.analysis.gate import control_family
    from bench.analysis.verdicts import NOISE, Comparison, MetricChange

    def row(strategy: str, p: float, change: float, verdict: str) -> MetricChange:
        return MetricChange(
            strategy, "train.tokens_per_s", "tok/s", True, 100.0, 100.0 * (1 + change), 7, 7, change, 0.1, p,
            "rounds", verdict, True, parent=None if strategy == ALL_STRATEGIES else "train.tokens_per_s",
        )  # fmt: skip

    suite, full, lora = (
        row(ALL_STRATEGIES, 0.3, -0.05, NOISE),
        row("full", 0.0078, -0.2, WORSE),
        row("lora", 0.6, 0.1, NOISE),
    )
    comparison = Comparison("a", "b", [suite, full, lora])
    control_family(comparison)
    assert full.verdict == NOISE and not comparison.failed
    assert "did not move worse beyond noise" in full.note and "--only full" in full.note
    suite.p_value, suite.change, suite.verdict = 0.0078, -0.12, WORSE
    full.verdict, full.note = WORSE, ""
    control_family(comparison)
    assert full.regression and suite.regression and full.q_value == 2 * 0.0078
