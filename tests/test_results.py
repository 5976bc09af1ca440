import json
import math
import os
from pathlib import Path

import pytest

from bench.measure import env
from bench.records.results import SCHEMA_VERSION, Metric, RunResult, parse_record
from bench.records.store import ResultStore, atomic_write_text, load_record
from tests.synthetic_records import make_record


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


FIXTURE_V1 = Path(__file__).parent / "fixtures" / "record-schema-1.json"


def test_a_schema_1_record_still_loads_with_its_hardware_rebuilt():
    """A record as the harness wrote it before the hardware fingerprint (kept verbatim as a fixture)."""
    raw = json.loads(FIXTURE_V1.read_text())
    assert raw["schema_version"] == 1 and "hardware" not in raw["environment"]
    loaded = parse_record(raw)
    assert loaded.schema_version == SCHEMA_VERSION == 7
    assert loaded.session is None  # which invocation stored it was not recorded then
    hardware = loaded.environment.hardware
    assert (hardware.cpu, hardware.cores, hardware.isa) == (raw["environment"]["cpu"], 2, None)
    assert hardware.torch_threads == raw["environment"]["torch_threads"]
    assert loaded.timing_quality is None  # not measured then; never invented
    # its SIMD extensions are unknown, so its timings never match a newer record's fingerprint
    newer = hardware.model_copy(update={"isa": env.cpu_flags()})
    assert loaded.environment.fingerprint != newer.fingerprint()


FIXTURE_V2 = Path(__file__).parent / "fixtures" / "record-schema-2.json"


def test_a_schema_2_record_loads_without_a_commit_time_and_keeps_its_fingerprint():
    raw = json.loads(FIXTURE_V2.read_text())
    assert raw["schema_version"] == 2 and "git_commit_time" not in raw["environment"]
    loaded = parse_record(raw)
    assert loaded.environment.git_commit_time is None
    assert loaded.environment.hardware.model_dump() == raw["environment"]["hardware"]


FIXTURE_V3 = Path(__file__).parent / "fixtures" / "record-schema-3.json"


def test_a_schema_3_record_loads_without_memory_components():
    """Schema 4 added `memory` (components, estimate); a record from before has none, never zeros."""
    raw = json.loads(FIXTURE_V3.read_text())
    assert raw["schema_version"] == 3 and "memory" not in raw
    loaded = parse_record(raw)
    assert loaded.memory is None
    assert loaded.metrics == parse_record(raw).metrics and "memory.train.components_mib" not in loaded.metrics


def test_new_records_carry_the_commit_time():
    environment = env.capture()
    if environment.git_commit is not None:
        assert environment.git_commit_time and environment.git_commit_time[:2] == "20"


def test_fingerprint_tells_apart_cpu_cores_threads_and_gpus():
    from bench.records.results import Hardware

    base = Hardware(cpu="AMD EPYC", cores=2, isa=["avx2"], torch_threads=2)
    variants = [
        base.model_copy(update={"cpu": "Intel Xeon"}),
        base.model_copy(update={"cores": 4}),
        base.model_copy(update={"torch_threads": 1}),
        base.model_copy(update={"isa": ["avx2", "avx512f"]}),
        base.model_copy(update={"gpus": ["NVIDIA H100 80GB HBM3"]}),
        base.model_copy(update={"cpu_capability": "AVX2"}),
    ]
    prints = {base.fingerprint(), *(variant.fingerprint() for variant in variants)}
    assert len(prints) == 7
    assert base.fingerprint().startswith("amd-epyc-2c-2t-cpu-")
    assert base.fingerprint() == Hardware(cpu="AMD EPYC", cores=2, isa=["avx2"], torch_threads=2).fingerprint()


def test_dirty_means_the_code_changed_not_the_results_or_reports(tmp_path):
    import subprocess

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(tmp_path), *args], check=True, capture_output=True)

    for name in ("bench/code.py", "reports/smoke.html", "results/smoke/run.json"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("original\n")
    git("init", "-q")
    git("add", "-A")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    assert env.git_state(tmp_path)[1] is False
    (tmp_path / "reports/smoke.html").write_text("rewritten by a run\n")
    (tmp_path / "results/smoke/run.json").write_text("appended by an experiment\n")
    assert env.git_state(tmp_path)[1] is False
    (tmp_path / "bench/code.py").write_text("changed\n")
    assert env.git_state(tmp_path)[1] is True


def test_a_diverged_runs_non_finite_values_survive_the_file(tmp_path: Path):
    """A NaN loss was written as null: the metric read back as missing (no regression to gate), and a loss
    curve point of null made the whole file 'not a record'."""
    record = make_record("full", 0, values={"train.tokens_per_s": math.inf})
    record.loss_curve[30] = record.loss_curve[30].model_copy(update={"loss": math.nan})
    record.metrics["train.final_loss"] = Metric(value=math.nan, unit="loss", higher_is_better=False)
    path = ResultStore(tmp_path).write(record)
    assert '"NaN"' in path.read_text()
    loaded = load_record(path)
    assert math.isnan(loaded.metrics["train.final_loss"].value) and math.isnan(loaded.loss_curve[30].loss)
    assert loaded.metrics["train.tokens_per_s"].value == math.inf
