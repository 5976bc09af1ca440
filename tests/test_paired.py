"""Paired item-level statistics (bench/analysis/items.py) against simulations where the truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis.items import item_record, metric_difference, metric_interval
from bench.analysis.variance import Interval, difference, interval, seed_paired, sentence
from tests.synthetic_records import make_record

ITEMS = 150


def _runs(rng: np.random.Generator, logits: np.ndarray, seeds: int, seed_sd: float) -> list[list[float]]:
    """Seeds x items of 0/1 outcomes: item difficulty from `logits`, a per-seed shift of every item."""
    shift = rng.normal(0.0, seed_sd, size=(seeds, 1))
    probability = 1 / (1 + np.exp(-(logits[None, :] + shift)))
    return (rng.random(probability.shape) < probability).astype(float).tolist()


def _item_logits(rng: np.random.Generator, count: int) -> np.ndarray:
    p = rng.beta(2, 2, size=count)
    return np.log(p / (1 - p))


def _truth(rng: np.random.Generator, shift: float, seed_sd: float, baseline: bool = True) -> float:
    """The population value: over the distribution of items and of seeds (Monte Carlo, 10^6 draws)."""
    logits = _item_logits(rng, 1_000_000)
    noise = rng.normal(0.0, seed_sd, size=logits.size)
    shifted = 1 / (1 + np.exp(-(logits + shift + noise)))
    return float(np.mean(shifted - (1 / (1 + np.exp(-(logits + noise))) if baseline else 0.0)))


@pytest.mark.parametrize(("seeds", "seed_sd"), [(1, 0.0), (3, 0.2)])
def test_accuracy_interval_covers_the_truth_95_percent_of_the_time(seeds, seed_sd):
    rng = np.random.default_rng(seeds)
    truth = _truth(rng, 0.0, seed_sd, baseline=False)
    draws = 500
    covered = 0
    for _ in range(draws):
        estimate = interval(_runs(rng, _item_logits(rng, ITEMS), seeds, seed_sd))
        covered += estimate.low <= truth <= estimate.high
    assert 0.92 <= covered / draws <= 0.985, covered / draws


def test_paired_difference_covers_the_truth_and_mde_has_its_power():
    """Two strategies on the same items, 2 seeds each with a seed effect: the interval of their
    difference covers the true difference ~95% of the time, and a true difference equal to the
    minimum detectable effect is found ~80% of the time (power), not 50% or 99%."""
    rng = np.random.default_rng(7)
    seeds, seed_sd, draws = 2, 0.2, 400

    def draw(shift: float) -> Interval:
        logits = _item_logits(rng, ITEMS)
        return difference(_runs(rng, logits + shift, seeds, seed_sd), _runs(rng, logits, seeds, seed_sd))

    truth = _truth(rng, 0.4, seed_sd)
    estimates = [draw(0.4) for _ in range(draws)]
    coverage = sum(e.low <= truth <= e.high for e in estimates) / draws
    assert 0.91 <= coverage <= 0.985, coverage

    mde = float(np.mean([e.mde for e in estimates]))
    low, high = 0.0, 3.0
    for _ in range(20):  # the logit shift whose true difference is the MDE
        middle = (low + high) / 2
        low, high = (middle, high) if _truth(rng, middle, seed_sd) < mde else (low, middle)
    power = sum(draw(middle).beyond_noise for _ in range(draws)) / draws
    assert 0.68 <= power <= 0.9, (mde, power)


def test_seed_paired_difference_covers_the_truth_and_removes_the_shared_seed_effect():
    """Two strategies that ran the same seeds: seed k sets the data order both train on, so they share
    a per-seed shift and each adds its own wobble. Seed k against seed k, the interval covers the true
    difference ~95% of the time and is far narrower than the interval that does not pair seeds."""
    rng = np.random.default_rng(11)
    seeds, shared_sd, own_sd, draws = 3, 0.3, 0.1, 400

    def side(logits: np.ndarray, shared: np.ndarray, shift: float) -> list[list[float]]:
        total = shared + rng.normal(0.0, own_sd, size=(seeds, 1)) + shift
        probability = 1 / (1 + np.exp(-(logits[None, :] + total)))
        return (rng.random(probability.shape) < probability).astype(float).tolist()

    truth = _truth(rng, 0.4, math.hypot(shared_sd, own_sd))
    covered, widths = 0, []
    for _ in range(draws):
        logits, shared = _item_logits(rng, ITEMS), rng.normal(0.0, shared_sd, size=(seeds, 1))
        a, b = side(logits, shared, 0.4), side(logits, shared, 0.0)
        paired = seed_paired([a], [b])
        covered += paired.low <= truth <= paired.high
        widths.append(paired.se / difference(a, b).se)
    assert 0.91 <= covered / draws <= 0.985, covered / draws
    assert float(np.median(widths)) < 0.8, float(np.median(widths))


def test_pairing_beats_independent_proportions_when_items_drive_the_outcome():
    """The same items scored twice with a small true change: the paired interval is far narrower
    than two independent proportions' (which ignore that the items are shared)."""
    rng = np.random.default_rng(3)
    logits = _item_logits(rng, ITEMS) * 3  # items that are mostly always right or always wrong
    before = _runs(rng, logits, 1, 0.0)
    after = _runs(rng, logits + 0.3, 1, 0.0)
    paired = difference(after, before)
    p1, p2 = np.mean(after), np.mean(before)
    independent = math.sqrt(p1 * (1 - p1) / ITEMS + p2 * (1 - p2) / ITEMS)
    assert paired.se < 0.8 * independent


def test_one_seed_says_its_seed_variance_is_unknown():
    estimate = interval([[1, 0, 1, 1, 0, 1]])
    assert estimate.seeds == 1 and "seed" in estimate.notes[0]
    assert estimate.mean == pytest.approx(4 / 6)


def test_sentence_states_the_design_and_its_minimum_detectable_effect():
    estimate = Interval(mean=0.01, se=0.015, items=150, seeds=2)
    assert sentence(estimate) == "with 150 items and 2 seeds, differences under 4.2 points cannot be told from noise"


def _with_items(label: str, seed: int, after: str, before: str, task: str = "cipher"):
    record = make_record(label, seed)
    ids = [f"{task}/{i}" for i in range(len(after))]
    return record.model_copy(update={"items": {task: item_record(ids, before, after)}})


def test_metric_intervals_from_records_pair_before_after_and_strategies():
    before = "0000011111" * 3
    full = [_with_items("full", s, "1111111111" * 3, before) for s in (0, 1)]
    lora = [_with_items("lora", s, "0000111111" * 3, before) for s in (0, 1)]
    accuracy = metric_interval(full, "accuracy.cipher")
    gain = metric_interval(full, "gain.cipher")
    assert accuracy.mean == 1.0 and gain.mean == pytest.approx(0.5)
    diff = metric_difference(full, lora, "accuracy.cipher")
    assert diff.mean == pytest.approx(0.4) and diff.beyond_noise
    other_items = [r.model_copy(update={"items": {"cipher": {**r.items["cipher"], "ids_sha256": "x"}}}) for r in lora]
    assert metric_difference(full, other_items, "accuracy.cipher") is None  # not the same items: no pairing


def _scored(label: str, seed: int, accuracy: float, before: str, rng: np.random.Generator):
    """A run whose cipher items are correct with probability `accuracy` (its metric agrees)."""
    after = "".join("1" if x else "0" for x in rng.random(len(before)) < accuracy)
    record = _with_items(label, seed, after, before)
    metrics = dict(record.metrics)
    metrics["accuracy.cipher"] = metrics["accuracy.cipher"].model_copy(update={"value": after.count("1") / len(after)})
    return record.model_copy(update={"metrics": metrics})


def test_compare_tests_quality_by_item_and_states_the_detectable_effect():
    """bench compare on records with per-item outcomes: a 30-point accuracy drop is worse by item;
    a drop of a few points on 60 items is noise, and the note says what could have been seen."""
    from bench.analysis.compare import compare_records
    from bench.analysis.verdicts import NOISE, WORSE

    rng = np.random.default_rng(11)
    before = "".join("1" if x else "0" for x in rng.random(60) < 0.3)
    baseline = [_scored("full", s, 0.9, before, rng) for s in (0, 1, 2)]
    much_worse = [_scored("full", s, 0.6, before, rng) for s in (0, 1, 2)]
    change = next(c for c in compare_records(baseline, much_worse).changes if c.metric == "accuracy.cipher")
    assert change.test == "items" and change.verdict == WORSE and "paired by seed and item" in change.note

    def flip_two(record):  # two items this run got right, now wrong: -3.3 points on 60 items
        entry = record.items["cipher"]
        after = entry["after"].replace("1", "0", 2)
        metrics = dict(record.metrics)
        metrics["accuracy.cipher"] = metrics["accuracy.cipher"].model_copy(update={"value": after.count("1") / 60})
        return record.model_copy(update={"items": {"cipher": {**entry, "after": after}}, "metrics": metrics})

    # a small drop on other seeds: the seeds are not paired, their own spread is part of the noise
    slightly = [flip_two(_scored("full", s, 0.9, before, rng)) for s in (3, 4, 5)]
    change = next(c for c in compare_records(baseline, slightly).changes if c.metric == "accuracy.cipher")
    assert change.test == "items" and "unpaired seeds (3 vs 3 seeds x 60 items); MDE" in change.note
    assert change.verdict in (WORSE, NOISE)
    assert (change.verdict == WORSE) == (change.high < 0 and change.q_value <= 0.05)  # gate and interval agree


@pytest.mark.parametrize(("outcomes", "low", "high"), [("0" * 24, 0.0, 0.1380), ("1" * 24, 0.8620, 1.0)])
def test_an_accuracy_whose_every_outcome_is_alike_gets_a_score_interval(outcomes: str, low: float, high: float):
    """0 of 24 right read "0.0 [0.0 to 0.0]" and "detectable at 80% power >= 0.0": the spread of alike
    outcomes is 0, the uncertainty is not. Wilson's score interval (0/24: [0, 0.138])."""
    runs = [_with_items("full", 0, outcomes, "0" * 24)]
    accuracy = metric_interval(runs, "accuracy.cipher")
    assert accuracy.low == pytest.approx(low, abs=1e-4) and accuracy.high == pytest.approx(high, abs=1e-4)
    assert accuracy.mde > 0.1 and "Wilson" in accuracy.notes[-1]
    two_seeds = metric_interval([_with_items("full", s, outcomes, "0" * 24) for s in (0, 1)], "accuracy.cipher")
    assert two_seeds.high - two_seeds.low < high - low  # 48 outcomes alike: narrower, never of width 0
    mixed = metric_interval([_with_items("full", 0, "0" * 23 + "1", "0" * 24)], "accuracy.cipher")
    assert mixed.score is None  # a spread of its own: the t interval as before


def test_a_change_whose_every_item_is_alike_is_not_a_proportion():
    """forgetting.T of items right neither before nor after is 0 on every item: a difference, not a share."""
    runs = [_with_items("full", 0, "0" * 24, "0" * 24)]
    assert metric_interval(runs, "forgetting.cipher").score is None
