"""Tracking over time, audited: the nightly's baseline (accepted changes, interrupted nights, options),
`bench history`'s newest change points and night numbers. The nightly runs here with its suite run
replaced by synthetic records (no training): every night is the same runs unless slowed."""

from __future__ import annotations

import datetime
import json
import sys
from pathlib import Path
from subprocess import CompletedProcess
from types import SimpleNamespace

import pytest

from bench.analysis.history import build, new_regressions
from bench.records.store import ResultStore
from tests.conftest import fast_suite, write_suite
from tests.synthetic_records import make_record
from tests.test_nightly import _load_script

SEEDS = range(6)


def night_records(night: int, labels: tuple[str, ...] = ("full",), slow: bool = False, suite: str = "smoke") -> list:
    """One night's runs: the same values every night, 20% lower throughput when `slow`."""
    scale = {"train.tokens_per_s": 0.8} if slow else {}
    update = {"session": f"night-{night}", "started_at": f"2026-11-{night:02d}T01:00:00+00:00", "suite": suite}
    return [
        make_record(label, seed, scale=scale).model_copy(update={**update, "run_id": f"{label}-{seed}-{night}"})
        for label in labels
        for seed in SEEDS
    ]


class Nightly:
    """scripts/nightly's main(), its `bench run` writing the records given to `night`, its report skipped."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str = "smoke") -> None:
        self.script, self.monkeypatch = _load_script(), monkeypatch
        self.suite = write_suite(tmp_path, fast_suite(name, ["full"]))
        self.store, self.runs = tmp_path / "store", 0
        self.records: list = []
        monkeypatch.setattr(self.script.subprocess, "run", self._run)
        self.clock = datetime.datetime(2026, 11, 1, 1, tzinfo=datetime.timezone.utc)
        clock = SimpleNamespace(now=lambda tz=None: self.clock)  # one night a day, as the store names them
        monkeypatch.setattr(self.script, "datetime", SimpleNamespace(datetime=clock, timezone=datetime.timezone))

    def _run(self, command: list[str], *args, **kwargs) -> CompletedProcess:
        if command[3] == "run":
            self.runs += 1
            results = ResultStore(command[command.index("--results") + 1])
            for record in self.records:
                results.write(record)
        return CompletedProcess(command, 0)

    def __call__(self, records: list, *options: str) -> int:
        self.records, self.clock = records, self.clock + datetime.timedelta(days=1)
        argv = ["nightly", "--suite", str(self.suite), "--store", str(self.store), *options]
        self.monkeypatch.setattr(sys, "argv", argv)
        return self.script.main()

    def nights(self) -> list[Path]:
        (fingerprint,) = [p for p in (self.store / "smoke").iterdir() if p.is_dir()]
        return sorted(p for p in fingerprint.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_an_accepted_slowdown_is_the_new_normal_for_the_nights_after_it(tmp_path, monkeypatch):
    """Before: the accepted night was pooled with the fast nights before it, so every later slow night
    was still 16% slower than that baseline, failed, stayed out of it, and the slowdown failed forever."""
    nightly = Nightly(tmp_path, monkeypatch)
    assert [nightly(night_records(n)) for n in (1, 2, 3)] == [0, 0, 0]
    assert nightly(night_records(4, slow=True)) == 1  # caught
    assert nightly(night_records(5, slow=True)) == 1  # kept out of the baseline: still failing
    nightly.script.accept(nightly.store)
    assert nightly(night_records(6, slow=True)) == 0  # accepted: the new normal
    assert nightly(night_records(7, slow=True)) == 0
    compared = json.loads((nightly.nights()[-1] / ".comparison.json").read_text())
    assert compared["baseline"] == "2 nights"  # the accepted night and the one after it, not the fast ones


def test_a_night_interrupted_before_its_comparison_stays_out_of_every_baseline(tmp_path, monkeypatch):
    """Before: the night was filed first and compared after, so a nightly killed in between left an
    unchecked night in the store, which counted as passed: a regressed night became the baseline."""
    nightly = Nightly(tmp_path, monkeypatch)
    assert nightly(night_records(1)) == nightly(night_records(2)) == 0
    import bench.analysis.compare as compare

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(compare, "compare_records", interrupted)
        with pytest.raises(KeyboardInterrupt):
            nightly(night_records(3, slow=True))
    assert nightly(night_records(4, slow=True)) == 1
    assert len(nightly.nights()) == 3  # the interrupted night is no night of the store ...
    compared = json.loads((nightly.nights()[-1] / ".comparison.json").read_text())
    assert compared["baseline"] == "2 nights"  # ... nor of the baseline
    history = build(nightly.store)
    assert {len(s.points) for s in history.series} == {3}  # nor of the history


@pytest.mark.parametrize(
    ("option", "value"), [("--window", "0"), ("--window", "-2"), ("--alpha", "0"), ("--alpha", "0.7")]
)
def test_an_option_that_cannot_work_exits_2_before_the_suite_runs(tmp_path, monkeypatch, capsys, option, value):
    """Before: --window 0 pooled every night (a slice [-0:]), --alpha 0 ran a gate that can never fail."""
    nightly = Nightly(tmp_path, monkeypatch)
    assert nightly(night_records(1), option, value) == 2
    said = capsys.readouterr().err
    assert nightly.runs == 0 and f"{option} must be" in said and value in said


def test_accept_with_a_suite_accepts_that_suites_newest_night(tmp_path, monkeypatch):
    """Before: --accept marked the newest night of the whole store, another suite's when it ran later."""
    nightly = Nightly(tmp_path, monkeypatch)
    assert nightly(night_records(1)) == 0
    other = tmp_path / "store" / "other" / "fp" / "20990101T000000Z-abc"  # a later night of another suite
    other.mkdir(parents=True)
    monkeypatch.setattr(
        sys, "argv", ["nightly", "--store", str(nightly.store), "--suite", str(nightly.suite), "--accept"]
    )
    assert nightly.script.main() == 0
    assert (nightly.nights()[-1] / ".accepted").exists() and not (other / ".accepted").exists()


SEEDS = (0, 1, 2, 3, 4)  # history tests quality once per seed: 3 a side can never reach p 0.05 (0.1 at best)


def write_night(root: Path, night: int, labels: tuple[str, ...], scale: dict[str, float] | None = None) -> None:
    folder = root / f"night-{night:02d}"
    folder.mkdir(parents=True)
    for label in labels:
        for seed in SEEDS:
            record = make_record(label, seed, scale=scale, timings=False)
            update = {"run_id": f"{label}-{seed}-{night}", "started_at": f"2026-11-{night:02d}T01:00:00+00:00"}
            (folder / f"{label}-{seed}.json").write_text(record.model_copy(update=update).model_dump_json())


def test_a_change_of_a_strategy_taken_out_of_the_suite_is_not_new_on_later_nights(tmp_path):
    """Before: `--fail-on-new` called a change new when it started at the newest point of its own
    series, so a strategy dropped after a bad night (or a metric no longer measured) failed every night."""
    for night in range(1, 9):
        write_night(tmp_path, night, ("full", "lora"))
    write_night(tmp_path, 9, ("full", "lora"), scale={"accuracy.cipher": 0.5})  # both worse on night 9
    history = build(tmp_path, metric="accuracy.cipher")
    assert sorted(s.strategy for s, _ in new_regressions(history)) == ["full", "lora"]  # new tonight
    write_night(tmp_path, 10, ("full",), scale={"accuracy.cipher": 0.5})  # lora taken out of the suite
    history = build(tmp_path, metric="accuracy.cipher")
    lora = next(s for s in history.series if s.strategy == "lora")
    assert [c.index for c in lora.change_points] == [8]  # still in its history ...
    assert not new_regressions(history)  # ... but not new: night 10 started nothing


def test_points_know_their_night_where_a_series_has_gaps(tmp_path):
    """A strategy absent on nights 3 and 4: its points are nights 1, 2, 5, 6, not 1-4 (the trend charts'
    x and the nightly's printed change points need the night, not the place in the series)."""
    for night in range(1, 7):
        write_night(tmp_path, night, ("full", "lora") if night not in (3, 4) else ("full",))
    history = build(tmp_path, metric="accuracy.cipher")
    nights = {s.strategy: [p.night for p in s.points] for s in history.series}
    assert nights == {"full": [1, 2, 3, 4, 5, 6], "lora": [1, 2, 5, 6]}
    (lora,) = [s for s in history.to_json()["series"] if s["strategy"] == "lora"]
    assert [(Path(p["folder"]).name, p["night"]) for p in lora["points"]][2] == ("night-05", 5)


def test_an_ab_run_interrupted_in_a_rerun_resumes(tmp_path, monkeypatch):
    """Before: a round set aside as contaminated, then interrupted in its rerun, was set aside again on
    resume under the same name, and the resumed A/B stopped on `Directory not empty`."""
    import bench.analysis.ab as ab
    from tests.synthetic_records import make_set, store

    tries: list[str] = []

    def fake_round(suite, folder, source, extra, only, planned, name):
        tries.append(name)
        if len(tries) == 2:
            raise KeyboardInterrupt  # the rerun of the first round, interrupted
        dirty = tries.count(name) in (1, 3)  # the first try of the round, and again once resumed
        store(make_set(seeds=(0,), contaminated="train: other processes used 1.0 cores" if dirty else None), folder)
        (folder / ".done").write_text("")

    monkeypatch.setattr(ab, "_run_round", fake_round)
    suite = write_suite(tmp_path, fast_suite("s", ["full", "lora"]))
    with pytest.raises(KeyboardInterrupt):
        ab.run_rounds(suite, tmp_path / "out", 1, max_reruns=1, say=lambda m: None)
    base, _ = ab.run_rounds(suite, tmp_path / "out", 1, max_reruns=1, say=lambda m: None)
    kept = sorted(p.name for p in (tmp_path / "out" / "baseline").iterdir())
    assert kept == ["round-1", "round-1.contaminated-1", "round-1.contaminated-2"]
    assert not ab.contaminated_round(ab.load_rounds(base)[0])


def test_an_ab_row_without_a_clean_round_pair_shows_no_p_value():
    """Before: the row said `cannot tell: every round pair contaminated` beside the p of the pooled-runs
    test, which bench ab does not make (p=0.3 on a real A/B of three contaminated rounds)."""
    from bench.analysis.ab import compare_rounds
    from tests.synthetic_records import make_set

    def round_of(side: str, number: int, speed: float) -> list:  # a contaminated round, its own session
        runs = make_set(scale={"train.tokens_per_s": speed}, contaminated="train: other processes used 1.0 cores")
        return [run.model_copy(update={"session": f"{side}-{number}"}) for run in runs]

    speeds = (1.0, 0.9, 1.1)
    base = [round_of("baseline", number, speed) for number, speed in enumerate(speeds)]
    cand = [round_of("candidate", number, speed * 0.7) for number, speed in enumerate(speeds)]
    row = next(
        c for c in compare_rounds(base, cand).changes if (c.strategy, c.metric) == ("full", "train.tokens_per_s")
    )
    assert row.held == "every one of 3 round pairs had contaminated timing"
    assert row.p_value is None and (row.n_baseline, row.n_candidate) == (0, 0)


def test_trend_charts_and_bench_history_place_a_gapped_series_at_its_nights(tmp_path, capsys):
    """lora absent on nights 3 and 4, then worse from night 6: the chart draws its points at nights
    1, 2, 5, 6, 7 (before: 1-5, so night 5 was drawn and hovered as 'night 3') and bench history
    prints the change at night 6 (before: 'point 4')."""
    from bench.cli.main import main
    from bench.report.figures import history_charts

    for night in range(1, 8):
        labels = ("full", "lora") if night not in (3, 4) else ("full",)
        write_night(tmp_path, night, labels, scale={"accuracy.cipher": 0.5} if night >= 6 else None)
    history = build(tmp_path, metric="accuracy.cipher")
    (chart,) = history_charts(history)
    assert "lora, night 5:" in chart["svg"] and "lora, night 3:" not in chart["svg"]
    assert "lora: change point at night 6" in chart["svg"]
    assert main(["history", str(tmp_path), "--metric", "accuracy.cipher"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "at night 6" in out and "at night 4" not in out


@pytest.mark.parametrize(
    ("option", "value", "said"),
    [
        ("--alpha", "0", "--alpha must be between 0 and 0.5, got 0"),
        ("--alpha", "x", "not a number: 'x'"),
        ("--min-shift", "-0.1", "--min-shift must be 0 or more, got -0.1"),
        ("--min-shift", "nan", "--min-shift must be 0 or more, got nan"),
    ],
)
def test_bench_history_refuses_an_alpha_or_shift_that_cannot_work(tmp_path, capsys, option, value, said):
    """Before: --alpha 0 silently found nothing and a negative --min-shift reported every wobble."""
    from bench.cli.main import main

    write_night(tmp_path, 1, ("full",))
    with pytest.raises(SystemExit) as exit_:
        main(["history", str(tmp_path), option, value])
    assert exit_.value.code == 2 and said in capsys.readouterr().err


def test_a_one_night_drop_is_sized_by_its_own_night_and_the_recovery_by_the_next(tmp_path):
    """lora's accuracy halves on night 6 and is back on night 7, the newest: with 5 seeds a side both
    boundaries are decided that night, and the drop is sized by night 6 alone (-50%), never by the two
    nights merged (-25%). A recovery that tonight's few seeds cannot decide is pending
    (tests/test_history_audit.py)."""
    for night in range(1, 8):
        write_night(tmp_path, night, ("full", "lora"), scale={"accuracy.cipher": 0.5} if night == 6 else None)
    lora = next(s for s in build(tmp_path, metric="accuracy.cipher").series if s.strategy == "lora")
    assert [lora.points[c.index].night for c in lora.change_points] == [6, 7]
    drop, recovery = lora.change_points
    assert drop.shift < 0 and recovery.shift > 0 and drop.shift == pytest.approx(-recovery.shift, rel=0.05)
