"""Behaviour of bench/analysis (stats, verdicts, gate here; quality, items and part of variance in
tests/test_mutants_quality_items.py) that a mutation audit found no test would notice if it broke: each test fails
on a named mutant (115 mutants, 61 killed before, 2 equivalent, 52 closed by the two files)."""

from __future__ import annotations

import math

import pytest

from bench.analysis import gate, quality, stats
from bench.analysis.compare import compare_records
from bench.analysis.items import metric_difference
from bench.analysis.variance import Interval
from bench.analysis.verdicts import (
    ALL_STRATEGIES,
    BETTER,
    CHANGED,
    MISSING,
    NOISE,
    NOT_COMPARABLE,
    SAME,
    UNKNOWN,
    WORSE,
    Comparison,
    MetricChange,
    RunIssue,
)
from bench.records.results import Metric
from tests.synthetic_records import make_record, make_set
from tests.test_paired import _with_items


def _row(result, strategy: str, metric: str):
    return next(c for c in result.changes if c.strategy == strategy and c.metric == metric)


# ---- stats ----------------------------------------------------------------------------------------


def test_a_latency_p50_of_ten_samples_gates_and_its_tails_say_how_many_samples_they_need():
    """The p50 of 10 samples a run is a stable summary (5 beyond it would do; it needs 20 only were p50 a
    tail): a 50% slower time to first token gates. The p90 of the same 10 samples is held, and says why."""
    base = make_set(labels=("full",))
    cand = make_set(labels=("full",), scale={"latency.ttft_ms.p50": 1.5, "latency.ttft_ms.p90": 1.5})
    result = compare_records(base, cand)
    p50 = _row(result, "full", "latency.ttft_ms.p50")
    assert p50.verdict == WORSE and p50.gating and p50.held == ""
    assert ("full", "latency.ttft_ms.p50") in {(c.strategy, c.metric) for c in result.regressions}
    p90 = _row(result, "full", "latency.ttft_ms.p90")
    assert not p90.gating
    assert p90.held == "p90 of 10 samples per run is not a stable quantile (needs 100)"


@pytest.mark.parametrize(
    ("metric", "samples", "said"),
    [
        ("latency.ttft_ms.p50", 10, None),
        ("latency.ttft_ms.p90", 100, None),  # exactly 10 beyond the quantile: enough
        ("latency.ttft_ms.p90", 99, "p90 of 99 samples per run is not a stable quantile (needs 100)"),
        ("latency.ttft_ms.p99", 1000, None),  # 10 / 0.01 is 1000.0000000000001 in floats: still 1000
        ("latency.ttft_ms.p99", 999, "p99 of 999 samples per run is not a stable quantile (needs 1000)"),
    ],
)
def test_a_tail_needs_ten_samples_beyond_its_quantile_and_no_more(metric, samples, said):
    assert stats.thin_tail(metric, samples) == said


def test_the_most_specific_threshold_pattern_wins_over_a_broader_one():
    """--threshold 'latency.*=0.5' with 'latency.ttft_ms.*=0.2': the ttft metrics take 0.2."""
    by_pattern = {"latency.*": 0.5, "latency.ttft_ms.*": 0.2}
    assert stats.most_specific("latency.ttft_ms.p50", by_pattern) == 0.2
    assert stats.most_specific("latency.tpot_ms.p50", by_pattern) == 0.5
    assert stats.most_specific("train.tokens_per_s", by_pattern) is None
    base = make_set(labels=("full",))
    cand = make_set(labels=("full",), scale={"latency.ttft_ms.p50": 1.3})  # 30% slower: beyond 0.2, within 0.5
    row = _row(compare_records(base, cand, thresholds=by_pattern), "full", "latency.ttft_ms.p50")
    assert row.threshold == 0.2 and row.verdict == WORSE


def test_a_two_sided_question_three_runs_a_side_cannot_reach_alpha_and_says_so():
    """3 vs 3 runs: the smallest one-sided p is 1/20 = 0.05, so the one-sided test can decide at 0.05 and
    the two-sided one (smallest p 0.1) cannot: cannot tell, not a p of 0.1 that looks like an answer."""
    faster, slower = [4.0, 5.0, 6.0], [1.0, 2.0, 3.0]
    assert stats.differs(faster, slower, 0.05) == (True, pytest.approx(0.05))
    assert stats.differs(faster, slower, 0.05, two_sided=True) == (None, None)


def test_a_two_sided_p_is_twice_the_one_sided_p():
    faster, slower = [5.0, 6.0, 7.0, 8.0], [1.0, 2.0, 3.0, 4.0]
    assert stats.differs(faster, slower, 0.05) == (True, pytest.approx(1 / 70))
    assert stats.differs(faster, slower, 0.05, two_sided=True) == (True, pytest.approx(2 / 70))
    assert stats.differs(slower, faster, 0.05, two_sided=True) == (True, pytest.approx(2 / 70))


def _seeded(values: list[float], first_seed: int = 0) -> list[tuple[int, float]]:
    return [(first_seed + i, value) for i, value in enumerate(values)]


def test_seeds_pair_from_six_on_at_alpha_005_and_the_paired_p_is_two_sided():
    """The sign-flip test of k seeds reaches a two-sided 2 / 2^k: 0.0625 for 5 seeds (cannot pass 0.05, so the
    two-sample test of 5 vs 5 is taken), 0.031 for 6."""
    low = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    high = [value + 10 + i for i, value in enumerate(low)]
    p, design = stats.seed_test(_seeded(high[:5]), _seeded(low[:5]), 0.05)
    assert design == "5 vs 5 seeds, two-sided" and p == pytest.approx(2 / 252)
    p, design = stats.seed_test(_seeded(high), _seeded(low), 0.05)
    assert design == "paired by seed (6 seeds), two-sided" and p == pytest.approx(2 / 64)


def test_three_seeds_a_side_are_too_few_for_a_two_sided_answer():
    p, design = stats.seed_test(_seeded([4.0, 5.0, 6.0], 10), _seeded([1.0, 2.0, 3.0]), 0.05)
    assert p is None and design == "3 vs 3 seeds: too few to tell at two-sided p<=0.05"
    p, design = stats.seed_test(_seeded([5.0, 6.0, 7.0, 8.0], 10), _seeded([1.0, 2.0, 3.0, 4.0]), 0.05)
    assert design == "4 vs 4 seeds, two-sided" and p == pytest.approx(2 / 70)


def test_a_side_that_ran_a_seed_twice_is_not_paired_by_seed():
    low = _seeded([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    high = _seeded([11.0, 13.0, 15.0, 17.0, 19.0, 21.0])
    p, design = stats.seed_test([*high, (0, 12.0)], low, 0.05)
    assert design == "7 vs 6 seeds, two-sided" and p == pytest.approx(2 / 1716)


def test_a_base_model_score_that_is_not_a_number_is_not_a_diverged_training():
    """align.preference_accuracy_before is the base model's score on the pairs the seed draws (an identity), not
    what training produced: a NaN there is not tested, and it is not a diverged training (which gates as worse)."""
    metric = "align.preference_accuracy_before"

    def scored(record, value: float):
        before = Metric(value=value, unit="acc", higher_is_better=True)
        return record.model_copy(update={"metrics": {**record.metrics, metric: before}})

    base = [scored(record, 0.5) for record in make_set(labels=("full",))]
    cand = [scored(record, math.nan if record.seed == 1 else 0.5) for record in make_set(labels=("full",))]
    result = compare_records(base, cand)
    row = _row(result, "full", metric)
    assert row.verdict == MISSING and row.note == "not a number (candidate seed 1: nan): not tested"
    assert not result.failed


def test_an_exact_nonzero_difference_has_p_zero():
    """Two seeds, every item right for one strategy and wrong for the other: no spread at all, so the difference
    of 100 points is exact (p 0), not p 1."""
    before = "0" * 20
    right = [_with_items("full", seed, "1" * 20, before) for seed in (0, 1)]
    wrong = [_with_items("lora", seed, "0" * 20, before) for seed in (0, 1)]
    difference = metric_difference(right, wrong, "accuracy.cipher")
    assert difference.mean == 1.0 and difference.se == 0.0
    assert difference.p_value == 0.0 and difference.beyond_noise
    assert stats.t_p(0.05, 0.0, 3) == 0.0 and stats.t_p(0.0, 0.0, 3) == 1.0


def test_with_unlimited_degrees_of_freedom_the_p_is_the_normal_one_sided_p():
    assert stats.t_p(1.959964, 1.0, math.inf) == pytest.approx(0.025, abs=1e-6)
    assert stats.t_p(-1.959964, 1.0, math.inf) == pytest.approx(0.025, abs=1e-6)  # in the direction of the effect
    assert Interval(mean=0.1, se=0.05, items=100, seeds=2).p_value == pytest.approx(0.0455, abs=1e-4)


def test_forgetting_mean_takes_the_smallest_minimum_effect_of_its_retained_tasks():
    """--min-effect accuracy.next-letter=0.3 accuracy.copy=0.2: forgetting.mean moves by 0.2 only where one of
    them does, so it takes 0.2; with only one of its tasks given, the mean has none of its own."""
    runs = make_set(labels=("full",))
    both = {"accuracy.next-letter": 0.3, "accuracy.copy": 0.2}
    assert gate.min_effect_for("forgetting.mean", both, runs) == 0.2
    assert gate.min_effect_for("forgetting.copy", both, runs) == 0.2  # a task's forgetting: its accuracy's
    assert gate.min_effect_for("forgetting.mean", {"accuracy.copy": 0.2}, runs) is None


def test_throughput_and_training_seconds_are_one_hypothesis_of_the_family():
    """train.seconds restates train.tokens_per_s (fixed steps): with an accuracy drop the family holds two
    hypotheses, not three, and the accuracy's q and detectable effect are taken at alpha / 2."""
    accuracy = {0: (0.50, 0.45), 1: (0.60, 0.52), 2: (0.70, 0.66)}
    base = [make_record("full", seed, values={"accuracy.cipher": b}) for seed, (b, _) in accuracy.items()]
    slower = {"train.tokens_per_s": 0.7, "train.seconds": 1.43}
    cand = [make_record("full", seed, values={"accuracy.cipher": c}, scale=slower) for seed, (_, c) in accuracy.items()]
    result = compare_records(base, cand)
    row = _row(result, "full", "accuracy.cipher")
    assert row.verdict == WORSE and row.note.endswith("(95% power at alpha/2)")
    assert row.q_value == pytest.approx(2 * row.p_value)
    assert row.mde == pytest.approx(quality.minimum_detectable(row.se, row.df, 0.05 / 2))
    assert row.mde > quality.minimum_detectable(row.se, row.df, 0.05)
    assert stats.hypothesis("train.seconds") == stats.hypothesis("train.samples_per_s") == "train.tokens_per_s"


# ---- verdicts -------------------------------------------------------------------------------------


def _change(strategy: str, metric: str, verdict: str, gating: bool = True, note: str = "") -> MetricChange:
    return MetricChange(
        strategy=strategy, metric=metric, unit="tokens/s", higher_is_better=True, baseline=1.0, candidate=1.0,
        n_baseline=3, n_candidate=3, change=0.0, threshold=0.1, p_value=None, test="runs", verdict=verdict,
        gating=gating, note=note,
    )  # fmt: skip


def test_the_changes_that_matter_come_first_then_by_strategy_and_metric():
    verdicts = [SAME, MISSING, NOT_COMPARABLE, NOISE, UNKNOWN, CHANGED, BETTER, WORSE]
    changes = [_change("lora", f"m.{verdict}", verdict) for verdict in verdicts]
    changes += [_change("full", "m.z", WORSE), _change("full", "m.a", WORSE)]
    ordered = Comparison("a", "b", changes=changes).ordered()
    assert [(c.verdict, c.strategy, c.metric) for c in ordered[:3]] == [
        (WORSE, "full", "m.a"),
        (WORSE, "full", "m.z"),
        (WORSE, "lora", "m.worse"),
    ]
    assert [c.verdict for c in ordered[3:]] == [BETTER, CHANGED, UNKNOWN, NOISE, NOT_COMPARABLE, MISSING, SAME]


def test_the_json_counts_verdicts_and_names_only_gating_regressions_and_bad_input():
    held = _change("full", "latency.ttft_ms.p99", WORSE)
    held.hold("a latency tail (gate it with --fail-on)")
    changes = [
        _change("full", "train.tokens_per_s", WORSE),
        held,
        _change("full", "a", SAME),
        _change("lora", "a", SAME),
    ]
    issues = [
        RunIssue("lora", "only in baseline", "no candidate run"),
        RunIssue("full", "record disagrees with its items", "accuracy.cipher: 0.5", bad_input=True),
    ]
    data = Comparison("a", "b", changes=changes, issues=issues).to_json()
    assert data["counts"] == {WORSE: 2, SAME: 2}
    assert data["regressions"] == ["full: train.tokens_per_s"]
    assert data["bad_input"] == ["full: accuracy.cipher: 0.5"]
    assert data["failed"] is True


# ---- gate -----------------------------------------------------------------------------------------


def test_a_min_effect_on_the_command_line_wins_over_the_suites_gate():
    """--min-effect is the user's word for this comparison; the suite's gate.min_effect applies where it says
    nothing about the metric."""
    runs = [r.model_copy(update={"spec": {**r.spec, "gate": {"min_effect": {"accuracy.*": 0.5}}}}) for r in make_set()]
    assert gate.min_effect_for("accuracy.cipher", {"accuracy.cipher": 0.02}, runs) == 0.02
    assert gate.min_effect_for("gain.cipher", {"accuracy.cipher": 0.02}, runs) == 0.02  # restated: the user's
    assert gate.min_effect_for("accuracy.cipher", {"train.*": 0.2}, runs) == 0.5
    assert gate.min_effect_for("accuracy.cipher", {}, make_set()) is None


def _accuracy_row() -> MetricChange:
    row = _change("full", "accuracy.cipher", MISSING)
    row.unit, row.baseline, row.candidate = "acc", 0.5, 0.25
    return row


def test_a_quality_change_at_exactly_alpha_and_exactly_the_minimum_effect_gates():
    """3 vs 3 seeds whose runs are alike: the exact permutation p is 1/20 = alpha, which is beyond noise (p <=
    alpha), and a drop of exactly the minimum effect is not under it."""
    base = [make_record("full", seed, values={"accuracy.cipher": 0.5}) for seed in (0, 1, 2)]
    cand = [make_record("full", seed, values={"accuracy.cipher": 0.25}) for seed in (5, 6, 7)]
    row = gate.quality_verdict(_accuracy_row(), base, cand, 0.05, 0.25)
    assert row.p_value == pytest.approx(0.05) and row.effect == -0.25
    assert row.verdict == WORSE and row.threshold == 0.25
    assert row.note.startswith("-25.0 points, 90% CI -25.0 points to -25.0 points; unpaired seeds (3 vs 3 runs)")


def test_a_time_budget_note_lists_each_sides_steps_in_seed_order():
    budget = {"steps": 1000, "batch_size": 8, "seq_len": 32, "max_seconds": 0.4, "match": "seconds"}

    def timed(record, steps: int):
        spec = {**record.spec, "budget": budget}
        return record.model_copy(update={"budget": {"resolved": budget, "steps_done": steps}, "spec": spec})

    base = [timed(make_record("lora", seed), steps) for seed, steps in ((1, 91), (0, 98))]
    cand = [timed(make_record("lora", seed), steps) for seed, steps in ((1, 90), (0, 97))]
    assert gate.steps_note(base, cand) == (
        "budget matched by seconds: steps done differ (98, 91 vs 97, 90): quality depends on machine speed"
    )
    assert gate.steps_note(base, base[::-1]) is None  # the same steps per seed, in whatever order


def _loss(record, value: float):
    loss = Metric(value=value, unit="loss", higher_is_better=False)
    return record.model_copy(update={"metrics": {**record.metrics, "train.final_loss": loss}})


def test_a_loss_minimum_effect_is_a_ratio_so_five_point_one_percent_worse_gates():
    """The default minimum effect of a loss is 5% (a ratio, tested on logarithms: log 1.05 = 0.0488): a loss 5.1%
    higher on every seed (log ratio 0.0497) is beyond it, though 0.0497 is under 0.05."""
    base = [_loss(make_record("full", seed), 1.0 + 0.1 * seed) for seed in (0, 1)]
    cand = [_loss(make_record("full", seed), 1.051 * (1.0 + 0.1 * seed)) for seed in (0, 1)]
    row = _row(compare_records(base, cand), "full", "train.final_loss")
    assert row.verdict == WORSE and row.threshold == 0.05 and row.scale == "ratio"
    assert math.expm1(row.effect) == pytest.approx(0.051)
    same = [_loss(make_record("full", seed), 1.049 * (1.0 + 0.1 * seed)) for seed in (0, 1)]
    row = _row(compare_records(base, same), "full", "train.final_loss")
    assert row.verdict == SAME and "beyond noise but under the minimum effect 5.0% (+4.9%" in row.note


def test_a_hypothesis_stated_by_several_metrics_takes_their_smallest_p():
    """tokens/s 30% lower on every run (p 0.05) and training seconds up on two runs of three (p 0.2): one
    hypothesis, held to alpha with the smaller p, so the throughput regression stands."""
    base = [make_record("full", seed) for seed in range(3)]
    seconds = [1.0, 1.9, 1.95]
    cand = [
        make_record("full", seed, values={"train.seconds": seconds[seed]}, scale={"train.tokens_per_s": 0.7})
        for seed in range(3)
    ]
    result = compare_records(base, cand)
    throughput, duration = _row(result, "full", "train.tokens_per_s"), _row(result, "full", "train.seconds")
    assert duration.p_value == pytest.approx(0.2) and duration.verdict == NOISE
    assert throughput.p_value == pytest.approx(0.05) and throughput.q_value == pytest.approx(0.05)
    assert throughput.verdict == WORSE and result.failed


def _ab_row(strategy: str, p: float, change: float, verdict: str) -> MetricChange:
    """A bench ab timing row: the suite-level row (ALL_STRATEGIES) or a strategy's row under it."""
    parent = None if strategy == ALL_STRATEGIES else "train.tokens_per_s"
    return MetricChange(
        strategy, "train.tokens_per_s", "tok/s", True, 100.0, 100.0 * (1 + change), 7, 7, change, 0.1, p,
        "rounds", verdict, True, parent=parent,
    )  # fmt: skip


def test_a_strategy_row_stands_only_in_the_direction_its_suite_row_stood():
    """The suite row is slower beyond noise: a strategy slower with it gates, a strategy faster does not (the
    suite row opened the worse direction only)."""
    suite, full, lora = (
        _ab_row(ALL_STRATEGIES, 0.0078, -0.12, WORSE),
        _ab_row("full", 0.0078, -0.2, WORSE),
        _ab_row("lora", 0.0078, 0.2, BETTER),
    )
    comparison = Comparison("a", "b", [suite, full, lora])
    gate.control_family(comparison)
    assert suite.regression and full.regression
    assert lora.verdict == NOISE
    assert lora.note.startswith("p=0.0078 alone, but the all strategies row did not move better beyond noise")


def test_strategy_rows_under_a_suite_row_are_held_to_alpha_together():
    """Three strategies under a suite row that stood: p 0.0078, 0.04 and 0.9 give Benjamini-Hochberg q 0.023,
    0.06 and 0.9, so the second is noise though its p alone is under 0.05."""
    suite = _ab_row(ALL_STRATEGIES, 0.0078, -0.12, WORSE)
    full, lora, dora = (
        _ab_row("full", 0.0078, -0.2, WORSE),
        _ab_row("lora", 0.04, -0.15, WORSE),
        _ab_row("dora", 0.9, -0.01, NOISE),
    )
    comparison = Comparison("a", "b", [suite, full, lora, dora])
    gate.control_family(comparison)
    assert full.regression and full.q_value == pytest.approx(3 * 0.0078)
    assert lora.verdict == NOISE and lora.q_value == pytest.approx(0.06)
    assert lora.note.startswith("p=0.04 alone, but q=0.06 > 0.05 over the 3 strategies under it")
    assert [c.strategy for c in comparison.regressions] == [ALL_STRATEGIES, "full"]
