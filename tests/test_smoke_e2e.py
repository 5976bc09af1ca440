"""End to end: the embedded default suite, trimmed to one seed, through the real CLI."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml

from bench.records.store import load_records
from tests.conftest import REPO, bench_cli, fast_suite, write_suite
from tests.test_presets import WEIGHTS


def test_smoke_suite_end_to_end(tmp_path: Path):
    suite = yaml.safe_load((REPO / "suites" / "smoke.yaml").read_text())
    suite["seeds"] = suite["seeds"][:1]
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(suite))
    done = bench_cli("run", str(path), "--results", str(tmp_path / "results"), "--no-report")
    assert done.returncode == 0, done.stderr
    assert "run 1/2" in done.stderr or "ok" in done.stderr  # progress or the per-run summary is shown
    records = {r.label: r for r in load_records(tmp_path / "results")}
    assert set(records) == {"full", "lora"}
    for record in records.values():
        assert record.status == "ok", record.reason
        metrics = record.metrics
        for name in (
            "accuracy.cipher",
            "accuracy_before.cipher",
            "forgetting.next-letter",
            "forgetting.copy",
            "forgetting.mean",
            "train.tokens_per_s",
            "latency.ttft_ms.p50",
            "latency.decode_ms_per_token.p99",
            "memory.train.host_peak_mib",
            "storage.bytes",
        ):
            assert metrics[name].value is not None, name
        assert metrics["memory.train.cuda_allocated_peak_mib"].value is None
        assert metrics["memory.train.cuda_allocated_peak_mib"].reason
        assert record.budget["steps_done"] == suite["budget"]["steps"]
        assert record.environment.packages["torch"].startswith("2.")
        assert len(record.timings["latency.ttft_ms"].samples) == suite["measure"]["latency_repeats"]
        # what makes the numbers travel: the base weights, the hardware, and whether timing was clean
        assert record.model["sha256"] == WEIGHTS["tiny-llama"]
        assert record.environment.fingerprint and record.environment.hardware.torch_threads == 1  # tiny: 1 thread
        quality = record.timing_quality
        assert quality is not None and set(quality.phases) == {"train", "latency"}
        assert quality.step_time_spread is not None and quality.phases["train"].others_cpu is not None
        # the training's window is its steps (from the trainer's first), not preparing the model and data
        assert quality.phases["train"].seconds <= metrics["train.seconds"].value + 0.05
    # the base model knows its retained skills and not the task to learn
    base = records["full"].metrics
    assert base["accuracy_before.next-letter"].value >= 0.9 and base["accuracy_before.copy"].value >= 0.9
    assert base["accuracy_before.cipher"].value <= 0.4
    assert records["lora"].metrics["params.trainable"].value < records["full"].metrics["params.trainable"].value
    assert records["lora"].metrics["storage.bytes"].value < records["full"].metrics["storage.bytes"].value
    # the base model is scored once per suite: later runs reuse the same scores
    keys = {r.model["base_scores"]["key"] for r in records.values()}
    assert len(keys) == 1 and records["lora"].model["base_scores"]["reused_from_cache"]
    for name in ("accuracy_before.cipher", "accuracy_before.copy"):
        assert records["full"].metrics[name].value == records["lora"].metrics[name].value


def test_a_run_beside_a_busy_process_says_its_timing_is_contaminated(tmp_path: Path):
    suite = fast_suite("busy", ["full"], budget={"steps": 80, "batch_size": 8, "seq_len": 32})
    path = write_suite(tmp_path, suite)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        done = bench_cli("run", str(path), "--results", str(tmp_path / "results"), "--no-report", "--quiet")
    finally:
        busy.kill()
        busy.wait()
    assert done.returncode == 0, done.stderr
    (record,) = load_records(tmp_path / "results")
    quality = record.timing_quality
    assert quality.contaminated, quality
    assert any(reason.startswith("train: other processes used") for reason in quality.reasons), quality.reasons
