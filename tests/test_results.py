import json
import os
from pathlib import Path

import pytest

from bench.measure import env
from bench.results import SCHEMA_VERSION, Metric, ResultStore, RunResult, atomic_write_text, parse_record


def record(run_id: str = "abc", **changes) -> RunResult:
    fields = dict(
        run_id=run_id,
        suite="s",
        strategy="lora",
        label="lora",
        seed=0,
        status="ok",
        spec={"x": 1},
        metrics={
            "train.tokens_per_s": Metric(value=10.0, unit="tokens/s", higher_is_better=True),
            "memory.train.cuda_allocated_peak_mib": Metric.missing("MiB", False, "no CUDA device"),
        },
        environment=env.capture("test-machine"),
        started_at="t0",
        finished_at="t1",
        wall_seconds=1.0,
    )
    return RunResult(**(fields | changes))


def test_record_round_trips_and_keeps_missing_metrics_missing(tmp_path: Path):
    store = ResultStore(tmp_path)
    path = store.write(record())
    assert path == tmp_path / "s" / "test-machine" / "abc.json"
    loaded = store.read("s", "test-machine", "abc")
    assert loaded == record().model_copy(update={"environment": loaded.environment})
    missing = loaded.metrics["memory.train.cuda_allocated_peak_mib"]
    assert missing.value is None and missing.reason == "no CUDA device"


def test_atomic_write_leaves_the_old_file_when_interrupted(tmp_path: Path, monkeypatch):
    target = tmp_path / "r.json"
    atomic_write_text(target, "old")

    def crash(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_text(target, "new" * 1000)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]  # no temp file left behind


def test_records_carry_their_schema_version_and_newer_ones_are_refused():
    raw = json.loads(record().model_dump_json())
    assert raw["schema_version"] == SCHEMA_VERSION
    with pytest.raises(ValueError, match="newer"):
        parse_record(raw | {"schema_version": SCHEMA_VERSION + 1})


def test_unknown_fields_are_refused():
    raw = json.loads(record().model_dump_json())
    with pytest.raises(ValueError):
        parse_record(raw | {"surprise": 1})


def test_environment_names_machine_packages_and_git():
    environment = env.capture()
    assert environment.machine == env.machine_id()
    assert environment.cpu_count >= 1 and environment.cpu
    assert "pydantic" in environment.packages
    assert environment.git_commit is None or len(environment.git_commit) == 40
