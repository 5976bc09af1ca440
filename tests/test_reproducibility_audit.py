"""A reproducibility audit (user18): runs with a time budget (`budget.match: seconds`) did different steps
on each rerun, and neither the report, `bench run`'s lines nor `bench compare` said so; `--keep-artefacts`
on stored runs silently kept nothing; a reproduce.sh without a command never said why."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from bench.analysis.compare import compare_records
from bench.api import run_suite, selected_runs
from bench.execute import _kept
from bench.records.results import RunResult
from bench.records.store import ResultStore, load_records
from bench.report.html import render
from bench.suite import load_suite
from tests.conftest import fast_suite, write_suite
from tests.synthetic_records import make_set

SECONDS = {"steps": 1000, "batch_size": 8, "seq_len": 32, "max_seconds": 0.4, "match": "seconds"}


def timed(records: list[RunResult], steps: dict[tuple[str, int], int]) -> list[RunResult]:
    """The records as runs of a budget matched by seconds that did `steps` (label, seed) steps."""
    return [
        record.model_copy(
            update={
                "budget": {"resolved": SECONDS, "steps_done": steps[(record.label, record.seed)]},
                "spec": {**record.spec, "budget": SECONDS},
            }
        )
        for record in records
    ]


STEPS = {("full", 0): 114, ("full", 1): 114, ("lora", 0): 98, ("lora", 1): 91}


def test_the_settings_table_shows_the_steps_done_and_warns_under_a_time_budget():
    page = render(timed(make_set(seeds=(0, 1)), STEPS))
    section = re.search(r'<section id="settings">(.*?)</section>', page, re.S).group(1)
    assert "<th>steps done</th>" in section
    rows = {row.split()[0]: row for row in re.findall(r"<tr>(.*?)</tr>", section, re.S)}
    assert "98, 91 steps" in rows["<td><b>lora</b></td>"] and "114 steps" in rows["<td><b>full</b></td>"]
    warning = re.search(r'id="seconds-note">(.*?)</p>', section, re.S).group(1)
    assert "depends on the machine&#39;s speed and load" in warning
    assert "set budget.steps to its steps done (e.g. full seed 0: steps: 114)" in warning
    plain = re.search(r'<section id="settings">(.*?)</section>', render(make_set(seeds=(0, 1))), re.S).group(1)
    assert "steps done" not in plain and 'id="seconds-note"' not in plain  # a step budget: nothing to say


def test_bench_runs_lines_say_the_steps_done_under_a_time_budget():
    from bench.cli.console import print_learning_rates

    out = Console(record=True, width=300)
    print_learning_rates(timed(make_set(seeds=(0, 1)), STEPS), out, Console(record=True))
    lines = out.export_text().strip().splitlines()
    assert lines[0] == "learning rates: full 0.003, lora 0.003"
    assert lines[1].startswith("budget matched by seconds, steps done: full 114; lora 98, 91 (seeds 0, 1).")
    assert "to reproduce a run, set budget.steps to its steps done" in lines[1]


def test_compare_notes_quality_rows_whose_seconds_matched_sides_did_other_steps():
    base = timed(make_set(seeds=(0, 1)), STEPS)
    cand = timed(make_set(seeds=(0, 1)), {**STEPS, ("full", 0): 114, ("lora", 0): 97, ("lora", 1): 90})
    changes = {(c.strategy, c.metric): c for c in compare_records(base, cand).changes}
    note = "budget matched by seconds: steps done differ (98, 91 vs 97, 90): quality depends on machine speed"
    assert note in changes[("lora", "accuracy.cipher")].note and note in changes[("lora", "forgetting.mean")].note
    assert "budget matched" not in changes[("full", "accuracy.cipher")].note  # the same steps on both sides
    assert "budget matched" not in changes[("lora", "train.tokens_per_s")].note  # timing: not a quality row


def test_keep_artefacts_runs_stored_runs_again_that_kept_none(tmp_path: Path, capfd: pytest.CaptureFixture):
    suite = write_suite(tmp_path, fast_suite("keep-again", [{"lora": {"r": 4, "alpha": 8}}]))
    results = tmp_path / "results"
    assert run_suite(suite, results).executed == 1
    capfd.readouterr()
    again = run_suite(suite, results, keep_artefacts=True)
    said = capfd.readouterr().err
    assert (again.executed, again.reused) == (1, 0), said
    assert "bench: lora seed=0: --keep-artefacts, and its stored run kept none (it ran without" in said
    (record,) = load_records(results)
    folder = results / record.spec["artefacts_dir"]
    assert (folder / "model" / "adapter_config.json").is_file()
    assert run_suite(suite, results, keep_artefacts=True).reused == 1  # kept now: reused
    shutil.rmtree(folder)  # a kept folder removed since: its run is to execute again, said so
    (spec,) = selected_runs(load_suite(suite), None)
    store = ResultStore(results)
    assert _kept(store, spec, record.environment.machine, set(), {}, tell=True, keep_artefacts=True) is None
    assert f"{folder} is missing); running it again" in capfd.readouterr().err
    assert _kept(store, spec, record.environment.machine, set(), {}) is not None  # without the flag: reused


def kept_model(folder: Path, files: dict[str, str]) -> Path:
    (folder / "model").mkdir(parents=True)
    for name, text in files.items():
        (folder / "model" / name).write_text(text)
    return folder


PEFT = json.dumps({"peft_type": "LORA"})
CASES = {
    "qlora": ({"bench_quantization.json": "{}", "adapter_config.json": PEFT}, "preset", "4-bit base"),
    "freeze": ({"freeze_config.json": "{}", "trained_blocks.safetensors": ""}, "preset", "trained blocks"),
    "bitfit": ({"trained_parameters.safetensors": ""}, "preset", "BitFit: the biases"),
    "adapter": ({"adapter_config.json": json.dumps({"bottleneck": 16})}, "preset", "bottleneck adapter"),
    "hub lora": ({"adapter_config.json": PEFT}, "hub", "hub model local/tiny"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_reproduce_sh_says_why_it_has_no_command(case: str, tmp_path: Path, tiny_folder: Path):
    from bench.run.artefacts import keep_scoring_tasks

    files, source, why = CASES[case]
    folder = kept_model(tmp_path / "kept", files)
    info = {"source": source, "folder": "local/tiny" if source == "hub" else str(tiny_folder)}
    spec = SimpleNamespace(
        parent=None, measure=SimpleNamespace(eval_batch_size=4), model=SimpleNamespace(dtype="float32"), run_id="r"
    )
    keep_scoring_tasks(folder, [], info, spec, None)
    ran = subprocess.run(["bash", str(folder / "reproduce.sh")], capture_output=True, text=True, timeout=60)
    said = ran.stdout + ran.stderr
    assert ran.returncode == 1 and "this artefact has no lm-eval CLI equivalent: " in said and why in said, said


def test_the_strategies_doc_lists_every_strategy_without_an_lm_eval_line():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "strategies.md").read_text()
    said = " ".join(doc.split())
    line = said[said.index("no lm-eval CLI line") :][:200]
    assert all(f"`{name}`" in line for name in ("freeze", "qlora", "bitfit")), line


def test_a_hub_model_records_the_snapshot_it_loaded_and_reproduce_names_it(tmp_path: Path, monkeypatch):
    """audit user18: a LoRA run on a `hub:` model got no reproduce line, and its record named the weights'
    sha256 but no revision, so someone loading `hub: ID` later gets whatever is current. The record now holds
    the snapshot's commit that the load read, and the lm-eval line names it."""
    import shutil

    from bench.models.load import load_model
    from bench.models.tiny import SHIPPED
    from bench.run.artefacts import lm_eval_command
    from bench.spec import ModelSpec

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--local--tiny"
    shutil.copytree(SHIPPED / "tiny-llama", repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hub"))
    info = load_model(ModelSpec(hub="local/tiny"), "cpu", lambda message: None).info
    assert info["source"] == "hub" and info["revision"] == commit
    folder = kept_model(tmp_path / "kept", {"adapter_config.json": PEFT})
    line = lm_eval_command(folder, [], info, 4, "float32")
    assert line is not None and f"pretrained=${{BASE}},revision={commit},peft=model," in line
    preset = load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None).info
    assert "revision" not in preset  # a preset's folder and sha256 name it
