"""audit user18, findings 4 and 6: a kept artefact folder named the model, tokenizer, tasks and data by
absolute paths, so a copied folder failed (`Tasks not found`); and nothing scripted the base model's
accuracy that gain and forgetting need. Now reproduce.sh and reproduce_base.sh run in their own folder, the
task files name their data relative to it, and the base model is `BASE`, overridable."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.records.store import load_records
from tests.conftest import bench_cli, fast_suite, write_suite

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def moved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    """A lora run's kept folder, moved away from where the run wrote it (the original deleted)."""
    folder = tmp_path_factory.mktemp("relocate")
    suite = fast_suite(
        "relocate",
        [{"lora": {"r": 4, "alpha": 8, "learning_rate": 1.0e-2}}],
        measure={"accuracy": True, "latency": False, "throughput_warmup_steps": 1},
    )
    results = folder / "results"
    run = bench_cli(
        "run", str(write_suite(folder, suite)), "--results", str(results), "--keep-artefacts", "--no-report"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (record,) = load_records(results)
    target = folder / "elsewhere" / "copied run"  # a space in the path, too
    shutil.copytree(results / record.spec["artefacts_dir"], target)
    shutil.rmtree(results)
    return target, record


def run_script(script: Path, cwd: Path, out: Path, **env: str) -> dict:
    """Run a kept script from `cwd` with lm-eval on PATH; lm-eval's results."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    ran = subprocess.run(
        ["bash", str(script), "--output_path", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, "PATH": path, "PYTHONPATH": str(REPO), **env},
    )
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-3000:]
    (output,) = out.rglob("results*.json")
    return json.loads(output.read_text())["results"]


def test_a_moved_folders_reproduce_sh_gives_the_records_accuracy(moved, tmp_path: Path):
    folder, record = moved
    scores = run_script(folder / "reproduce.sh", tmp_path, tmp_path / "out")
    assert str(folder.parent.parent) not in "".join(p.read_text() for p in (folder / "tasks").glob("*.yaml"))
    for task in ("cipher", "next-letter"):
        name = "bench_" + task.replace("-", "_")
        assert scores[name]["acc,none"] == pytest.approx(record.metrics[f"accuracy.{task}"].value, abs=1e-9)


def test_reproduce_base_sh_gives_the_records_accuracy_before_on_the_base_named_by_base(moved, tmp_path: Path):
    """The default BASE is the folder the run loaded (reproduce.sh above uses it); a user's copy, named
    relative to where they are, replaces it."""
    folder, record = moved
    text = (folder / "reproduce_base.sh").read_text()
    assert "BASE=${BASE:-/" in text and record.model["folder"] in text and record.model["sha256"] in text, text
    assert "peft=" not in text
    shutil.copytree(REPO / record.model["folder"], tmp_path / "my copy")
    scores = run_script(folder / "reproduce_base.sh", tmp_path, tmp_path / "out", BASE="my copy")
    for task in ("cipher", "next-letter"):
        name = "bench_" + task.replace("-", "_")
        assert scores[name]["acc,none"] == pytest.approx(record.metrics[f"accuracy_before.{task}"].value, abs=1e-9)


@pytest.mark.parametrize(
    ("info", "parent", "why"),
    [
        ({"source": "config", "folder": "/x"}, None, "random weights"),
        ({"source": "hub", "folder": "local/tiny"}, None, "names no revision"),
        (
            {"source": "preset", "folder": "/x"},
            {"run_id": "parent-run", "label": "sft"},
            "chained after run parent-run",
        ),
    ],
)
def test_reproduce_base_sh_says_why_where_no_base_is_known(info, parent, why, tmp_path: Path, monkeypatch):
    from bench.run.artefacts import keep_scoring_tasks

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "kept" / "model").mkdir(parents=True)
    (tmp_path / "kept" / "model" / "config.json").write_text("{}")  # a whole model was kept
    spec = SimpleNamespace(
        parent=parent, measure=SimpleNamespace(eval_batch_size=4), model=SimpleNamespace(dtype="float32"), run_id="r"
    )
    keep_scoring_tasks(tmp_path / "kept", [], info, spec, None)
    ran = subprocess.run(["bash", str(tmp_path / "kept" / "reproduce_base.sh")], capture_output=True, text=True)
    assert ran.returncode == 1 and why in ran.stderr, ran.stdout + ran.stderr
