"""Readers never crash on a foreign file (issue 26 item 5, issue 24): every reader of results folders
skips JSON that is not a record (a list, a truncated or empty file, a newer schema, garbage bytes, a
folder named *.json), says which file and why, and reads the records beside them.

The property tests throw generated folders at every reader's loading path (1,000 for the loaders
the commands share, fewer through the whole commands, which render reports)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bench.analysis import history
from bench.analysis.ab import load_rounds
from bench.analysis.snapshot import load_set
from bench.cli.main import main as cli_main
from bench.records import store
from bench.records.results import SCHEMA_VERSION
from bench.records.store import ResultStore, Skipped, load_records, scan_records
from bench.report import publish
from tests.synthetic_records import make_record

RECORD = make_record("full", 0)
RECORD_TEXT = RECORD.model_dump_json(indent=2)
RECORD_RAW = json.loads(RECORD_TEXT)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def _record_with(changes: dict) -> str:
    return json.dumps({**RECORD_RAW, **changes})


foreign_texts = st.one_of(
    st.just(""),
    st.just("   \n"),
    json_values.map(json.dumps),  # lists, scalars, objects that are not records
    st.integers(1, len(RECORD_TEXT) - 1).map(lambda n: RECORD_TEXT[:n]),  # truncated records
    st.integers(SCHEMA_VERSION + 1, 10**6).map(lambda v: _record_with({"schema_version": v})),  # future schemas
    json_values.map(lambda v: _record_with({"schema_version": v})),  # nonsense versions
    st.sampled_from(sorted(RECORD_RAW)).map(lambda key: json.dumps({k: v for k, v in RECORD_RAW.items() if k != key})),
    st.tuples(st.sampled_from(sorted(RECORD_RAW)), json_values).map(lambda kv: _record_with({kv[0]: kv[1]})),
    st.just("[" * 5000 + "]" * 5000),  # deeper than the JSON parser's recursion
    st.binary(max_size=40).map(lambda b: b"\xff\xfe" + b),  # not UTF-8
)
names = st.text("abcdefgh-_0123", min_size=1, max_size=8)
folders = st.lists(st.tuples(st.lists(names, max_size=2), names, foreign_texts), min_size=1, max_size=6)


def _plant(root: Path, files: list, valid: int) -> int:
    """Write the foreign files (and `valid` real records) below root; returns how many files are foreign."""
    for index in range(valid):
        ResultStore(root).write(make_record("full", index))
    for number, (parts, name, text) in enumerate(files):
        path = root.joinpath("suite", *parts, f"{name}-{number}.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    (root / "suite" / "dir.json").mkdir(parents=True, exist_ok=True)  # a folder that only looks like JSON
    return len(files) + 1


def _valid_records(files: list) -> int:
    """Generated texts that happen to be records (a dropped default field, a value the schema accepts)."""
    count = 0
    with tempfile.TemporaryDirectory() as scratch:
        for number, (_, _, text) in enumerate(files):
            path = Path(scratch) / f"{number}.json"
            path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
            count += sum(1 for _ in scan_records(path.parent, []))
            path.unlink()
    return count


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck))
@given(files=folders, valid=st.integers(0, 2))
def test_every_loader_skips_foreign_files_and_reads_the_records(files, valid):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "results"
        foreign = _plant(root, files, valid)
        expected = valid + _valid_records(files)
        skipped: list[Skipped] = []
        found = list(load_records(root, skipped))
        assert len(found) == expected
        assert len(skipped) == foreign - (expected - valid)
        assert all(one.reason for one in skipped)
        assert len(history.build(root).series) >= (1 if valid else 0)  # history
        assert len(history.read_records(root)[0]) == expected
        assert sum(len(one.runs) for one in publish.find_sets(root)) == expected  # publish
        assert sum(map(len, load_rounds([root, root]))) == 2 * expected  # ab, nightly
        if expected:
            assert len(load_set(root)) == expected  # compare, recommend, scaling, report
        else:
            try:
                load_set(root)
            except FileNotFoundError as error:
                assert "no result records" in str(error)


NO_METRICS = json.dumps({key: value for key, value in RECORD_RAW.items() if key != "metrics"})


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(files=folders)
@example(files=[([], "0", NO_METRICS)])  # found by hypothesis: compare indexed a metric this run lacks
def test_every_command_answers_without_a_traceback(files):
    """report, compare, history, recommend, scaling and publish as the CLI runs them, in process."""
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch) / "results"
        _plant(root, files, 2)
        commands = [
            ["report", str(root), "--out", f"{scratch}/r.html"],
            ["compare", str(root), str(root)],
            ["history", str(root)],
            ["recommend", str(root), "--memory", "24GiB"],
            ["scaling", str(root), str(root)],
            ["publish", str(root), "--out", f"{scratch}/site"],
        ]
        for command in commands:  # an exception here is the traceback a user would see
            # compare: a damaged candidate is bad input; scaling: a set against itself has nothing to scale
            assert cli_main(command) in ((0, 1, 2) if command[0] in ("compare", "scaling") else (0, 1)), command


def test_the_three_files_of_the_issue_are_named_with_their_reason(tmp_path, capsys):
    root = tmp_path / "results"
    ResultStore(root).write(RECORD)
    folder = root / "smoke" / RECORD.environment.machine
    (folder / "list.json").write_text("[1, 2]")
    (folder / "truncated.json").write_text(RECORD_TEXT[:300])
    (folder / "future.json").write_text(_record_with({"schema_version": 99}))
    for command in (
        ["report", str(root), "--out", str(tmp_path / "r.html")],
        ["compare", str(root), str(root)],
        ["history", str(root)],
        ["recommend", str(root), "--memory", "24GiB"],
    ):
        # compare: a damaged candidate record is bad input (exit 2, named), the others go on without it
        assert cli_main(command) == 2 if command[0] == "compare" else cli_main(command) in (0, 1), command
        err = capsys.readouterr().err
        assert f"skipped {folder / 'list.json'}: not a record: a JSON list" in err, command
        assert f"skipped {folder / 'truncated.json'}: not JSON (truncated?)" in err, command
        assert f"skipped {folder / 'future.json'}: schema_version 99 is newer than this harness" in err, command
        assert "3 JSON file(s) under" in err, command
        store._SAID.clear()  # each command is a new process for the user: it says them again


def test_a_folder_of_summaries_is_one_line_not_one_per_file(tmp_path, capsys):
    root = tmp_path / "results"
    ResultStore(root).write(RECORD)
    summaries = root / "ab" / "records"
    summaries.mkdir(parents=True)
    for n in range(40):
        (summaries / f"aa-{n:02}.json").write_text(json.dumps({"alpha": 0.05, "changes": []}))
    (summaries / "odd.json").write_text("[1]")
    store._SAID.clear()
    assert len(list(scan_records(root))) == 1
    lines = capsys.readouterr().err.splitlines()
    assert f"bench: skipped {summaries / 'aa-00.json'} and 39 more in {summaries}: not a record" in lines[0]
    assert lines[1] == f"bench: skipped {summaries / 'odd.json'}: not a record: a JSON list"
    assert lines[2] == f"bench: 41 JSON file(s) under {root} skipped: not records"
    assert len(lines) == 3
