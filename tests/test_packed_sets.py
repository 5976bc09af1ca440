"""A result set committed packed (results/<set>/records.tar.xz) reads as its folder: `bench report SUITE`,
`bench compare` and `bench recommend` see its records, and a record also there loose counts once."""

from __future__ import annotations

import tarfile
from pathlib import Path

from bench import api
from bench.records.archives import pack
from bench.records.store import ResultStore, load_records
from tests.conftest import REPO
from tests.synthetic_records import make_record, make_set


def packed_set(tmp_path: Path, records: list) -> Path:
    """results/smoke/records.tar.xz holding records/smoke/<machine>/*.json, as the sized comparison is committed."""
    stage, root = tmp_path / "stage", tmp_path / "results"
    for record in records:
        ResultStore(stage / "records").write(record)
    (root / "smoke").mkdir(parents=True)
    pack(stage / "records", root / "smoke" / "records.tar.xz")
    return root


def run_ids(folder: Path) -> list[str]:
    return sorted(record.run_id for record in load_records(folder))


def test_a_packed_set_reads_as_its_folder_and_a_loose_copy_counts_once(tmp_path):
    records = make_set()
    root = packed_set(tmp_path, records)
    expected = sorted(record.run_id for record in records)
    assert run_ids(root / "smoke") == expected
    ResultStore(root).write(records[0])  # unpacked beside the archive: the loose copy stands for it
    assert run_ids(root / "smoke") == expected
    extra = make_record("full", 7)  # a run added after packing: read beside the packed ones
    ResultStore(root).write(extra)
    assert run_ids(root / "smoke") == sorted([*expected, extra.run_id])
    assert run_ids(root / "smoke" / "x86_64-2c-cpu") == sorted([records[0].run_id, extra.run_id])  # loose only


def test_bench_report_of_a_suite_reads_its_packed_records(tmp_path):
    records = make_set()
    root = packed_set(tmp_path, records)
    out = api.report(REPO / "suites" / "smoke.yaml", results_dir=root, out=tmp_path / "smoke.html")
    assert f"{len(records)} ok, 0 failed, 0 skipped runs" in out.read_text(encoding="utf-8")


def test_an_unreadable_archive_in_a_set_is_named_and_its_loose_records_still_read(tmp_path, capsys):
    root = tmp_path / "results"
    record = make_record("full", 0)
    ResultStore(root).write(record)
    (root / "smoke" / "records.tar.xz").write_bytes(b"not xz at all")
    assert run_ids(root / "smoke") == [record.run_id]
    assert "smoke/records.tar.xz: not a readable archive" in capsys.readouterr().err


def test_a_packed_set_below_a_folder_is_left_out_of_it_whether_or_not_it_was_unpacked(tmp_path, capsys):
    """`bench recommend results` after `scripts/validation.py unpack aa`: the experiment's repeats of the smoke
    suite (packed below, unpacked to validation/aa/records/) must not join the published smoke set."""
    root = tmp_path / "results"
    published = make_set()
    for record in published:
        ResultStore(root).write(record)
    stage = tmp_path / "stage"
    repeats = [make_record("lora", seed, values={"accuracy.cipher": 0.1}) for seed in (11, 12)]
    for record in repeats:
        ResultStore(stage / "records").write(record)
    experiment = root / "validation" / "aa"
    experiment.mkdir(parents=True)
    pack(stage / "records", experiment / "records.tar.xz")
    expected = sorted(record.run_id for record in published)
    assert run_ids(root) == expected
    with tarfile.open(experiment / "records.tar.xz") as archive:  # scripts/validation.py unpack aa
        archive.extractall(experiment, filter="data")
    assert len(list((experiment / "records").rglob("*.json"))) == len(repeats)
    capsys.readouterr()
    assert run_ids(root) == expected
    said = capsys.readouterr().err
    assert f"left out {experiment / 'records'}: unpacked from records.tar.xz beside it" in said
    assert f"(give {experiment})" in said
    both = sorted(record.run_id for record in repeats)
    assert run_ids(experiment) == both  # the experiment's own folder: its archive and its copy, counted once
    assert run_ids(experiment / "records") == both
