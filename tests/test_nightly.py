"""scripts/nightly: the first night creates the baseline, later nights compare with recent history,
a regressed night stays out of the baseline until accepted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, fast_suite, write_suite


def nightly(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "nightly"), *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )


def _load_script():
    import importlib.util
    from importlib.machinery import SourceFileLoader

    loader = SourceFileLoader("nightly_script", str(REPO / "scripts" / "nightly"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader("nightly_script", loader))
    loader.exec_module(module)
    return module


def test_first_night_creates_the_baseline_and_the_second_compares(tmp_path: Path):
    suite = write_suite(tmp_path, fast_suite("nightly", ["full"], seeds=[0, 1]))
    store, reports = tmp_path / "history", tmp_path / "reports"
    first = nightly("--suite", str(suite), "--store", str(store), "--reports", str(reports))
    assert first.returncode == 0, first.stderr[-2000:]
    assert "baseline created for " in first.stdout
    second = nightly("--suite", str(suite), "--store", str(store), "--reports", str(reports))
    assert second.returncode == 0, second.stdout[-3000:]
    assert "no regression against the last night" in second.stdout
    (fingerprint,) = [p for p in (store / "nightly").iterdir() if p.is_dir()]
    nights = sorted(p for p in fingerprint.iterdir() if p.is_dir())
    assert len(nights) == 2 and all(
        len([p for p in n.glob("*.json") if not p.name.startswith(".")]) == 2 for n in nights
    )
    assert (nights[1] / ".comparison.json").exists()
    history = json.loads((store / "nightly" / f"{fingerprint.name}.history.json").read_text())
    metrics = {s["metric"] for s in history["series"]}
    page = (reports / "nightly-nightly.html").read_text()
    assert "train.final_loss" in metrics and 'id="history"' in page

    def cleanly_timed(night: Path) -> bool:
        records = [json.loads(p.read_text()) for p in night.glob("*.json") if not p.name.startswith(".")]
        return any(not (r.get("timing_quality") or {}).get("contaminated") for r in records)

    # timing series hold the cleanly timed runs only: on a busy machine a night may have none, and a
    # trend chart needs two nights with a point each
    clean = [night for night in nights if cleanly_timed(night)]
    assert ("train.tokens_per_s" in metrics) == bool(clean)
    assert ("chart-trend-train-tokens-per-s" in page) == (len(clean) == 2)

    # a night marked as regressed stays out of the baseline until accepted
    (nights[1] / ".comparison.json").write_text(json.dumps({"failed": True}))
    script = _load_script()
    assert not script.passed(nights[1]) and script.passed(nights[0])
    accepted = nightly("--store", str(store), "--accept")
    assert accepted.returncode == 0 and nights[1].name in accepted.stdout
    assert script.passed(nights[1])


def test_a_night_whose_record_contradicts_its_items_is_bad_input_not_a_regression(tmp_path: Path, capsys):
    """bench compare exits 2 on such a record; the nightly printed REGRESSION and exited 1."""
    from tests.synthetic_records import store
    from tests.test_compare_audit import TASK, _scored_set, _with

    earlier = store(_scored_set(), tmp_path / "night-1")
    tonight = _scored_set()
    tonight[0] = _with(tonight[0], **{f"accuracy__{TASK}": 0.5})
    filing = store(tonight, tmp_path / "filing")
    assert _load_script()._check(filing, tmp_path / "night-2", [earlier], 0.05) == 2
    said = capsys.readouterr().out
    assert "BAD INPUT (not a regression): full: accuracy" in said and "REGRESSION against" not in said
    assert json.loads((filing / ".comparison.json").read_text())["failed"]  # kept out of later baselines


def test_a_stores_own_history_file_is_not_read_as_a_foreign_record(tmp_path: Path, capsys):
    """bench history <store> warned twice about the <fingerprint>.history.json the nightly writes there."""
    from bench.records.store import load_records
    from tests.synthetic_records import make_set, store

    folder = store(make_set(), tmp_path / "history")
    (folder.parent / f"{folder.name}.history.json").write_text(json.dumps({"series": []}))
    (folder.parent / "other.json").write_text(json.dumps({"series": []}))
    assert len(list(load_records(tmp_path / "history"))) == 6
    said = capsys.readouterr().err
    assert "history.json" not in said and "other.json" in said  # a foreign file is still named


def test_accepting_a_night_that_passed_warns_that_it_restarts_the_baseline(tmp_path: Path, capsys):
    night = tmp_path / "store" / "smoke" / "fingerprint" / "20261207T010000-abc1234"
    night.mkdir(parents=True)
    (night / ".comparison.json").write_text(json.dumps({"failed": False}))
    assert _load_script().accept(tmp_path / "store") == 0
    said = capsys.readouterr()
    assert "warning: 20261207T010000-abc1234 passed" in said.err and "accepted" in said.out
    (night / ".comparison.json").write_text(json.dumps({"failed": True}))
    (night / ".accepted").unlink()
    assert _load_script().accept(tmp_path / "store") == 0
    assert "warning" not in capsys.readouterr().err  # a regressed night is what --accept is for
