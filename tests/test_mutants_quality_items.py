"""Behaviour of bench/analysis (quality, items, part of variance) that a mutation audit found no test would notice
if it broke: each test fails on a named mutant (the audit's totals: tests/test_mutants_analysis.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis import gate, quality
from bench.analysis.compare import compare_records
from bench.analysis.items import headline_gap, ids_digest, item_record, metric_difference, metric_interval
from bench.analysis.variance import Interval, sentence
from bench.analysis.verdicts import (
    NOISE,
    WORSE,
)
from bench.records.results import Metric
from tests.synthetic_records import make_record
from tests.test_mutants_analysis import _accuracy_row, _loss


def _row(result, strategy: str, metric: str):
    return next(c for c in result.changes if c.strategy == strategy and c.metric == metric)


# ---- quality --------------------------------------------------------------------------------------


def test_two_sides_alike_on_different_seeds_are_within_noise_with_p_one():
    """Every run of either side scored 0.5, on other seeds: no effect and no spread is p 1 (nothing moved), not
    the exact p of a design whose runs all moved alike."""
    base = [make_record("full", seed, values={"accuracy.cipher": 0.5}) for seed in (0, 1, 2)]
    cand = [make_record("full", seed, values={"accuracy.cipher": 0.5}) for seed in (5, 6, 7)]
    row = gate.quality_verdict(_accuracy_row(), base, cand, 0.05, None)
    assert row.effect == 0.0 and row.p_value == 1.0
    assert row.verdict == NOISE and row.note.startswith("within item and seed noise (+0.0 points")


def test_the_minimum_detectable_effect_is_at_95_percent_power():
    """(z_(1-level) + z_0.95) SE: 1.645 + 1.645 for a one-sided 5% level with many degrees of freedom."""
    assert quality.minimum_detectable(0.01, math.inf, 0.05) == pytest.approx(0.0329, abs=1e-4)
    assert quality.minimum_detectable(0.01, 4, 0.05) == pytest.approx(2 * 2.1318 * 0.01, abs=1e-5)


def test_a_loss_that_reaches_zero_is_compared_as_a_difference_not_a_ratio():
    """A ratio needs positive values (its logarithm): a final loss of 0.0 on a run is a plain difference."""
    base = [_loss(make_record("full", seed), value) for seed, value in ((0, 0.0), (1, 0.2))]
    cand = [_loss(make_record("full", seed), value) for seed, value in ((0, 0.5), (1, 0.8))]
    row = _row(compare_records(base, cand), "full", "train.final_loss")
    assert row.scale == "other" and row.effect == pytest.approx(0.55)
    assert row.verdict == WORSE and row.note.startswith("+0.55, 90% CI")


def test_a_loss_on_other_seeds_takes_welchs_t_with_its_degrees_of_freedom():
    """Unpaired seeds, a per-run metric: Welch's t on the log losses, as scipy computes it."""
    from scipy.stats import ttest_ind

    before, after = [1.0, 1.2, 0.9], [1.5, 1.9, 1.6]
    base = [_loss(make_record("full", seed), value) for seed, value in enumerate(before)]
    cand = [_loss(make_record("full", seed + 3), value) for seed, value in enumerate(after)]
    row = _row(compare_records(base, cand), "full", "train.final_loss")
    welch = ttest_ind(np.log(after), np.log(before), equal_var=False, alternative="greater")
    assert row.df == pytest.approx(welch.df) and row.df < 4
    assert row.p_value == pytest.approx(welch.pvalue)
    assert "unpaired seeds (3 vs 3 runs)" in row.note


def test_a_run_that_recorded_no_accuracy_is_left_out_of_the_test():
    base = [make_record("full", seed, values={"accuracy.cipher": 0.5 + 0.1 * seed}) for seed in range(3)]
    cand = [make_record("full", seed, values={"accuracy.cipher": 0.3 + 0.1 * seed}) for seed in range(3)]
    cand[2] = make_record("full", 2, values={"accuracy.cipher": None})
    row = _row(compare_records(base, cand), "full", "accuracy.cipher")
    assert (row.n_baseline, row.n_candidate) == (3, 2) and row.effect == pytest.approx(-0.25)
    assert "unpaired seeds (3 vs 2 runs)" in row.note


def test_equal_values_on_other_seeds_are_not_identical_seeds():
    """Seeds 0 and 1 against seeds 2 and 3 that happen to score the same: not one experiment repeated, so tested
    (unpaired), not "identical on each of 2 paired seeds"."""
    base = [make_record("full", seed, values={"accuracy.cipher": 0.5 + 0.1 * seed}) for seed in (0, 1)]
    cand = [make_record("full", seed + 2, values={"accuracy.cipher": 0.5 + 0.1 * seed}) for seed in (0, 1)]
    row = gate.quality_verdict(_accuracy_row(), base, cand, 0.05, None)
    assert row.test == "seeds" and row.p_value == pytest.approx(0.5) and row.verdict == NOISE
    assert "unpaired seeds (2 vs 2 runs)" in row.note


def test_seeds_that_moved_alike_but_for_float_rounding_take_the_exact_p():
    """Each of 3 seeds 4 points lower (one item of 25): the differences agree but for the last bit, and their
    spread of 4e-33 is rounding, not a variance that makes p about 0. The exact sign-flip p is 1/8."""
    base = [
        make_record("full", seed, values={"accuracy.cipher": value}) for seed, value in enumerate([0.52, 0.56, 0.6])
    ]
    cand = [
        make_record("full", seed, values={"accuracy.cipher": value}) for seed, value in enumerate([0.48, 0.52, 0.56])
    ]
    row = _row(compare_records(base, cand), "full", "accuracy.cipher")
    assert row.se == 0.0 and row.p_value == pytest.approx(1 / 8) and row.verdict == NOISE
    assert "every seed moved by as much: exact sign-flip p = 1/2^k" in row.note


# ---- items ----------------------------------------------------------------------------------------


def _scored_items(label: str, seed: int, ids: list[str], after: str, before: str):
    return make_record(label, seed).model_copy(update={"items": {"cipher": item_record(ids, before, after)}})


def test_the_same_items_in_another_order_are_not_paired_item_by_item():
    """Outcomes are paired by position: the same ids in another order are other items at each position."""
    ids = [f"cipher/{i}" for i in range(6)]
    assert ids_digest(ids) != ids_digest(ids[::-1])
    full = [_scored_items("full", seed, ids, "111000", "000000") for seed in (0, 1)]
    lora = [_scored_items("lora", seed, ids[::-1], "000111", "000000") for seed in (0, 1)]
    assert metric_difference(full, lora, "accuracy.cipher") is None
    same_order = [_scored_items("lora", seed, ids, "111000", "000000") for seed in (0, 1)]
    assert metric_difference(full, same_order, "accuracy.cipher").mean == 0.0


def test_seeds_that_scored_other_items_give_no_item_level_interval():
    ids = [f"cipher/{i}" for i in range(6)]
    runs = [_scored_items("full", 0, ids, "111000", "000000"), _scored_items("full", 1, ids[::-1], "110000", "000000")]
    assert metric_interval(runs, "accuracy.cipher") is None
    assert metric_interval([runs[0], runs[0].model_copy(update={"seed": 1})], "accuracy.cipher").mean == 0.5


def test_an_interval_needs_every_seeds_item_outcomes():
    """A run without item outcomes for the task (an older record): no item-level interval rather than one over
    the seeds that kept them."""
    ids = [f"cipher/{i}" for i in range(6)]
    kept = [_scored_items("full", seed, ids, "111000", "000000") for seed in (0, 1)]
    assert metric_interval(kept, "accuracy.cipher").seeds == 2
    assert metric_interval([*kept, make_record("full", 2)], "accuracy.cipher") is None


def test_the_base_models_score_is_read_from_the_outcomes_before_training():
    ids = [f"cipher/{i}" for i in range(4)]
    runs = [_scored_items("full", seed, ids, "1111", "1000") for seed in (0, 1)]
    assert metric_interval(runs, "accuracy_before.cipher").mean == 0.25
    assert metric_interval(runs, "accuracy.cipher").mean == 1.0


def test_forgetting_mean_needs_the_items_of_every_retained_task():
    def retained(seed: int, tasks: tuple[str, ...]):
        entries = {task: item_record([f"{task}/{i}" for i in range(4)], "1111", "1100") for task in tasks}
        return make_record("full", seed).model_copy(update={"items": entries})

    both = [retained(seed, ("next-letter", "copy")) for seed in (0, 1)]
    assert metric_interval(both, "forgetting.mean").mean == -0.5
    assert metric_interval([both[0], retained(1, ("next-letter",))], "forgetting.mean") is None


def test_a_headline_more_than_half_an_item_off_its_outcomes_is_named():
    """4 items, 2 right (0.5): a headline 0.75 of an item higher is not rounding; 0.4 of an item is."""
    ids = [f"cipher/{i}" for i in range(4)]
    record = _scored_items("full", 0, ids, "1100", "0000")

    def headed(value: float):
        metric = Metric(value=value, unit="acc", higher_is_better=True)
        return record.model_copy(update={"metrics": {**record.metrics, "accuracy.cipher": metric}})

    assert headline_gap(headed(0.5 + 0.75 / 4), "accuracy.cipher") == (0.6875, 0.5, 4)
    assert headline_gap(headed(0.5 + 0.4 / 4), "accuracy.cipher") is None


def test_forgetting_mean_weighs_its_tasks_equally_when_checked_against_its_items():
    """next-letter 2 items (-0.5), copy 6 items (-1.0): forgetting.mean is -0.75 (tasks weighted equally, as
    recorded), not -0.875 (items pooled), so the record agrees with itself."""
    entries = {
        "next-letter": item_record(["n/0", "n/1"], "11", "10"),
        "copy": item_record([f"c/{i}" for i in range(6)], "111111", "000000"),
    }
    record = make_record("full", 0, values={"forgetting.mean": -0.75}).model_copy(update={"items": entries})
    assert headline_gap(record, "forgetting.mean") is None
    pooled = make_record("full", 0, values={"forgetting.mean": -0.875}).model_copy(update={"items": entries})
    assert headline_gap(pooled, "forgetting.mean") == (-0.875, -0.75, 8)


def test_a_gain_can_be_negative_and_its_interval_says_so():
    ids = [f"cipher/{i}" for i in range(4)]
    runs = [_scored_items("full", 0, ids, "1100", "1111"), _scored_items("full", 1, ids, "1000", "1111")]
    gain = metric_interval(runs, "gain.cipher")
    assert gain.mean == -0.625 and gain.limits == (-1.0, 1.0)
    assert -1.0 <= gain.low < -0.625 < gain.high


def test_sides_that_repeat_a_seed_are_not_paired_by_seed():
    """Seeds 0, 0, 1 on both sides: not the same seeds once each, so the difference is the unpaired one, as if
    the seeds were others."""
    ids = [f"cipher/{i}" for i in range(6)]
    outcomes = {"full": ["111100", "111000", "110000"], "lora": ["100000", "110000", "111110"]}
    seeds = (0, 0, 1)

    def side(label: str, seeds: tuple[int, ...]) -> list:
        return [_scored_items(label, seed, ids, after, "000000") for seed, after in zip(seeds, outcomes[label])]

    repeated = metric_difference(side("full", seeds), side("lora", seeds), "accuracy.cipher")
    unpaired = metric_difference(side("full", seeds), side("lora", (10, 10, 11)), "accuracy.cipher")
    assert repeated.mean == pytest.approx(unpaired.mean) and repeated.se == pytest.approx(unpaired.se)
    assert repeated.df == pytest.approx(unpaired.df)


def test_seeds_pair_with_their_own_seed_whatever_order_the_runs_come_in():
    ids = [f"cipher/{i}" for i in range(6)]
    full = [_scored_items("full", seed, ids, after, "000000") for seed, after in ((0, "111100"), (1, "100000"))]
    lora = [_scored_items("lora", seed, ids, after, "000000") for seed, after in ((0, "111000"), (1, "000000"))]
    in_order = metric_difference(full, lora, "accuracy.cipher")
    assert in_order.mean == pytest.approx(1 / 6) and in_order.se == pytest.approx(0.1291, abs=1e-4)
    shuffled = metric_difference(full, lora[::-1], "accuracy.cipher")
    assert shuffled.mean == pytest.approx(in_order.mean) and shuffled.se == pytest.approx(in_order.se)


# ---- variance -------------------------------------------------------------------------------------


def test_a_difference_with_one_seed_a_side_says_its_seed_noise_is_missing():
    ids = [f"cipher/{i}" for i in range(6)]
    full = [_scored_items("full", 0, ids, "111100", "000000")]
    lora = [_scored_items("lora", 0, ids, "110000", "000000")]
    difference = metric_difference(full, lora, "accuracy.cipher")
    assert difference.mean == pytest.approx(2 / 6) and difference.seeds == 1
    assert difference.notes == ["one seed on a side: its run-to-run (seed) variance is not included"]


def test_one_seeds_forgetting_mean_averages_its_tasks_standard_errors():
    """One seed, two retained tasks of 4 items: changes (0, 0, -1, -1) and (0, -1, -1, -1), item variances
    1/12 and 1/16 of their means: the mean of the two has se sqrt(1/12 + 1/16) / 2."""
    entries = {
        "next-letter": item_record([f"n/{i}" for i in range(4)], "1111", "1100"),
        "copy": item_record([f"c/{i}" for i in range(4)], "1111", "1000"),
    }
    record = make_record("full", 0).model_copy(update={"items": entries})
    forgetting = metric_interval([record], "forgetting.mean")
    assert forgetting.mean == pytest.approx(-0.625) and forgetting.seeds == 1
    assert forgetting.se == pytest.approx(math.sqrt(1 / 12 + 1 / 16) / 2)


def test_the_detectable_effect_sentence_says_one_seed_in_the_singular():
    one = Interval(mean=0.0, se=0.01, items=150, seeds=1, df=math.inf)
    assert sentence(one) == "with 150 items and 1 seed, differences under 2.8 points cannot be told from noise"
    assert sentence(Interval(mean=0.0, se=0.01, items=150, seeds=2, df=math.inf)).startswith(
        "with 150 items and 2 seeds,"
    )
