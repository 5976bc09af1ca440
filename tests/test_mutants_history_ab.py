"""Behaviour of bench/analysis (variance, split_tests, history) that a mutation audit found no test would notice if
it broke: each test fails on a named mutant. bench ab's: tests/test_mutants_ab.py.

The audit's totals (2026-12-07), variance / split_tests / history / ab: 17 / 29 / 21 / 28 mutants tried, 10 / 19 /
11 / 8 killed by the suite before, 2 / 1 / 0 / 3 equivalent, 5 / 9 / 10 / 17 closed by these two files."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bench.analysis import split_tests
from bench.analysis.change_points import Point, Series, change_points
from bench.analysis.history import build, new_regressions
from bench.analysis.items import item_record, metric_difference, metric_interval
from bench.analysis.variance import sentence
from tests.synthetic_records import make_record
from tests.test_history import series
from tests.test_history_items import ITEMS, METRIC, _outcomes, _run, _series
from tests.test_mutants_quality_items import _scored_items
from tests.test_tracking_audit import write_night

IDS = [f"cipher/{i}" for i in range(6)]


def _side(label: str, outcomes: dict[int, str]) -> list:
    """One strategy's runs on the six cipher items: seed -> its outcomes after training (none right before)."""
    return [_scored_items(label, seed, IDS, after, "000000") for seed, after in outcomes.items()]


# ---- variance -------------------------------------------------------------------------------------


def test_one_seeds_interval_is_a_t_interval_with_its_items_degrees_of_freedom():
    """One seed, 4 of 6 right: se sqrt((4/3) / 5 / 6) with 5 df, so t_0.975(5) = 2.571, not the normal 1.96
    (which gave a lower bound of 0.25 and a p of 0.002)."""
    accuracy = metric_interval(_side("full", {0: "111100"}), "accuracy.cipher")
    assert accuracy.mean == pytest.approx(4 / 6) and accuracy.se == pytest.approx(math.sqrt(4 / 90))
    assert accuracy.df == 5 and accuracy.seeds == 1
    assert accuracy.low == pytest.approx(0.1247, abs=1e-4) and accuracy.high == 1.0
    assert accuracy.p_value == pytest.approx(0.0250, abs=1e-4)


def test_forgetting_mean_of_two_seeds_divides_each_tasks_item_part_by_the_tasks_squared():
    """Two seeds that forgot the same items: no seed spread, and each task's item part is (MS_item - MS_error)
    / (k n) / tasks^2 = (2/3) / 8 / 4 and (1/2) / 8 / 4 (the mean of two tasks: a quarter of each variance)."""
    entries = {
        "next-letter": item_record([f"n/{i}" for i in range(4)], "1111", "1100"),
        "copy": item_record([f"c/{i}" for i in range(4)], "1111", "1000"),
    }
    records = [make_record("full", seed).model_copy(update={"items": entries}) for seed in (0, 1)]
    forgetting = metric_interval(records, "forgetting.mean")
    assert forgetting.mean == pytest.approx(-0.625) and forgetting.seeds == 2
    assert forgetting.se == pytest.approx(math.sqrt(1 / 48 + 1 / 64))


def test_two_sides_on_other_seeds_count_only_the_item_by_side_spread_beyond_their_residuals():
    """full (seeds 0, 1) against lora (seeds 2, 3): each side's seeds scored alike (4/6 and 2/6), so each seed part
    is its residual floor MS_error / (k n) = 0.2 / 12; the per-item differences spread 1/15, under what the two
    sides' residuals explain (0.2 / 2 + 0.2 / 2): the interaction adds nothing (without the subtraction: 1/90)."""
    full = _side("full", {0: "111100", 1: "110110"})
    lora = _side("lora", {2: "110000", 3: "100100"})
    difference = metric_difference(full, lora, "accuracy.cipher")
    assert difference.mean == pytest.approx(1 / 3) and difference.seeds == 2
    assert difference.se == pytest.approx(math.sqrt(1 / 30))


def test_one_seed_against_two_keeps_every_item_difference_as_its_noise():
    """One full seed against two lora seeds: the one-seed side has no residual to subtract, and the other's is not
    subtracted either: the item differences (0, .5, 1, .5, 0, 0) carry all that is known, se sqrt((1/6) / 6)."""
    full = _side("full", {0: "111100"})
    lora = _side("lora", {2: "110000", 3: "100100"})
    difference = metric_difference(full, lora, "accuracy.cipher")
    assert difference.mean == pytest.approx(1 / 3) and difference.seeds == 1
    assert difference.se == pytest.approx(1 / 6)


def test_two_seeds_against_three_say_two_seeds():
    full = _side("full", {0: "111100", 1: "110110"})
    lora = _side("lora", {2: "110000", 3: "100100", 4: "010100"})
    difference = metric_difference(full, lora, "accuracy.cipher")
    assert difference.seeds == 2
    assert sentence(difference).startswith("with 6 items and 2 seeds, differences under")


# ---- split_tests ----------------------------------------------------------------------------------


def test_a_night_unlike_the_rest_does_not_hide_a_step_behind_it():
    """One run a night (counted from 0), a 13% drop from night 5, night 2 27% fast. A single night is no split a
    test could propose, so the scan's null leaves the one-night edges out: scanned too, the permuted outlier at an
    edge raised the null (p 0.19) and the drop was no change. p is (1 + 10 of 999 permutations) / 1000."""
    means = [100.4, 99.6, 127.4, 100.3, 98.4, 85.9, 88.3, 87.4, 83.2, 81.8]
    (change,) = change_points(series([[m] for m in means]))
    assert (change.index, change.worse) == (5, True)
    assert change.p == pytest.approx(0.011)


def _margins(nights: list[list[float]]) -> Series:
    """A DPO reward margin (nats, a difference, not a ratio) of seeds 0-4, night after night."""
    one = Series("alignment", "fp", "dpo", "align.reward_margin", "nats", True)
    for night, runs in enumerate(nights):
        one.points.append(
            Point(f"night-{night}", f"c{night}", None, f"2026-11-{night + 1:02d}", runs, seeds=[0, 1, 2, 3, 4])
        )
    return one


def test_a_negative_margin_that_rises_is_a_better_relative_shift_of_its_level():
    """-2 nats to -1: +50% of |before|, not -50% (a division by the negative level) nor +1.0 (undivided)."""
    before, after = [-2.0, -2.2, -1.8, -2.1, -1.9], [-1.0, -1.1, -0.9, -1.05, -0.95]
    (change,) = change_points(_margins([before] * 3 + [after] * 3))
    assert (change.index, change.worse, change.scale) == (3, False, "relative")
    assert change.shift == pytest.approx(0.5)
    assert (change.shift_low, change.shift_high) == pytest.approx((0.4028, 0.5972), abs=1e-4)
    assert change.shift_text == "+50.0% [+40.3%, +59.7%]"


def test_tonights_interval_off_logarithms_is_relative_to_the_level_before():
    """Tonight 80 against seven nights about 100, said relative to 100: -20% with a half-width of
    t_0.975(6) s sqrt(1 + 1/7) / 100 = 5.65 points, not 5.65 times the level."""
    before = [98.0, 101.0, 97.0, 103.0, 100.0, 99.0, 102.0]
    low, high = split_tests.tonight_interval(before, 80.0, 100.0, logs=False)
    assert (low, high) == pytest.approx((-0.2565, -0.1435), abs=1e-4)


def test_nights_that_list_their_seeds_in_another_order_are_still_one_test():
    """The runs of a night come in the order they started; the same seeds in another order make the same test."""
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0, 1, ITEMS)
    same = [_run(s, _outcomes(rng, difficulty, 1.5)) for s in range(3)]
    other = [_run(s, _outcomes(rng, difficulty, 0.0)) for s in range(3)]
    shuffled = _series([same, same[::-1], same[1:] + same[:1]] * 2 + [other, other[::-1], other[1:] + other[:1]] * 2)
    assert split_tests.distinct_tests(shuffled.points, METRIC) == 2


def test_a_night_built_without_its_records_leaves_its_side_without_an_item_level_test():
    """A series put together by hand, one night's point without the records of its runs: the side it is in has no
    newest record of each seed (its seeds' outcomes are unknown), not the other nights' records standing in."""
    rng = np.random.default_rng(2)
    difficulty = rng.normal(0, 1, ITEMS)
    same = [_run(s, _outcomes(rng, difficulty, 1.5)) for s in range(3)]
    one = _series([same] * 3)
    one.points[1].records = []
    assert split_tests.newest_records(one.points) == []
    assert [r.seed for r in split_tests.newest_records(one.points[2:])] == [0, 1, 2]


# ---- history --------------------------------------------------------------------------------------


def test_a_night_whose_runs_all_failed_is_no_night_of_the_history(tmp_path):
    """Night 9 halved full's accuracy; night 10's runs all failed (no record of theirs holds a value): it is no
    point of any series, so no newer night has passed and night 9's change is still new for --fail-on-new."""
    for night in range(1, 10):
        write_night(tmp_path, night, ("full",), scale={"accuracy.cipher": 0.5} if night == 9 else None)
    failed = tmp_path / "night-10"
    failed.mkdir()
    for seed in range(5):
        record = make_record("full", seed, status="failed", reason="RuntimeError: CUDA out of memory")
        update = {"run_id": f"full-{seed}-10", "started_at": "2026-11-10T01:00:00+00:00"}
        (failed / f"full-{seed}.json").write_text(record.model_copy(update=update).model_dump_json())
    history = build(tmp_path, metric="accuracy.cipher")
    assert list(history.nights.values()) == [9]
    assert [(s.strategy, c.index) for s, c in new_regressions(history)] == [("full", 8)]


def _folder(root, name: str, started: str, commits: dict[int, str], cpu: str = "Test CPU", label: str = "full") -> None:
    """A results folder of `label`'s runs, seed -> the commit time its record carries, on `cpu`'s machine."""
    (root / name).mkdir(parents=True, exist_ok=True)
    for seed, committed in commits.items():
        record = make_record(label, seed, cpu=cpu, timings=False)
        environment = record.environment.model_copy(update={"git_commit_time": committed})
        update = {"run_id": f"{name}-{seed}", "started_at": started, "environment": environment}
        (root / name / f"{label}-{seed}.json").write_text(record.model_copy(update=update).model_dump_json())


def test_folders_are_ordered_by_their_newest_commit_then_by_when_their_runs_began(tmp_path):
    """A folder that reused an older commit's record beside runs of a newer commit stands at the newer one; two
    folders of one commit (a nightly repeating it) stand in the order they ran, whatever their names."""
    day = "2026-11-{:02d}T01:00:00+00:00".format
    _folder(tmp_path, "c-old", day(2), {0: day(1), 1: day(1)})
    _folder(tmp_path, "a-mixed", day(6), {0: day(1), 1: day(5)})  # seed 0 reused from the commit of day 1
    _folder(tmp_path, "b-new", day(4), {0: day(3), 1: day(3)})
    _folder(tmp_path, "z-ran-first", day(8), {0: day(7), 1: day(7)})
    _folder(tmp_path, "y-ran-second", day(9), {0: day(7), 1: day(7)})
    (one,) = build(tmp_path, metric="accuracy.cipher").series
    assert [p.folder.rsplit("/", 1)[-1] for p in one.points] == [
        "c-old",
        "b-new",
        "a-mixed",
        "z-ran-first",
        "y-ran-second",
    ]
    assert [p.night for p in one.points] == [1, 2, 3, 4, 5]


def test_each_machine_numbers_its_own_nights(tmp_path):
    """Three nights on one machine, then the first on another: the other's point is its night 1, not 3, and its
    nights are counted apart (the newest night that --fail-on-new looks at is each machine's own)."""
    day = "2026-11-{:02d}T01:00:00+00:00".format
    for night in (1, 2, 3):
        _folder(tmp_path, f"cpu-{night}", day(night), {0: day(night)})
    _folder(tmp_path, "gpu-1", day(4), {0: day(4)}, cpu="Other CPU")
    history = build(tmp_path, metric="accuracy.cipher")
    nights = {s.points[0].folder.rsplit("/", 1)[-1]: [p.night for p in s.points] for s in history.series}
    assert nights == {"cpu-1": [1, 2, 3], "gpu-1": [1]}
    assert sorted(history.nights.values()) == [1, 3]


def test_a_contaminated_run_is_left_out_of_its_timing_point_and_counted(tmp_path):
    """And --json says so, with how many JSON files were not records."""
    (tmp_path / "night-01").mkdir()
    (tmp_path / "summary.json").write_text("{}")
    for seed in (0, 1, 2):
        contaminated = "train: other processes used 1.0 cores" if seed == 0 else None
        record = make_record("full", seed, contaminated=contaminated)
        (tmp_path / "night-01" / f"full-{seed}.json").write_text(record.model_dump_json())
    history = build(tmp_path)
    points = {s.metric: s.points[0] for s in history.series}
    assert (points["train.tokens_per_s"].seeds, points["train.tokens_per_s"].left_out) == ([1, 2], 1)
    assert (points["accuracy.cipher"].seeds, points["accuracy.cipher"].left_out) == ([0, 1, 2], 0)
    written = history.to_json()
    assert written["skipped_files"] == 1
    assert {s["metric"]: s["points"][0]["left_out"] for s in written["series"]}["train.tokens_per_s"] == 1


def test_metric_takes_a_pattern_and_a_point_says_when_its_first_run_began(tmp_path):
    (tmp_path / "night-01").mkdir()
    for seed, started in ((0, "2026-11-01T01:20:00+00:00"), (1, "2026-11-01T01:00:00+00:00")):
        record = make_record("full", seed).model_copy(update={"started_at": started})
        (tmp_path / "night-01" / f"full-{seed}.json").write_text(record.model_dump_json())
    history = build(tmp_path, metric="train.*")
    assert sorted(s.metric for s in history.series) == ["train.seconds", "train.tokens_per_s"]
    assert {s.points[0].started_at for s in history.series} == {"2026-11-01T01:00:00+00:00"}


def test_a_history_put_together_by_hand_takes_its_newest_night_from_every_series():
    """No build(), so no count of nights: the newest night of (suite, fingerprint) is the latest night of any of
    its series, not the first series' (a strategy dropped after night 5 would hide tonight's regression)."""
    from bench.analysis.history import History
    from tests.test_history import noisy_nights

    rng = np.random.default_rng(7)
    tonight = series(noisy_nights(rng, 7) + [[v * 0.75 for v in noisy_nights(rng, 1)[0]]])
    ended = series(noisy_nights(rng, 5))
    ended.strategy = "full"
    for one in (tonight, ended):
        for night, point in enumerate(one.points, start=1):
            point.night = night
        one.change_points = change_points(one)
    assert [(s.strategy, c.index) for s, c in new_regressions(History([ended, tonight]))] == [("lora", 7)]


def test_series_are_listed_by_suite_machine_strategy_then_metric(tmp_path):
    """lora ran alone on night 1 and full joined on night 2: full's series still come first."""
    day = "2026-11-{:02d}T01:00:00+00:00".format
    _folder(tmp_path, "night-01", day(1), {0: day(1)}, label="lora")
    _folder(tmp_path, "night-02", day(2), {0: day(2)}, label="full")
    _folder(tmp_path, "night-02", day(2), {0: day(2)}, label="lora")
    history = build(tmp_path, metric="accuracy*")
    assert list(history.nights.values()) == [2]
    assert [(s.strategy, s.metric) for s in history.series] == [
        ("full", "accuracy.cipher"),
        ("full", "accuracy_before.cipher"),
        ("lora", "accuracy.cipher"),
        ("lora", "accuracy_before.cipher"),
    ]
