"""Behaviour of bench/records (store, results, migrations) that a mutation audit found no test would
notice if it broke: where records are read from and how skipped files are said, what a run's identity is, how a
record's fields read back and which schema versions load; the scrub (portable.py) is in tests/test_mutants_portable.py.
Each test fails on a named mutant of the code it names (103 mutants, 44 killed before, 4 equivalent, 55 closed by
the two files)."""

from __future__ import annotations

import json
import math
import shutil

import pandas as pd
import pytest

from bench.records import store
from bench.records.archives import pack
from bench.records.migrations import NotARecord
from bench.records.results import Hardware, TimingQuality, learned_task, parse_record, records_frame
from bench.records.store import FolderBusy, FolderLock, ResultStore, Skipped, load_records, scan_packed, scan_records
from tests.conftest import REPO
from tests.synthetic_records import CUDA_REASON, make_record, make_set
from tests.test_packed_sets import packed_set, run_ids

MACHINE = "x86_64-2c-cpu"


# bench/records/store.py


def test_a_run_not_stored_yet_reads_as_none_not_as_an_unreadable_file(tmp_path):
    """`bench run` asks for each planned run's record: a missing one is a run to execute, not a file to set aside
    as unreadable (bench/execute.py says so on stderr for every first run)."""
    record = make_record("full", 0)
    results = ResultStore(tmp_path)
    assert results.read("smoke", MACHINE, record.run_id) is None
    results.write(record)
    assert results.read("smoke", MACHINE, record.run_id).run_id == record.run_id


def test_hidden_files_and_folders_beside_the_records_are_not_read(tmp_path):
    """An editor's or a notebook's copy of a record (`.ipynb_checkpoints/`, `.x.json`) is no second run."""
    record = make_record("full", 0)
    path = ResultStore(tmp_path).write(record)
    (path.parent / ".ipynb_checkpoints").mkdir()
    shutil.copy(path, path.parent / ".ipynb_checkpoints" / path.name)
    shutil.copy(path, path.parent / f".{path.name}")
    skipped: list[Skipped] = []
    assert [one.run_id for one in load_records(tmp_path, skipped)] == [record.run_id]
    assert skipped == []


def test_kept_artefacts_and_logs_beside_the_records_are_not_read_or_said(tmp_path, capsys):
    """A kept run's model config and tokenizer files are JSON: they are no skipped record to tell about."""
    store._SAID.clear()
    record = make_record("full", 0)
    folder = ResultStore(tmp_path).write(record).parent
    for name in ("artefacts", "logs"):
        (folder / name / record.run_id).mkdir(parents=True)
        (folder / name / record.run_id / "config.json").write_text('{"model_type": "llama"}')
    skipped: list[Skipped] = []
    assert [one.run_id for one in load_records(tmp_path, skipped)] == [record.run_id]
    assert skipped == []
    assert [one.run_id for one in load_records(tmp_path)] == [record.run_id]
    assert capsys.readouterr().err == ""


def test_two_files_skipped_for_one_reason_are_named_and_three_are_one_line(tmp_path, capsys):
    store._SAID.clear()
    ResultStore(tmp_path).write(make_record("full", 0))
    two, three = tmp_path / "two", tmp_path / "three"
    for folder, count in ((two, 2), (three, 3)):
        folder.mkdir()
        for n in range(count):
            (folder / f"l{n}.json").write_text("[1]")
    assert len(list(scan_records(tmp_path))) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"bench: skipped {three / 'l0.json'} and 2 more in {three}: not a record: a JSON list",
        f"bench: skipped {two / 'l0.json'}: not a record: a JSON list",
        f"bench: skipped {two / 'l1.json'}: not a record: a JSON list",
        f"bench: 5 JSON file(s) under {tmp_path} skipped: not records",
    ]


def test_a_folder_read_again_says_nothing_new_and_the_count_is_of_the_whole_read(tmp_path, capsys):
    """A command reads a folder twice (compare A A, a report and its history): its skipped files are said once.
    A read that finds one more says that file and counts all it skipped."""
    store._SAID.clear()
    ResultStore(tmp_path).write(make_record("full", 0))
    first = tmp_path / "smoke" / MACHINE / "list.json"
    first.write_text("[1]")
    list(scan_records(tmp_path))
    assert capsys.readouterr().err.splitlines() == [
        f"bench: skipped {first}: not a record: a JSON list",
        f"bench: 1 JSON file(s) under {tmp_path} skipped: not records",
    ]
    list(scan_records(tmp_path))
    assert capsys.readouterr().err == ""
    second = tmp_path / "other.json"
    second.write_text('{"alpha": 0.05}')
    list(scan_records(tmp_path))
    assert capsys.readouterr().err.splitlines() == [
        f"bench: skipped {second}: not a record: a JSON object without run_id (keys: alpha)",
        f"bench: 2 JSON file(s) under {tmp_path} skipped: not records",
    ]


def test_a_json_file_that_cannot_be_opened_is_skipped_as_unreadable_and_damaged(tmp_path):
    ResultStore(tmp_path).write(make_record("full", 0))
    (tmp_path / "smoke" / "folder.json").mkdir()
    skipped: list[Skipped] = []
    assert len(list(scan_records(tmp_path, skipped))) == 1
    ((path, reason, damaged),) = skipped
    assert path == tmp_path / "smoke" / "folder.json" and damaged
    assert reason.startswith("unreadable: [Errno 21] Is a directory")


def test_a_rerun_at_another_time_is_another_run_beside_its_packed_namesake(tmp_path):
    """A run's identity is its id and when it began: the same spec run again later is a second run."""
    records = make_set()
    root = packed_set(tmp_path, records)
    again = records[0].model_copy(update={"started_at": "2026-11-24T09:00:00+00:00"})
    ResultStore(root).write(again)
    assert run_ids(root / "smoke") == sorted([*(record.run_id for record in records), again.run_id])


def test_a_run_in_two_archives_of_a_set_counts_once(tmp_path):
    records = make_set()
    root = packed_set(tmp_path, records)
    shutil.copy(root / "smoke" / "records.tar.xz", root / "smoke" / "older.tar.xz")
    assert run_ids(root / "smoke") == sorted(record.run_id for record in records)


def test_a_packed_record_is_named_where_it_lies_once_unpacked(tmp_path):
    """records/smoke/<machine>/<id>.json in results/smoke/records.tar.xz is results/smoke/<machine>/<id>.json."""
    records = make_set(seeds=(0,))
    root = packed_set(tmp_path, records)
    found = sorted(str(path) for path, _ in scan_packed(root / "smoke" / "records.tar.xz"))
    assert found == sorted(str(root / "smoke" / MACHINE / f"{record.run_id}.json") for record in records)


def test_a_file_skipped_inside_an_archive_is_named_by_its_member_not_the_temporary_folder(tmp_path):
    """The user has the archive, not the folder it was extracted into this once."""
    stage = tmp_path / "stage"
    ResultStore(stage / "records").write(make_record("full", 0))
    (stage / "records" / "smoke" / "list.json").write_text("[1]")
    archive = tmp_path / "records.tar.xz"
    pack(stage / "records", archive)
    skipped: list[Skipped] = []
    assert len(list(load_records(archive, skipped))) == 1
    assert [(one.path, one.reason) for one in skipped] == [
        (archive / "records" / "smoke" / "list.json", "not a record: a JSON list")
    ]


def test_a_lock_file_that_holds_no_object_still_says_the_folder_is_busy(tmp_path):
    held = FolderLock(tmp_path)
    held.acquire()
    try:
        (tmp_path / store.LOCK_NAME).write_text("[1]")  # garbled by hand or another tool
        with pytest.raises(FolderBusy, match="is locked by pid [?]") as raised:
            FolderLock(tmp_path).acquire()
        assert raised.value.holder == {}
    finally:
        held.release()


# bench/records/results.py


def test_a_hardware_fingerprint_is_the_same_string_release_after_release():
    """The fingerprint names the nightly's history files (<suite>/<fingerprint>.history.json) and groups history
    and comparisons: its slug (CPU cut to 24 characters, cores, threads, GPU count and name) and digest must not
    move, or a machine's history starts over."""
    gpus = ["NVIDIA H100 80GB HBM3"] * 2
    xeon = Hardware(
        cpu=" Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", cores=8, isa=["avx2"], gpus=gpus, torch_threads=8
    )
    assert xeon.fingerprint() == "intel-r-xeon-r-platinum--8c-8t-2x-nvidia-h100-80gb-hbm3-98097e58"
    assert Hardware(cpu="AMD EPYC", cores=2, isa=["avx2"]).fingerprint() == "amd-epyc-2c-t-unknown-cpu-7c08bfeb"


def test_the_reference_workload_is_the_mean_of_its_timings():
    """Timed before training and after the latency phase: how fast the machine was is their mean."""
    assert TimingQuality(contaminated=False, reference_seconds=[0.01, 0.03]).reference == pytest.approx(0.02)
    assert TimingQuality(contaminated=False).reference is None


def test_a_record_with_two_bad_fields_names_the_first_and_counts_the_rest():
    raw = json.loads(make_record("full", 0).model_dump_json())
    with pytest.raises(NotARecord) as raised:
        parse_record({**raw, "seed": "x", "wall_seconds": "y"})
    assert str(raised.value) == (
        "not a record: seed: Input should be a valid integer, unable to parse string as an integer (and 1 more)"
    )
    with pytest.raises(NotARecord, match=r"^not a record: environment\.cpu_count: Input should be a valid integer"):
        parse_record({**raw, "environment": {**raw["environment"], "cpu_count": "two"}})


def test_the_learned_task_is_the_first_run_that_names_one():
    """A failed run recorded before its spec was filled has no task: the set's task is still named."""
    named = make_record("full", 0)
    bare = named.model_copy(update={"spec": {**named.spec, "task": None}})
    assert learned_task([bare, named]) == "cipher"
    assert learned_task([bare]) is None


def test_the_frame_keeps_strategy_label_machine_and_why_a_metric_is_missing():
    record = make_record("lora", 0).model_copy(update={"label": "lora-r8"})
    frame = records_frame([record]).set_index("metric")
    row = frame.loc["memory.train.cuda_allocated_peak_mib"]
    assert (row["strategy"], row["label"], row["machine"]) == ("lora", "lora-r8", MACHINE)
    assert row["reason"] == CUDA_REASON and math.isnan(row["value"])
    assert frame.loc["storage.bytes", "value"] == 8000.0 and pd.isna(frame.loc["storage.bytes", "reason"])


# bench/records/migrations.py

FIXTURE_V1 = REPO / "tests" / "fixtures" / "record-schema-1.json"


def test_a_schema_1_record_keeps_its_gpus_in_the_rebuilt_hardware():
    raw = json.loads(FIXTURE_V1.read_text())
    raw["environment"]["gpus"] = ["Tesla T4"]
    assert parse_record(raw).environment.hardware.gpus == ["Tesla T4"]


def test_a_record_without_a_schema_version_is_read_as_schema_1():
    """The first records wrote no schema_version: read as schema 1, their hardware is rebuilt (not left None)."""
    raw = json.loads(FIXTURE_V1.read_text())
    del raw["schema_version"]
    loaded = parse_record(raw)
    assert loaded.schema_version == 7
    assert (loaded.environment.hardware.cpu, loaded.environment.hardware.cores) == ("AMD EPYC", 2)
    assert loaded.environment.hardware.isa is None


@pytest.mark.parametrize(("version", "said"), [(True, "True"), (0, "0"), ("7", "'7'"), (-3, "-3")])
def test_a_schema_version_that_is_no_positive_number_is_refused_by_name(version, said):
    """`true` is no version (JSON's true is Python's 1), nor 0: each is refused saying what it read."""
    raw = json.loads(FIXTURE_V1.read_text())
    with pytest.raises(NotARecord) as raised:
        parse_record({**raw, "schema_version": version})
    assert str(raised.value) == f"not a record: schema_version {said}"


def test_an_object_without_run_id_is_named_by_its_first_keys():
    """A summary or another tool's JSON: the skip line says which keys it has (five, sorted), or none."""
    with pytest.raises(NotARecord) as raised:
        parse_record({"f": 6, "b": 1, "a": 2, "c": 3, "d": 4, "e": 5, "run": 1})
    assert str(raised.value) == "not a record: a JSON object without run_id (keys: a, b, c, d, e)"
    with pytest.raises(NotARecord, match=r"^not a record: a JSON object without run_id \(keys: none\)$"):
        parse_record({})


def test_a_record_from_before_per_item_correctness_has_none():
    """items None means not measured; {} would read as measured on no task."""
    assert parse_record(json.loads(FIXTURE_V1.read_text())).items is None
