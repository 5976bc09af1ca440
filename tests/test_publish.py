"""`bench publish`: the static site of every result set (index, reports, records) opens offline.

Built from a small results root (two suites, two machines, a history store of three nights, and JSON
that is not a record) and from the committed results/: every link of every page resolves to a file of
the site, the records download and parse back, and headless chromium logs no console message.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
import zipfile
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import pytest

from bench.cli.publish import add_parsers, main
from bench.records.archives import pack
from bench.records.portable import portable_path
from bench.records.results import parse_record
from bench.records.store import ResultStore, atomic_write_text, load_record
from bench.report.publish import find_sets, publish
from tests.synthetic_records import make_record, make_set
from tests.test_report_browser import CHROMIUM, chromium

ROOT = Path(__file__).resolve().parents[1]
GPU = "x86_64-16c-1x-nvidia-h200"
SETS = ("other/x86_64-2c-cpu", f"smoke/{GPU}", "history/smoke/{fingerprint}", "smoke/x86_64-2c-cpu")


def results_root(root: Path) -> Path:
    """smoke on a CPU and a GPU machine (one failed run), `other` on the CPU machine, three nights of smoke
    in a history store, and what publish must leave out: summaries, a JSON list, a log."""
    store = ResultStore(root)
    for record in [*make_set(), make_record("lora", 3, status="failed", reason="RuntimeError: planted")]:
        store.write(record)
    for record in make_set():
        record.environment.machine = GPU
        record.environment.hardware.gpus = ["NVIDIA H200"]
        store.write(record)
    for record in make_set(labels=("full",)):
        record.suite = record.spec["suite"] = "other"
        store.write(record)
    for night in range(3):
        for record in make_set(noise=0.02):
            record.started_at = f"2026-11-{night + 10:02d}T03:17:00+00:00"
            record.environment.git_commit = f"{night:07x}abcdef"
            folder = root / "history" / "smoke" / record.environment.fingerprint / f"2026111{night}T031700Z-{night}"
            atomic_write_text(folder / f"{record.run_id}.json", record.model_dump_json(indent=2))
    atomic_write_text(root / "summary.json", json.dumps({"rounds": 3}))
    atomic_write_text(root / "benchmarks" / "cpu" / "start.json", json.dumps({"benchmarks": [], "machine_info": {}}))
    atomic_write_text(root / "history" / "nights.json", json.dumps([1, 2, 3]))
    atomic_write_text(root / "smoke" / "x86_64-2c-cpu" / "logs" / "full-0-0.003.log", "a worker log\n")
    return root


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    root = results_root(tmp_path_factory.mktemp("results"))
    return root, publish(root, tmp_path_factory.mktemp("site") / "site").parent


def fingerprint() -> str:
    return make_record("full", 0).environment.fingerprint


class Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.links += [value for name, value in attrs if name in ("href", "src") and value]


def check_links(site: Path) -> set[Path]:
    """Every href and src of every page is a relative link to a file inside the site; returns the files."""
    linked = set()
    for page in sorted(site.rglob("*.html")):
        parser = Links()
        parser.feed(page.read_text(encoding="utf-8"))
        for link in parser.links:
            if link.startswith(("#", "mailto:")):
                continue
            assert not re.match(r"^([a-z][a-z0-9+.-]*:|//)", link, re.I), f"{page}: not a relative link: {link}"
            target = (page.parent / unquote(link.split("#")[0])).resolve()
            assert target.is_file(), f"{page}: {link} does not resolve"
            assert site.resolve() in target.parents, f"{page}: {link} leaves the site"
            linked.add(target)
    return linked


def test_index_lists_every_suite_and_machine(built):
    root, site = built
    index = (site / "index.html").read_text(encoding="utf-8")
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)<br>.*?<code>(.*?)</code></td><td>(.*?)</td><td>(\d+)</td>", index)
    expected = [folder.format(fingerprint=fingerprint()) for folder in SETS]
    assert [row[2] for row in rows] == expected  # ordered by suite, machine, folder
    assert [(row[0], row[1]) for row in rows] == [
        ("other", "x86_64-2c-cpu"),
        ("smoke", GPU),
        ("smoke", "x86_64-2c-cpu"),
        ("smoke", "x86_64-2c-cpu"),
    ]
    counts = [re.sub(r"<[^>]+>", "", row[3]) for row in rows]
    assert counts == ["3 / 0 / 0", "6 / 0 / 0", "18 / 0 / 0", "6 / 1 / 0"]  # ok / failed / skipped
    assert [row[4] for row in rows] == ["1", "1", "3", "1"]  # nights
    assert "2026-11-10 – 2026-11-12" in index and "<code>0000002abc</code>" in index
    assert "4 result sets, 2 suites, 2 machines, 34 records" in index
    assert 'id="about"' in index and "bench publish " in index and str(root) not in index  # no absolute path


def test_every_link_resolves_and_every_page_is_linked(built):
    _, site = built
    linked = check_links(site)
    pages = {page.resolve() for page in site.rglob("*.html")} - {(site / "index.html").resolve()}
    assert pages <= linked, f"pages no link reaches: {sorted(pages - linked)}"
    assert len(list(site.rglob("report.html"))) == len(SETS)


def test_records_download_and_parse_back(built):
    root, site = built
    files = sorted(p for p in site.rglob("*") if p.is_file())
    assert {p.suffix for p in files} == {".html", ".json", ".zip"}  # no logs, nothing else
    copied = {p.relative_to(site) for p in files if p.suffix == ".json"}
    originals = {p.relative_to(root) for p in root.rglob("*.json") if p.parent.name != "logs"}
    # every record, and only records, under <set>/records/<path in the set>
    assert {Path(str(p).replace("/records/", "/", 1)) for p in copied} == originals - {
        Path("summary.json"),
        Path("benchmarks/cpu/start.json"),
        Path("history/nights.json"),
    }
    for path in copied:
        original = root / str(path).replace("/records/", "/", 1)
        stored = load_record(original)  # published scrubbed (schema 7): the same record without its host name
        hostless = stored.model_copy(update={"environment": stored.environment.model_copy(update={"hostname": None})})
        assert load_record(site / path) == hostless and b'hostname": null' in (site / path).read_bytes()
        assert (site / path).stat().st_mode & 0o777 == 0o644
    for one in find_sets(root):
        with zipfile.ZipFile(site / one.folder / "records.zip") as archive:
            names = archive.namelist()
            assert names == [str(path.relative_to(root)) for path, _ in one.runs]
            assert all(parse_record(json.loads(archive.read(name))).suite for name in names)


def test_rebuild_is_deterministic_and_refuses_a_foreign_folder(built, tmp_path, capsys):
    root, site = built
    again = publish(root, tmp_path / "site").parent
    for name in ("index.html", "smoke/x86_64-2c-cpu/records.html", "smoke/x86_64-2c-cpu/records.zip"):
        assert (again / name).read_bytes() == (site / name).read_bytes().replace(
            portable_path(str(site)).encode(), portable_path(str(again)).encode()
        )  # the About line names the command with portable paths
    (again / "stale.txt").write_text("from an earlier build")
    publish(root, again)  # a site it built is replaced, stale files and all
    assert not (again / "stale.txt").exists()

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    assert main([str(root), "--out", str(foreign)]) == 2
    assert (foreign / "keep.txt").read_text() == "mine" and not (foreign / "index.html").exists()
    assert "not a site built by bench publish" in capsys.readouterr().err


def test_cli_exit_codes(tmp_path, capsys):
    empty = tmp_path / "empty"
    (empty / "benchmarks").mkdir(parents=True)
    (empty / "benchmarks" / "start.json").write_text('{"benchmarks": []}')
    assert main([str(empty), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"error: no result records under {empty}"
    assert f"skipped {empty / 'benchmarks' / 'start.json'}: not a record" in err  # what was skipped, and why

    parser = argparse.ArgumentParser(prog="bench")
    add_parsers(parser.add_subparsers(dest="command", required=True))
    ResultStore(tmp_path / "results").write(make_record("full", 0))
    args = parser.parse_args(["publish", str(tmp_path / "results"), "--out", str(tmp_path / "site")])
    assert args.handler(args) == 0
    assert (tmp_path / "site" / "smoke" / "x86_64-2c-cpu" / "report.html").exists()
    assert capsys.readouterr().out.strip() == f"site: {tmp_path / 'site' / 'index.html'}"


def test_history_store_reports_the_newest_night_with_trends(built):
    _, site = built
    report = (site / "history" / "smoke" / fingerprint() / "report.html").read_text(encoding="utf-8")
    assert "newest of 3 nights: 20261112T031700Z-2" in report
    assert '<section id="history">' in report and 'id="chart-trend-train-tokens-per-s' in report


def test_publishing_never_imports_torch(tmp_path):
    root = results_root(tmp_path / "results")
    code = (
        "import sys\n"
        "from bench.report.publish import publish\n"
        f"publish({str(root)!r}, {str(tmp_path / 'site')!r})\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
        "raise SystemExit(1 if heavy else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "heavy: []" in run.stdout and (tmp_path / "site" / "index.html").exists()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: run scripts/install-browser")
def test_site_in_headless_chromium(built, tmp_path):
    _, site = built
    dom, messages = chromium(site / "index.html", tmp_path / "profile", "--dump-dom")
    assert messages == [], f"console messages in index.html: {messages}"
    assert dom.split("All result sets")[1].count('">report</a>') == len(SETS)  # one row per set in the table
    for page in sorted(set(site.rglob("*.html")) - {site / "index.html"}):
        dom, messages = chromium(page, tmp_path / "profile", "--dump-dom")
        assert messages == [], f"console messages in {page.relative_to(site)}: {messages}"
        assert "All results" in dom  # the way back to the index


def test_committed_results_publish(tmp_path):
    """The committed results/ (nested suites, a history store, pytest-benchmark JSON, summaries) build."""
    start = time.perf_counter()
    index = publish(ROOT / "results", tmp_path / "site")
    seconds = time.perf_counter() - start
    site = index.parent
    reports = sorted(site.rglob("report.html"))
    files = [p for p in site.rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"committed results: {len(reports)} reports, {len(files)} files, {size / 2**20:.1f} MiB, {seconds:.1f} s")
    assert len(reports) == len(find_sets(ROOT / "results")) >= 5
    packed = "smollm2-forgetting-sized/x86_64-2c-cpu"  # committed as records.tar.xz, published like a folder
    for folder in ("smoke/x86_64-2c-cpu", "smollm2-gpu-memory/x86_64-16c-1x-nvidia-h200", packed):
        assert (site / folder / "report.html").is_file() and (site / folder / "records.zip").is_file()
    # validation experiments (results/validation/<name>/records.tar.xz) are listed apart, archives copied
    assert (site / "validation" / "history-sim" / "records.tar.xz").is_file()
    assert "Validation experiments" in index.read_text(encoding="utf-8")
    assert not (site / "benchmarks").exists() and not list(site.rglob("*.log")) and not list(site.rglob("logs"))
    check_links(site)


def test_a_packed_result_set_publishes_like_its_folder_and_counts_once(tmp_path):
    """results/<set>/records.tar.xz (records/<set>/<machine>/*.json inside, as the sized comparison is
    committed) becomes the set <set>/<machine>; unpacked beside it, the same records count once."""
    stage, root = tmp_path / "stage", tmp_path / "results"
    records = make_set()
    for record in records:
        ResultStore(stage / "records").write(record)
    (root / "smoke").mkdir(parents=True)
    pack(stage / "records", root / "smoke" / "records.tar.xz")
    (root / "smoke" / "FINDINGS.txt").write_text("Question: does the packed set publish?\n\nYes.\n")
    [one] = find_sets(root)
    assert one.folder == Path("smoke/x86_64-2c-cpu") and len(one.records) == len(records)
    index = publish(root, tmp_path / "site")
    site = index.parent / "smoke" / "x86_64-2c-cpu"
    assert (site / "report.html").is_file() and "does the packed set publish" in index.read_text(encoding="utf-8")
    with zipfile.ZipFile(site / "records.zip") as archive:
        assert sorted(archive.namelist()) == sorted(f"smoke/x86_64-2c-cpu/{r.run_id}.json" for r in records)
    for record in records:  # unpacked where the suite's comment says: the loose copies stand, no duplicate
        ResultStore(root).write(record)
    [one] = find_sets(root)
    assert len(one.records) == len(records)


def test_an_unreadable_archive_is_named_and_skipped(tmp_path, capsys):
    root = tmp_path / "results"
    ResultStore(root).write(make_record("full", 0))
    (root / "broken").mkdir()
    (root / "broken" / "records.tar.xz").write_bytes(b"not xz at all")
    assert [one.folder for one in find_sets(root)] == [Path("smoke/x86_64-2c-cpu")]
    assert "broken/records.tar.xz: not a readable archive" in capsys.readouterr().err
