"""`bench run --keep-artefacts`: the trained adapter or weights in the standard formats, the task
files, and lm-eval's own CLI on them reproducing the record's accuracy."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from bench.records.store import load_records
from tests.conftest import bench_cli, fast_suite, write_suite


@pytest.fixture(scope="module")
def kept(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("keep")
    suite = fast_suite(
        "keep",
        [{"lora": {"r": 4, "alpha": 8, "learning_rate": 1.0e-2}}, {"full": {"learning_rate": 3.0e-3}}],
        measure={"accuracy": True, "latency": False, "throughput_warmup_steps": 1},
    )
    path = write_suite(folder, suite)
    run = bench_cli("run", str(path), "--results", str(folder / "results"), "--keep-artefacts", "--no-report")
    assert run.returncode == 0, run.stdout + run.stderr
    return folder / "results"


def run_script(script: Path, out: Path) -> dict:
    """A kept reproduce.sh, run as a user would (bash, from elsewhere: it changes to its own folder, where its
    paths are relative), with this Python's lm-eval and bench first; lm-eval's results."""
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    env = {**os.environ, "PATH": path, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    ran = subprocess.run(["bash", str(script), "--output_path", str(out)], capture_output=True, text=True, env=env)
    assert ran.returncode == 0, ran.stderr[-2000:]
    (output,) = out.rglob("results*.json")
    return json.loads(output.read_text())["results"]


def test_artefacts_are_kept_beside_the_records_in_standard_formats(kept: Path):
    records = {r.label: r for r in load_records(kept)}
    for label, marker in (("lora", "adapter_config.json"), ("full", "config.json")):
        folder = kept / records[label].spec["artefacts_dir"]  # relative to the results root (schema 7)
        assert not Path(records[label].spec["artefacts_dir"]).is_absolute() and folder.name == records[label].run_id
        assert (folder / "model" / marker).is_file(), sorted(p.name for p in (folder / "model").iterdir())
        assert (folder / "tokenizer" / "tokenizer.json").is_file() and list((folder / "tasks").glob("*.yaml"))
        # storage.bytes is the kept model folder's size
        size = sum(p.stat().st_size for p in (folder / "model").rglob("*") if p.is_file())
        assert records[label].metrics["storage.bytes"].value == size


@pytest.mark.parametrize("label", ["lora", "full"])
def test_lm_eval_cli_on_the_kept_artefact_reproduces_the_record(kept: Path, label: str, tmp_path: Path):
    record = next(r for r in load_records(kept) if r.label == label)
    script = kept / record.spec["artefacts_dir"] / "reproduce.sh"
    assert shlex.split(script.read_text().splitlines()[-1])[0] == "lm_eval"
    scores = run_script(script, tmp_path / "out")
    for task in ("cipher", "next-letter"):
        name = "bench_" + task.replace("-", "_")
        assert scores[name]["acc,none"] == pytest.approx(record.metrics[f"accuracy.{task}"].value, abs=1e-9)


def test_a_generative_task_reproduces_through_lm_evals_cli_with_the_answer_filter(tmp_path: Path):
    rows = [{"prompt": "a b", "completion": " c"}]
    rows += [{"context": f"{word} {word} ", "answer": word, "id": f"g{n}"} for n, word in enumerate("abcdefgh")]
    data = tmp_path / "echo.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    echo = {"name": "echo", "source": "jsonl", "path": str(data), "generation": {"max_new_tokens": 3}}
    suite = fast_suite(
        "keep-generative",
        [{"lora": {"r": 4, "alpha": 8, "learning_rate": 1.0e-2}}],
        retain=[echo],
        measure={"accuracy": True, "latency": False, "throughput_warmup_steps": 1},
    )
    results = tmp_path / "results"
    run = bench_cli(
        "run", str(write_suite(tmp_path, suite)), "--results", str(results), "--keep-artefacts", "--no-report"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    (record,) = load_records(results)
    reached = record.model["tasks"]["echo"]["generation"]["reached_limit"]  # answers cut off at 3 tokens
    assert set(reached) == {"before", "after"} and all(0 <= reached[side] <= 8 for side in reached)
    assert "generation" not in record.model["tasks"]["cipher"]
    script = results / record.spec["artefacts_dir"] / "reproduce.sh"
    assert shlex.split(script.read_text().splitlines()[-1])[:3] == ["python", "-m", "bench.evaluate.lm_eval_cli"]
    scores = run_script(script, tmp_path / "out")
    assert scores["bench_echo"]["exact_match,extract"] == pytest.approx(record.metrics["accuracy.echo"].value, abs=1e-9)
    assert scores["bench_cipher"]["acc,none"] == pytest.approx(record.metrics["accuracy.cipher"].value, abs=1e-9)
