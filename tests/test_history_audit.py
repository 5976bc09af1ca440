"""bench history audit: repeated nights are not more seeds, and shifts are said in units that can happen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.analysis.change_points import Point, Series, _once_per_seed, change_points
from bench.analysis.history import build
from bench.analysis.split_tests import interval as _interval
from bench.records.results import Metric
from tests.synthetic_records import make_record

FAULT = {"accuracy.cipher": 0.5, "gain.cipher": 0.5}


def write_night(
    root: Path,
    night: int,
    seeds: tuple[int, ...] = (0, 1, 2),
    scale: dict[str, float] | None = None,
    values: dict[int, dict[str, float]] | None = None,
) -> None:
    """One night of lora runs, one per seed, as the nightly files them; `values`: per seed, metrics replaced."""
    folder = root / f"night-{night:02d}"
    folder.mkdir(parents=True)
    for seed in seeds:
        replaced = dict((values or {}).get(seed, {}))
        loss = replaced.pop("train.final_loss", None)
        record = make_record("lora", seed, scale=scale, values=replaced, timings=False)
        if loss is not None:
            record.metrics["train.final_loss"] = Metric(value=loss, unit="loss", higher_is_better=False)
        update = {"run_id": f"lora-{seed}-{night}", "started_at": f"2026-11-{night:02d}T01:00:{seed:02d}+00:00"}
        (folder / f"lora-{seed}.json").write_text(record.model_copy(update=update).model_dump_json())


def faulty_store(root: Path, nights: int, seeds: tuple[int, ...]) -> Path:
    """Nights 1-2 normal, nights 3 on with lora's accuracy halved: the same seeds, bit-identical, each night."""
    for night in range(1, nights + 1):
        write_night(root, night, seeds, FAULT if night >= 3 else None)
    return root


def the_change(root: Path, metric: str, alpha: float = 0.05):
    (one,) = build(root, metric=metric, alpha=alpha).series
    return one.change_points


@pytest.mark.parametrize("nights", [3, 4, 8])
def test_three_seeds_a_side_stay_three_however_many_nights_repeat_them(tmp_path, nights):
    """Before: nights 1-2 against nights 3-4 of the same three seeds gave p = 0.012 with 3 nights, 0.002 with 4
    (each repeat counted as a run). Once per seed, 3 against 3: no two-sided p below 2/20 = 0.1."""
    root = faulty_store(tmp_path, nights, (0, 1, 2))
    assert the_change(root, "accuracy.cipher") == []
    (shown,) = the_change(root, "accuracy.cipher", alpha=0.2)  # found only where alpha lets p = 0.1 through
    assert shown.p >= 0.09 and shown.index == 2


def test_five_seeds_are_found_and_repeats_do_not_sharpen_the_p_or_interval(tmp_path):
    """Five seeds a side can reach 2/252: the fault is found, with the same p and interval on any night."""
    found = [the_change(faulty_store(tmp_path / str(n), n, (0, 1, 2, 3, 4)), "accuracy.cipher") for n in (4, 8)]
    (four,), (eight,) = found
    assert four.p < 0.05 and four.p == eight.p
    assert (four.shift_low, four.shift_high) == pytest.approx((eight.shift_low, eight.shift_high))


def test_the_newest_run_of_a_seed_stands_for_it():
    older = Point("a", "c1", None, "2026-11-01", [0.1, 0.2], seeds=[0, 1])
    newer = Point("b", "c2", None, "2026-11-02", [0.5], seeds=[0])
    assert _once_per_seed([older, newer]) == [[0.2], [0.5]]  # seed 0's older value is gone
    assert _once_per_seed([older, Point("c", "c2", None, "x", [0.5, 0.6], seeds=[0, 1])]) == [[0.5, 0.6]]
    assert _once_per_seed([Point("u", None, None, "x", [1.0, 2.0])] * 2) == [[1.0, 2.0], [1.0, 2.0]]  # unknown


def test_a_rerun_of_a_seed_in_one_folder_is_one_seed_and_the_newer_run_counts(tmp_path):
    write_night(tmp_path, 1)
    folder = tmp_path / "night-01"
    rerun = make_record("lora", 0, values={"accuracy.cipher": 0.9}, timings=False)
    rerun = rerun.model_copy(update={"run_id": "lora-0-again", "started_at": "2026-11-01T02:00:00+00:00"})
    (folder / "lora-0-again.json").write_text(rerun.model_dump_json())
    (one,) = build(tmp_path, metric="accuracy.cipher").series
    (point,) = one.points
    assert sorted(point.seeds) == [0, 0, 1, 2] and point.seeds[-1] == 0 and point.runs[-1] == 0.9
    assert _once_per_seed([point])[0].count(0.9) == 1 and len(_once_per_seed([point])[0]) == 3


def test_a_one_night_drop_of_five_seeds_is_found_where_it_starts_and_ends(tmp_path):
    """Five seeds: the drop and the recovery are each 5 seeds against 5 (p about 2/252), in points."""
    for night in range(1, 9):
        write_night(tmp_path, night, (0, 1, 2, 3, 4), FAULT if night == 6 else None)
    drop, recovery = the_change(tmp_path, "accuracy.cipher")
    assert (drop.index, drop.worse, recovery.index, recovery.worse) == (5, True, 6, False)
    assert drop.scale == "points" and drop.shift == pytest.approx(-0.275, abs=0.01)
    assert recovery.shift == pytest.approx(-drop.shift, abs=0.01)


def test_a_recovery_that_tonights_few_seeds_cannot_decide_is_pending(tmp_path):
    """Tonight only seeds 0 and 1 ran: 2 against the drop night's 5 give no p below 2/21, so the recovery is
    kept unreported and the drop is sized by its own night; a full night 8 decides it."""
    for night in range(1, 8):
        write_night(tmp_path, night, (0, 1) if night == 7 else (0, 1, 2, 3, 4), FAULT if night == 6 else None)
    (drop,) = the_change(tmp_path, "accuracy.cipher")
    assert drop.index == 5 and drop.shift == pytest.approx(-0.275, abs=0.01)
    write_night(tmp_path, 8, (0, 1, 2, 3, 4))
    assert [c.index for c in the_change(tmp_path, "accuracy.cipher")] == [5, 6]


NORMAL = {"train.final_loss": [0.70, 0.72, 0.69, 0.71, 0.70], "gain.cipher": [0.57, 0.55, 0.58, 0.56, 0.59]}
NORMAL["forgetting.copy"] = [-0.18, -0.16, -0.20, -0.18, -0.17]
BROKEN = {"train.final_loss": [2.0, 5.0, 3.5, 6.0, 1.5], "gain.cipher": [0.0033, 0.01, 0.0, 0.02, 0.005]}
BROKEN["forgetting.copy"] = [0.0] * 5


def broken_night_store(root: Path) -> Path:
    """Five seeds; night 7 broken (loss x5 with a wide spread, gain about 0, no forgetting), night 8 recovered."""
    for night in range(1, 9):
        table = BROKEN if night == 7 else NORMAL
        write_night(root, night, (0, 1, 2, 3, 4), values={s: {k: v[s] for k, v in table.items()} for s in range(5)})
    return root


def test_a_loss_shift_and_its_interval_stay_above_minus_100_percent(tmp_path):
    """Before: the recovery of the loss read -80.4% [-146.6%, -14.3%]; a positive quantity cannot fall by more
    than all of it. The interval is on logarithms, and holds the shift (a ratio of geometric means)."""
    rise, fall = the_change(broken_night_store(tmp_path), "train.final_loss")
    for change in (rise, fall):
        assert change.scale == "ratio" and change.relative
        assert -1 < change.shift_low < change.shift < change.shift_high
    assert fall.shift == pytest.approx(
        np.exp(np.mean(np.log(NORMAL["train.final_loss"]) - np.log(BROKEN["train.final_loss"]))) - 1
    )


@pytest.mark.parametrize("metric", ["gain.cipher", "forgetting.copy"])
def test_accuracy_like_shifts_are_points_both_ways(tmp_path, metric):
    """Before: gain 0.57 -> 0.0076 read -98.7% [-100.4%, -96.9%] and back +7341%; forgetting -0.18 -> 0 read
    +100.0% and back '-0.178 ... from 0'. Now both steps are points, of the same size."""
    away, back = the_change(broken_night_store(tmp_path), metric)
    for change in (away, back):
        assert change.scale == "points" and not change.relative and "%" not in change.shift_text
        assert change.shift == pytest.approx(change.after - change.before)
        assert change.shift_low < change.shift < change.shift_high
    assert back.shift == pytest.approx(-away.shift)
    assert away.shift_text.endswith("]") and " points [" in away.shift_text


def test_the_cli_says_points_and_log_intervals(tmp_path, capsys):
    from bench.cli.main import main

    assert main(["history", str(broken_night_store(tmp_path))]) == 0
    out = " ".join(capsys.readouterr().out.replace("│", " ").split())  # a wrapped cell reads on
    assert "+56.2 points [+54.3, +58.2]" in out and "-17.8 points" in out  # gain back, forgetting back
    assert "-146.6%" not in out and "+7341" not in out and "+100.0%" not in out


def test_a_min_shift_is_in_points_for_accuracy_like_metrics():
    """An accuracy of 0.20 -> 0.15 is -25% but 5 points: under the default minimum shift of 10 points."""
    nights = [[0.20, 0.21, 0.19, 0.20, 0.20]] * 6 + [[0.15, 0.16, 0.14, 0.15, 0.15]] * 6
    points = [
        Point(f"n{i}", "c", None, f"2026-11-{i + 1:02d}", runs, seeds=[0, 1, 2, 3, 4]) for i, runs in enumerate(nights)
    ]
    series = Series("smoke", "fp", "lora", "accuracy.cipher", "acc", True, points)
    assert change_points(series) == []
    (change,) = change_points(series, min_shift=0.02)
    assert change.shift == pytest.approx(-0.05) and change.shift_text.startswith("-5.0 points")


def test_log_intervals_of_positive_quantities_never_pass_minus_100_percent():
    """Random positive samples, before and after a fall of up to 95%: the interval holds the shift and is above -1."""
    rng = np.random.default_rng(3)
    for _ in range(300):
        before = list(rng.lognormal(0, rng.uniform(0.05, 1.0), rng.integers(2, 8)))
        after = list(rng.lognormal(np.log(rng.uniform(0.05, 1.0)), rng.uniform(0.05, 1.0), rng.integers(2, 8)))
        low, high = _interval(before, after, "ratio")
        shift = np.exp(np.mean(np.log(after)) - np.mean(np.log(before))) - 1
        assert -1 < low <= shift <= high
