"""A run id hashes the spec, so a data file's path and not its contents: each record keeps what its data
files held (bench/tasks/fingerprint.py), and a stored run whose file was edited since runs again."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from bench.execute import _kept
from bench.plan import plan
from bench.records.store import ResultStore
from bench.suite import parse_suite
from bench.tasks.fingerprint import DIGEST_KEY, MISSING, changed_data, data_fingerprint, digest
from tests.conftest import fast_suite
from tests.synthetic_records import make_record

ROWS = [{"prompt": f"What is {a} + {b}?", "completion": f" {a + b}"} for a in range(6) for b in range(6)]
ROWS += [{"context": f"What is {a} + 9?", "answer": str(a + 9)} for a in range(8)]  # evaluation rows


def _write_rows(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _spec(tmp_path: Path, **overrides):
    data = _write_rows(tmp_path / "sums.jsonl", ROWS)
    task = {"name": "sums", "source": "jsonl", "path": str(data), "train_size": 24, "eval_limit": 8}
    suite = fast_suite("mine", ["full"], task=task, retain=[], **overrides)
    return plan(parse_suite(suite))[0], data


def _stored(store: ResultStore, spec, model: dict) -> None:
    record = make_record("full", 0)
    header = spec.record_header()
    store.write(record.model_copy(update={**header, "model": model}))


def test_the_fingerprint_names_roles_not_paths_and_follows_the_bytes(tmp_path: Path):
    spec, data = _spec(tmp_path, preference={"jsonl": str(_write_rows(tmp_path / "pairs.jsonl", []))})
    fingerprint = data_fingerprint(spec)
    assert set(fingerprint) == {"task:sums", "preference"}
    assert all(len(value) == 64 and str(tmp_path) not in value for value in fingerprint.values())
    _write_rows(data, ROWS[:-1])
    assert data_fingerprint(spec)["task:sums"] != fingerprint["task:sums"]
    assert data_fingerprint(spec)["preference"] == fingerprint["preference"]


def test_a_folder_digest_sees_every_file_and_a_missing_path_says_so(tmp_path: Path):
    folder = tmp_path / "saved"
    (folder / "train").mkdir(parents=True)
    (folder / "train" / "data.arrow").write_bytes(b"abc")
    before = digest(str(folder))
    (folder / "train" / "data.arrow").write_bytes(b"abd")
    assert digest(str(folder)) != before
    assert digest(str(tmp_path / "nowhere.jsonl")) == MISSING
    cache: dict[str, str] = {}
    assert digest(str(folder), cache) == cache[str(folder)] != before


def test_a_stored_run_is_reused_while_its_data_holds_and_runs_again_once_edited(tmp_path: Path, capsys):
    spec, data = _spec(tmp_path)
    store = ResultStore(tmp_path / "results")
    _stored(store, spec, {DIGEST_KEY: data_fingerprint(spec)})
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is not None
    _write_rows(data, ROWS[18:])  # the user dropped rows: same path, same run id
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is None
    said = capsys.readouterr().err
    assert "data (or plugin code) changed since its stored run: task:sums" in said and str(data) in said


def test_a_record_from_before_data_digests_is_reused_as_before(tmp_path: Path):
    spec, _ = _spec(tmp_path)
    store = ResultStore(tmp_path / "results")
    _stored(store, spec, {"source": "preset"})
    assert changed_data({"source": "preset"}, spec) == []
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}) is not None


def test_a_run_records_what_its_data_files_held(tmp_path: Path):
    """The worker, in this process, on a one-step run of a jsonl task: the record's digest is the file's."""
    from bench.run.worker import run

    spec, data = _spec(tmp_path, budget={"steps": 1, "batch_size": 2, "seq_len": 16})
    record = run(spec, "test-machine", tmp_path / "work")
    assert record.status == "ok", record.reason
    expected = hashlib.sha256(b"sums.jsonl\0" + data.read_bytes()).hexdigest()
    assert record.model[DIGEST_KEY] == {"task:sums": expected}
    assert changed_data(record.model, spec) == []
