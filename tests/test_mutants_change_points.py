"""Guards bench history's change points (bench/analysis/change_points.py) against false alarms and missed shifts.

Mutation audit, 2026-12-07: 26 mutants tried, 15 killed by the suite, 0 equivalent, 11 closed here (the tenth of
alpha for trailing runs, three ways; the quality noise over root runs; one night a side never a means test;
the item-level p two-sided, its commit variance twice, tonight's single seed pending; worse for lower-is-better;
tails never a change; the commit left out of a change's environment).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.analysis.change_points import PENDING, Point, Series, _confirm, change_points
from tests.test_history import noisy_nights, series
from tests.test_history_audit import broken_night_store, the_change
from tests.test_history_items import ITEMS, _new_commit_each_night, _outcomes, _run, _series


def test_two_trailing_nights_tested_by_their_runs_are_held_to_a_tenth_of_alpha():
    """Six nights, then two 20% slower: two night means against six can give no p below 2/28, so their runs are
    tested against the runs before, which share their nights: p = 0.025 is no change at a tenth of alpha."""
    rng = np.random.default_rng(3)
    nights = noisy_nights(rng, 6) + [[v * 0.8 for v in night] for night in noisy_nights(rng, 2)]
    one = series(nights)
    assert change_points(one) == []
    p = _confirm(one, [0, 6, 8], 1, 0.05, 0.10)
    assert p == pytest.approx(0.025, abs=0.003)  # would pass alpha, not alpha / 10


def test_tonight_after_forty_nights_is_its_mean_against_the_night_means_before_it():
    """One night against 40 night means could just reach alpha in a permutation test (2/41), but tonight is a
    split fixed in advance: the t prediction test of its mean finds a 25% drop the scanned permutation cannot."""
    from bench.analysis.stats import prediction_p

    rng = np.random.default_rng(1)
    nights = noisy_nights(rng, 40, night_cv=0.03, run_cv=0.02) + [[74.0, 75.0, 76.0]]
    (change,) = change_points(series(nights))
    means = [sum(night) / 3 for night in nights[:40]]
    assert change.index == 40 and change.worse
    assert change.p == pytest.approx(2 * prediction_p(75.0, means, increased=False))


def test_a_rise_of_a_lower_is_better_metric_is_worse_and_its_fall_is_not(tmp_path: Path):
    rise, fall = the_change(broken_night_store(tmp_path), "train.final_loss")
    assert (rise.index, rise.worse, fall.index, fall.worse) == (6, True, 7, False)
    assert rise.shift > 0 > fall.shift


def test_tail_latencies_are_shown_never_called_a_change():
    nights = [[10.0, 10.1, 9.9]] * 8 + [[20.0, 20.1, 19.9]] * 4
    one = series(nights, "latency.generate.p99", higher_is_better=False)
    assert change_points(one) == []
    assert [c.index for c in change_points(series(nights, "latency.generate.mean", higher_is_better=False))] == [8]


def test_ten_seeds_a_15_point_drop_is_proposed_against_the_seeds_spread_over_the_root_of_the_runs():
    """Quality nights repeat exactly, so PELT's noise is the seeds' spread over the root of the runs a night (a
    night's mean of ten seeds): held to the spread of one seed, the penalty was ten times larger and PELT
    proposed nothing."""
    base = [0.80, 0.72, 0.88, 0.65, 0.95, 0.78, 0.70, 0.85, 0.60, 0.90]
    nights = [base] * 3 + [[v - 0.15 for v in base]] * 3
    points = [
        Point(f"n{i}", "c", None, f"2026-11-{i + 1:02d}", runs, seeds=list(range(10))) for i, runs in enumerate(nights)
    ]
    (change,) = change_points(Series("smoke", "fp", "lora", "accuracy.cipher", "acc", True, points))
    assert change.index == 3 and change.worse and change.scale == "points"
    assert change.shift == pytest.approx(-0.15) and change.p < 0.05


def test_tonights_item_level_p_is_two_sided_as_compare_says_it():
    """Tonight against the same commit's three seeds, by items: a 23-point drop with one-sided p 0.034 is p 0.068
    two-sided, as bench compare says it, so no change point at 0.05."""
    from bench.analysis import quality, split_tests

    rng = np.random.default_rng(5)
    difficulty = rng.normal(0, 1, ITEMS)
    good = [_run(s, _outcomes(rng, difficulty, 1.5 + rng.normal(0, 0.3))) for s in range(3)]
    bad = [_run(s, _outcomes(rng, difficulty, 0.3 + rng.normal(0, 0.3))) for s in range(3)]
    one = _series([good] * 6 + [bad])
    assert change_points(one) == []
    test = quality.quality_test(split_tests.newest_records(one.points[:6]), bad, "accuracy.cipher")
    assert 0.025 < test.p() < 0.05
    assert _confirm(one, [0, 6, 7], 1, 0.05, 0.10) == pytest.approx(2 * test.p())


def test_tonights_single_seed_after_a_drop_is_pending_and_the_drop_keeps_its_own_night():
    """Item level: one seed tonight after a one-night drop cannot be tested (no seed variance): the recovery is
    pending, not merged into the drop, which stays sized by its own night."""
    rng = np.random.default_rng(3)
    difficulty = rng.normal(0, 1, ITEMS)
    good = [_run(s, _outcomes(rng, difficulty, 1.5 + rng.normal(0, 0.3))) for s in range(3)]
    bad = [_run(s, _outcomes(rng, difficulty, -1.0 + rng.normal(0, 0.3))) for s in range(3)]
    one = _series([good] * 9 + [bad] + [good[:1]])
    assert _confirm(one, [0, 9, 10, 11], 2, 0.05, 0.10) == PENDING
    (drop,) = change_points(one)
    means = [np.mean([r.metrics["accuracy.cipher"].value for r in side]) for side in (good, bad)]
    assert drop.index == 9 and drop.worse and drop.shift == pytest.approx(means[1] - means[0])


def test_a_change_point_lists_what_else_changed_but_not_the_commit_it_already_names():
    nights = [[100.0, 101.0, 99.0], [103, 102, 104], [98, 97, 99], [101, 100, 102], [97, 98, 96], [102, 101, 103]]
    one = series([*nights, [75.0, 74.0, 76.0]])
    for i, point in enumerate(one.points):
        point.environment = {"commit": [f"c{i:03d}"], "peft": ["0.21.2" if i < 6 else "0.22.0"], "python": ["3.11.9"]}
    (change,) = change_points(one)
    assert change.index == 6 and change.commit == "c006"
    assert change.environment == ["peft 0.21.2 -> 0.22.0"]


def test_tonights_item_level_test_adds_the_commits_variance_for_both_nights():
    """A new commit every night moves every seed alike (0.3 logits): each side of tonight's split is one night of
    one commit, so the commits' variance enters the standard error twice. Counted once, tonight's drop read
    p = 0.028 and was a change point; with both nights' share it is p = 0.065."""
    from bench.analysis import split_tests

    rng = np.random.default_rng(32)
    difficulty = rng.normal(0, 1, ITEMS)
    one = _series(_new_commit_each_night(rng, difficulty, 8, drop_from=8, drop=1.0, shared=0.3))
    assert split_tests.commit_variance(one.points) == pytest.approx(0.0103, abs=0.0005)
    assert _confirm(one, [0, 7, 8], 1, 0.05, 0.10) == pytest.approx(0.065, abs=0.002)
    assert change_points(one) == []
