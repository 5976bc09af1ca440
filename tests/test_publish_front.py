"""The site's front page leads with the comparisons (question, answer, findings), lists validation
experiments apart, publishes nothing git-ignored; validation experiments are compact archives that
the readers open directly (issue 26 items 7 and 8)."""

from __future__ import annotations

import shutil
import subprocess
import tarfile
from pathlib import Path

from bench.analysis.snapshot import load_set
from bench.records.archives import pack
from bench.records.store import ResultStore, load_records
from bench.report.publish import publish
from tests.conftest import REPO, bench_cli
from tests.synthetic_records import make_record

EXPERIMENTS = ("aa", "aa-warm", "aa-sessions", "ab-validation", "history-sim")


def _store(root: Path, suite: str, labels=("full", "lora")) -> None:
    for label in labels:
        for seed in range(2):
            ResultStore(root).write(make_record(label, seed).model_copy(update={"suite": suite}))


def _experiment(root: Path, name: str) -> Path:
    home = root / "validation" / name
    _store(home / "records", "smoke")
    (home / "README.md").write_text(f"# {name}: planted A/A\n\nValidates that nothing is planted.\n")
    pack(home / "records", home / "records.tar.xz")
    shutil.rmtree(home / "records")
    return home / "records.tar.xz"


def test_the_front_page_leads_with_comparisons_and_lists_validation_apart(tmp_path):
    root = tmp_path / "results"
    _store(root, "plain")
    _store(root, "forgetting")
    (root / "forgetting" / "FINDINGS.txt").write_text(
        "Question: does LoRA forget less? Two strategies, two seeds.\n\nForgetting: none beyond noise.\n"
    )
    readme = "# Plain title\n\n| a | b |\n|---|---|\n\n```\ncode\n```\n\nProse line.\n"
    (root / "plain" / "README.md").write_text(readme)
    _experiment(root, "aa-planted")
    index = publish(root, tmp_path / "site").read_text()
    comparisons, validation, everything = (
        index.index(h) for h in ("Comparisons", "Validation experiments", "All result sets")
    )
    assert comparisons < validation < everything
    front = index[comparisons:validation]
    assert front.index("forgetting/") < front.index("plain/")  # the set with findings leads
    assert "<b>Question:</b> does LoRA forget less?" in front and "Forgetting: none beyond noise." in front
    assert "<b>Answer:</b> Most accurate: " in front and "aa-planted" not in front
    assert "<b>Question:</b> Plain title" in front and "Prose line." in front  # a README: its title and prose
    assert "| a | b |" not in front and "code" not in front  # tables and code blocks are left to the README
    apart = index[validation:everything]
    assert "aa-planted: planted A/A" in apart and "Validates that nothing is planted." in apart
    assert (tmp_path / "site" / "validation" / "aa-planted" / "records.tar.xz").is_file()
    assert (tmp_path / "site" / "validation" / "aa-planted" / "README.html").is_file()


def test_git_ignored_results_are_not_published(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("results/local/\n")
    root = tmp_path / "results"
    _store(root, "shared")
    _store(root / "local", "mine")
    publish(root, tmp_path / "site")
    assert (tmp_path / "site" / "shared").is_dir()
    assert not (tmp_path / "site" / "local").exists()
    assert "mine" not in (tmp_path / "site" / "index.html").read_text()


def test_an_archive_reads_as_the_folder_it_holds(tmp_path):
    root = tmp_path / "results"
    archive = _experiment(root, "exp")
    with tarfile.open(archive) as tar:
        assert all(name == "records" or name.startswith("records/") for name in tar.getnames())
    assert len(list(load_records(archive))) == len(load_set(archive)) == 4
    pack(_unpacked(archive, tmp_path / "again"), tmp_path / "again.tar.xz")
    assert (tmp_path / "again.tar.xz").read_bytes() == archive.read_bytes()  # deterministic: same files, same bytes
    for command in (
        ["report", str(archive), "--out", str(tmp_path / "r.html")],
        ["history", str(archive)],
        ["compare", str(archive), str(archive)],
    ):
        done = bench_cli(*command)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (command, done.stderr[-2000:])


def _unpacked(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        tar.extractall(into, filter="data")
    return into / "records"


def test_committed_validation_experiments_are_compact_and_readable():
    """Each experiment: README.md (what it validates, its command) + records.tar.xz; results/ stays small."""
    validation = REPO / "results" / "validation"
    for name in EXPERIMENTS:
        home = validation / name
        assert (home / "README.md").is_file() and (home / "records.tar.xz").is_file(), name
        assert not any(home.glob("*.json")), name  # records live in the archive
    tracked = subprocess.run(["git", "ls-files", "-z", "results"], cwd=REPO, capture_output=True, check=True)
    sizes = [
        (REPO / name).stat().st_size for name in tracked.stdout.decode().split("\0") if name and (REPO / name).exists()
    ]
    # was 31 MB; the GPU machine's carry is 64 MiB for everything. 10 MB until ab-validation-7rounds (2.2 MB of
    # records at xz -9e, already without worker logs) took it to 10.6 MB, 12 MB until its 14 more A/As (4.4 MB
    # for 2,364 records) took it to 12.8 MB; archives add ~0.2-4 MB an experiment
    assert sum(sizes) < 14_000_000, sum(sizes)
    records = list(load_records(validation / "history-sim" / "records.tar.xz"))
    assert len(records) == 72 and {r.suite for r in records} == {"smoke"}
