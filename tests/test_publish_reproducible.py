"""What a published record needs to be rebuilt (audit user18, finding 5): a dirty tree was only a flag
(`git_dirty`, blind to untracked files: a new module the code imports left it false), so two dirty runs of
one commit looked alike; and `bench publish` shipped no suite file (its reports said "Suite file not given").
Now records carry a digest of the uncommitted code, `bench compare` shows it, and a set's suite file is
published beside its records, leak-checked as other author text is; data files are not, and the site says so."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from bench.analysis.environment import environment_changes
from bench.cli.publish import main as publish_main
from bench.measure import env
from bench.records.results import parse_record
from bench.records.store import ResultStore
from bench.report.publish import LeakError, publish
from tests.synthetic_records import make_record, make_set
from tests.test_publish import check_links

SUITE = """name: forgetting
description: Which strategy forgets less?
# the tiny preset, a few steps
model: {preset: tiny-llama}
task: {name: cipher, data: suites/data/cipher.jsonl}
"""


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed checkout: bench/code.py, a .gitignore (*.log), results/ and reports/."""
    for name, text in {"bench/code.py": "x = 1\n", ".gitignore": "*.log\n", "results/r.json": "{}\n"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", "-A")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "start")
    return tmp_path


def test_an_untracked_module_makes_the_tree_dirty_but_ignored_files_and_results_do_not(repo: Path):
    (repo / "run.log").write_text("ignored\n")
    (repo / "results" / "new.json").write_text("{}\n")  # the harness's own output
    assert env.git_state(repo)[1] is False
    (repo / "bench" / "helper.py").write_text("def f(): ...\n")  # imported by code.py, never added
    assert env.git_state(repo)[1] is True  # (commit, dirty, ...): the old check said False
    assert len(env.git_state(repo).diff_sha256 or "") == 64


def test_two_dirty_trees_of_one_commit_have_different_digests(repo: Path):
    code = repo / "bench" / "code.py"
    code.write_text("x = 2\n")
    first = env.git_state(repo).diff_sha256
    code.write_text("x = 3\n")
    second = env.git_state(repo).diff_sha256
    assert first and second and first != second
    code.write_text("x = 2\n")
    assert env.git_state(repo).diff_sha256 == first  # the same changes, the same digest
    (repo / "bench" / "new.py").write_text("y = 1\n")
    with_new = env.git_state(repo).diff_sha256
    (repo / "bench" / "new.py").write_text("y = 2\n")  # an untracked file's content counts, not only its name
    assert len({first, with_new, env.git_state(repo).diff_sha256}) == 3
    _git(repo, "add", "-A")  # staged is still uncommitted: the digest is of the files, not of where they stand
    assert env.git_state(repo).diff_sha256 == env.uncommitted_digest(repo, ["bench/code.py", "bench/new.py"])


def test_the_record_carries_the_digest_and_older_records_load_without_it(monkeypatch):
    monkeypatch.setattr(env, "git_state", lambda: env.GitState("c0ffee" * 6 + "ab", True, None, "1a2b" * 16))
    assert env.capture("m").git_diff_sha256 == "1a2b" * 16
    raw = json.loads(make_record("full", 0).model_dump_json())
    assert "git_diff_sha256" in raw["environment"]
    del raw["environment"]["git_diff_sha256"]  # a record written before the field: schema unchanged, None
    assert parse_record(raw).environment.git_diff_sha256 is None


def _dirty(records: list, digest: str | None) -> list:
    update = {"git_dirty": True, "git_diff_sha256": digest}
    return [r.model_copy(update={"environment": r.environment.model_copy(update=update)}) for r in records]


def test_compare_tells_two_dirty_trees_of_one_commit_apart():
    (change,) = environment_changes(_dirty(make_set(), "1a2b3c4d" * 8), _dirty(make_set(), "99ff" * 16))
    assert change.text() == (
        "commit abc1234 (with uncommitted changes 1a2b3c4d) -> abc1234 (with uncommitted changes 99ff99ff)"
    )
    assert environment_changes(_dirty(make_set(), "1a2b3c4d" * 8), _dirty(make_set(), "1a2b3c4d" * 8)) == []


def _results(tmp_path: Path, suite_text: str | None = SUITE, digest: str | None = None) -> Path:
    """results/forgetting/<machine>/ with two runs, and suites/forgetting.yaml beside results/."""
    root = tmp_path / "results"
    records = [make_record(label, 0).model_copy(update={"suite": "forgetting"}) for label in ("full", "lora")]
    for record in _dirty(records, digest) if digest else records:
        ResultStore(root).write(record)
    if suite_text is not None:
        (tmp_path / "suites").mkdir(exist_ok=True)
        (tmp_path / "suites" / "forgetting.yaml").write_text(suite_text)
    return root


def test_the_suite_file_is_published_beside_its_records_and_linked_and_data_is_said_not_to_be(tmp_path: Path):
    site = publish(_results(tmp_path, digest="1a2b3c4d" * 8), tmp_path / "site").parent
    folder = site / "forgetting" / "x86_64-2c-cpu"
    assert (folder / "forgetting.yaml").read_text() == SUITE
    records, report = (folder / "records.html").read_text(), (folder / "report.html").read_text()
    assert 'href="forgetting.yaml"' in records and 'href="forgetting.yaml"' in report
    assert "Suite file not given" not in report and "the tiny preset, a few steps" in report
    assert "Data files are not published" in records
    assert "abc1234+dirty:1a2b3c4d" in (site / "index.html").read_text()  # which changes, not only dirty
    assert (folder / "forgetting.yaml").resolve() in check_links(site)


def test_a_set_without_a_suite_file_still_publishes_and_links_none(tmp_path: Path):
    site = publish(_results(tmp_path, suite_text=None), tmp_path / "site").parent
    records = (site / "forgetting" / "x86_64-2c-cpu" / "records.html").read_text()
    assert ".yaml" not in records and "Data files are not published" in records


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("task: {name: cipher, data: /home/alice/private/cipher.jsonl}", r"task\.data: absolute path"),
        ("notes: ran on build-host-17", r"notes: host name 'build-host-17'"),
        ("# unpacked in /srv/scratch/u first", r"line 6 \(a comment\): absolute path '/srv/scratch/u'"),
    ],
)
def test_a_suite_file_that_leaks_refuses_publishing_naming_file_and_field(tmp_path, monkeypatch, capsys, line, named):
    monkeypatch.setattr("bench.report.publish.machine_hosts", lambda: ["build-host-17"])
    root = _results(tmp_path, SUITE + line + "\n")
    with pytest.raises(LeakError, match=r"suites/forgetting\.yaml: " + named):
        publish(root, tmp_path / "site")
    assert publish_main([str(root), "--out", str(tmp_path / "site")]) == 2
    assert "suites/forgetting.yaml: " in capsys.readouterr().err and not (tmp_path / "site").exists()
