"""bench compare says what differs between the sides' runs besides what is compared (commit, packages, Python,
hardware), so a regression that came with a new PEFT is not blamed on the commit unseen."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.analysis.compare import compare_records
from bench.analysis.environment import environment_changes
from bench.cli.console import environment_lines
from tests.synthetic_records import make_set, store

ROOT = Path(__file__).resolve().parents[1]


def _with(records: list, *, packages: dict[str, str] | None = None, commit: str | None = None, dirty: bool = False):
    changed = []
    for record in records:
        env = record.environment
        update = {"git_dirty": dirty}
        if packages is not None:
            update["packages"] = {**env.packages, **packages}
        if commit is not None:
            update["git_commit"] = commit
        changed.append(record.model_copy(update={"environment": env.model_copy(update=update)}))
    return changed


def test_the_same_environment_has_no_changes():
    assert environment_changes(make_set(), make_set()) == []
    assert environment_lines(compare_records(make_set(), make_set())) == []


def test_a_new_package_and_commit_are_named_commit_first_then_packages_by_name():
    candidate = _with(make_set(), packages={"peft": "0.22.0", "transformers": "5.25.0"}, commit="def5678", dirty=True)
    changes = environment_changes(make_set(), candidate)
    assert [change.text() for change in changes] == [
        "commit abc1234 -> def5678 (with uncommitted changes)",
        "peft 0.21.2 -> 0.22.0",
    ]  # transformers: the baseline never recorded it, so no change can be told


def test_a_side_whose_runs_disagree_lists_each_value():
    mixed = make_set(seeds=(0,)) + _with(make_set(seeds=(1,)), packages={"peft": "0.22.0"})
    (change,) = environment_changes(make_set(), mixed)
    assert change.text() == "peft 0.21.2 -> 0.21.2 / 0.22.0"


def test_other_hardware_is_named_field_by_field():
    (change,) = environment_changes(make_set(), make_set(cpu="Other CPU"))
    assert change.text() == "hardware cpu Test CPU -> Other CPU"


def test_a_hardware_field_an_older_record_did_not_record_is_no_change():
    """review: the fingerprint hashes every field, so a record of an older schema (no `isa`) on the same
    machine showed as other hardware, and a regression then said 'not only the code changed'."""
    older = []
    for record in make_set():
        hardware = record.environment.hardware.model_copy(update={"isa": None})
        older.append(
            record.model_copy(update={"environment": record.environment.model_copy(update={"hardware": hardware})})
        )
    assert environment_changes(older, make_set()) == []


def test_a_regression_with_a_new_package_says_not_only_the_code_changed():
    slower = _with(make_set(scale={"accuracy.cipher": 0.5}), packages={"peft": "0.22.0"}, commit="def5678")
    result = compare_records(make_set(), slower)
    assert result.failed
    lines = environment_lines(result)
    assert lines[0] == "the sides' runs differ in: commit abc1234 -> def5678; peft 0.21.2 -> 0.22.0"
    assert lines[1].startswith("not only the code changed (peft 0.21.2 -> 0.22.0)")
    peft = {"name": "peft", "baseline": ["0.21.2"], "candidate": ["0.22.0"]}
    assert result.to_json()["environment_changes"][1] == peft


def test_a_regression_with_only_a_new_commit_blames_nothing_else():
    result = compare_records(make_set(), _with(make_set(scale={"accuracy.cipher": 0.5}), commit="def5678"))
    assert result.failed
    assert environment_lines(result) == ["the sides' runs differ in: commit abc1234 -> def5678"]


def test_bench_compare_prints_it_and_writes_it_to_json_and_html(tmp_path: Path):
    base = store(make_set(), tmp_path / "base")
    cand = store(_with(make_set(), packages={"peft": "0.22.0"}), tmp_path / "cand")
    out, page = tmp_path / "cmp.json", tmp_path / "cmp.html"
    command = [sys.executable, "-m", "bench.cli", "compare", str(base), str(cand)]
    command += ["--json", str(out), "--html", str(page)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the sides' runs differ in: peft 0.21.2 -> 0.22.0" in done.stdout
    assert json.loads(out.read_text())["environment_changes"] == [
        {"name": "peft", "baseline": ["0.21.2"], "candidate": ["0.22.0"]}
    ]
    assert "peft 0.21.2 -&gt; 0.22.0" in page.read_text()


def test_a_history_change_point_says_what_else_changed_at_it():
    """A 20% throughput step at the night PEFT changed: the change point carries `peft 0.21.2 -> 0.22.0`
    (its own commit is said beside it already); the steps without one carry nothing."""
    from bench.analysis.history import Point, Series, change_points

    old, new = {"peft": ["0.21.2"], "commit": ["a"]}, {"peft": ["0.22.0"], "commit": ["b"]}
    nights = [[100.0, 101.0, 99.0]] * 6 + [[80.0, 81.0, 79.0]] * 6
    points = [
        Point(f"night-{i}", f"c{i}", None, f"2026-11-{i + 1:02d}", runs, environment=old if i < 6 else new)
        for i, runs in enumerate(nights)
    ]
    (change,) = change_points(Series("smoke", "fp", "lora", "train.tokens_per_s", "tokens/s", True, points))
    assert change.index == 6 and change.worse
    assert change.environment == ["peft 0.21.2 -> 0.22.0"]
    same = [Point(p.folder, p.commit, None, p.started_at, p.runs, environment=old) for p in points]
    (change,) = change_points(Series("smoke", "fp", "lora", "train.tokens_per_s", "tokens/s", True, same))
    assert change.environment == []


def test_bench_history_prints_the_environment_of_a_change(tmp_path: Path):
    """Through the command: nights filed as the nightly files them, from the seventh on with a new PEFT and
    half the accuracy; `bench history` names the change with the package, in its table and its --json."""
    from tests.synthetic_records import make_record

    for night in range(10):
        worse = night >= 6
        records = [make_record("lora", seed, scale={"accuracy.cipher": 0.5} if worse else None) for seed in range(6)]
        if worse:
            records = _with(records, packages={"peft": "0.22.0"})
        folder = tmp_path / "smoke" / "fp" / f"2026-11-{night + 1:02d}"
        folder.mkdir(parents=True)
        for record in records:
            update = {"started_at": f"2026-11-{night + 1:02d}T01:00:00+00:00", "run_id": f"{night}-{record.seed}"}
            record = record.model_copy(update=update)
            (folder / f"{record.run_id}.json").write_text(record.model_dump_json())
    out = tmp_path / "history.json"
    command = [sys.executable, "-m", "bench.cli", "history", str(tmp_path), "--metric", "accuracy.cipher"]
    done = subprocess.run([*command, "--json", str(out)], capture_output=True, text=True, cwd=ROOT, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    (series,) = json.loads(out.read_text())["series"]
    assert [c["environment"] for c in series["change_points"]] == [["peft 0.21.2 -> 0.22.0"]]
    assert "environment" not in series["points"][0]  # said per change, not repeated per night
    assert "peft 0.21.2 -> 0.22.0" in " ".join(done.stdout.split())


def test_an_edited_data_file_is_named_with_its_digests():
    """audit user17: the preference file replaced between baseline and candidate, and compare named only the
    commit. The digests of the data files each run read (record model.data_sha256) are facts too."""

    def reading(records: list, sha: str) -> list:
        return [r.model_copy(update={"model": {**r.model, "data_sha256": {"preference": sha}}}) for r in records]

    (change,) = environment_changes(reading(make_set(), "a" * 64), reading(make_set(), "b" * 64))
    assert change.text() == f"data preference {'a' * 10} -> {'b' * 10}"
    assert environment_changes(reading(make_set(), "a" * 64), reading(make_set(), "a" * 64)) == []
