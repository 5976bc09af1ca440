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


def test_other_hardware_is_named_by_fingerprint():
    (change,) = environment_changes(make_set(), make_set(cpu="Other CPU"))
    assert change.name == "hardware"
    assert change.baseline[0].startswith("test-cpu-2c-1t-cpu-") and change.candidate[0].startswith("other-cpu-2c-")


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
