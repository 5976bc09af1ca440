"""Files not where the repo's are (audit user22, 2026-12-07): a path with a space kept most of itself in a
record (`user22/sp ace/é 日本/data/sums.jsonl`, which `bench publish` passed: no leading slash left), a folder
named `bench` kept everything after it, `~` in an option made a folder named `~`, an output that could not be
written ended in a traceback (`bench compare`: exit 1, read as a regression), a read-only cache failed every
run on its own. Each test fails on the code before."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from bench.cli import paths
from bench.cli.main import build_parser, main
from bench.records.leaks import leaks
from bench.records.portable import portable_path, scrub, scrub_text
from tests.conftest import fast_suite, write_suite
from tests.synthetic_records import make_record, store


def _bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main([*args])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, " ".join(capsys.readouterr().err.split())


# 1. what a record keeps of a path


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/data/Alice Smith/projects/secret-project/x.jsonl", "secret-project/x.jsonl"),
        ("/tmp/user22/sp ace/é 日本/data/sums.jsonl", "data/sums.jsonl"),
        ("jsonl:/srv/My Team/data/x.jsonl", "jsonl:data/x.jsonl"),
        ("C:\\Users\\Alice Smith\\My Data\\x.jsonl", "My Data/x.jsonl"),
    ],
)
def test_a_path_with_spaces_keeps_only_its_last_two_parts(path: str, kept: str) -> None:
    raw = make_record("lora", 0).model_dump(mode="json")
    raw["spec"]["task"]["path"] = path
    scrubbed = scrub(raw)
    assert scrubbed["spec"]["task"]["path"] == kept
    assert leaks(scrubbed) == []


@pytest.mark.parametrize(
    ("message", "scrubbed"),
    [
        (
            "[Errno 2] No such file or directory: '/data/Alice Smith/p/x.jsonl'",
            "[Errno 2] No such file or directory: 'p/x.jsonl'",
        ),
        ('cannot read "/srv/a b/c d/e.jsonl" here', 'cannot read "c d/e.jsonl" here'),
        ("data changed: task:sums (/srv/Alice Smith/data/sums.jsonl); running it again", None),
    ],
)
def test_a_quoted_path_with_spaces_in_a_message_keeps_only_its_last_two_parts(message: str, scrubbed: str | None):
    expected = scrubbed or "data changed: task:sums (data/sums.jsonl); running it again"
    assert scrub_text(message) == expected


@pytest.mark.parametrize(
    "text", ["/x/y.jsonl: line 3: bad value", "tokens /s", "3 /4 of it", 'a "/root" b', "see (/s)"]
)
def test_a_message_is_not_read_as_one_path(text: str) -> None:
    """A message that starts with a path keeps its words (only the path is cut); look-alikes stay."""
    assert scrub_text(text).endswith(text.split("/")[-1])
    assert scrub_text(text) == scrub_text(scrub_text(text))


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/mnt/nfs/bench/models/acme-private/v3", "acme-private/v3"),
        ("/tmp/u/bench/clients/acme-secret/2024/sums.jsonl", "2024/sums.jsonl"),
        ("/opt/ci/src/bench/api.py:12", "bench/api.py:12"),
        ("/opt/ci/src/bench/models/presets/tiny-llama/config.json", "bench/models/presets/tiny-llama/config.json"),
    ],
)
def test_a_folder_named_bench_is_no_checkout_unless_it_holds_the_package(path: str, kept: str) -> None:
    assert portable_path(path) == kept


# 2. the command line's paths


def _path_options(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.Action]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += [(f"{name} {option}", one) for option, one in _path_options(sub)]
        elif action.type is not None:
            found.append((action.dest, action))
    return found


def test_every_path_option_expands_the_home_folder() -> None:
    options = _path_options(build_parser())
    assert not [name for name, action in options if action.type is Path], "a path option without ~ expanded"
    assert sum(action.type is paths.user_path for _, action in options) >= 25
    args = build_parser().parse_args(["report", "~/suites/x.yaml", "--reports=~/reports"])
    assert (args.source, args.reports) == (Path.home() / "suites/x.yaml", Path.home() / "reports")


def test_an_output_folder_that_is_a_file_is_refused_before_any_work(tmp_path: Path, capsys) -> None:
    store([make_record("lora", 0)], tmp_path / "results")
    (tmp_path / "afile").write_text("x")
    code, said = _bench(capsys, "report", str(tmp_path / "results"), "--reports", str(tmp_path / "afile"))
    assert (code, said) == (2, f"bench report: --reports {tmp_path / 'afile'} is a file; give a folder")
    code, said = _bench(capsys, "publish", str(tmp_path / "results"), "--out", str(tmp_path / "afile"))
    assert (code, said) == (2, f"bench publish: --out {tmp_path / 'afile'} is a file; give a folder")


def test_an_output_in_a_folder_that_cannot_be_written_is_refused(tmp_path: Path, capsys, monkeypatch) -> None:
    """A read-only file system (the audit's tmpfs mount): os.access says no, as it does there."""
    results = tmp_path / "results"
    store([make_record("lora", 0)], results)
    locked = tmp_path / "ro"
    locked.mkdir()
    real = os.access
    monkeypatch.setattr(paths.os, "access", lambda path, mode: Path(path) != locked and real(path, mode))
    code, said = _bench(capsys, "compare", str(results), str(results), "--json", str(locked / "c.json"))
    assert code == 2
    assert said == f"bench compare: --json {locked / 'c.json'}: cannot write in {locked} (read-only or no permission)"


def test_a_file_that_cannot_be_written_mid_command_exits_2_in_one_line(tmp_path: Path, capsys, monkeypatch) -> None:
    """Exit 1 is `bench compare`'s regression; an error writing its JSON used to be a traceback and exit 1."""
    import bench.api

    def read_only(*args, **kwargs):
        raise OSError(30, "Read-only file system", str(tmp_path / "c.json"))

    monkeypatch.setattr(bench.api, "compare", read_only)
    results = tmp_path / "results"
    store([make_record("lora", 0)], results)
    code, said = _bench(capsys, "compare", str(results), str(results))
    assert (code, said) == (2, f"bench compare: Read-only file system: {tmp_path / 'c.json'}")


def test_a_cache_that_cannot_be_written_stops_bench_run_before_any_run(tmp_path: Path, capsys, monkeypatch) -> None:
    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "afile" / "cache"))
    suite = write_suite(tmp_path, fast_suite("paths", ["lora"]))
    code, said = _bench(capsys, "run", str(suite), "--results", str(tmp_path / "results"))
    assert code == 2
    assert said == (
        f"bench run: cache folder {tmp_path / 'afile' / 'cache'} is not writable: Not a directory;"
        " set BENCH_CACHE_DIR to a writable folder; nothing was run"
    )
    assert not list((tmp_path / "results").rglob("*.json"))


def test_the_cache_folder_expands_the_home_folder(monkeypatch) -> None:
    from bench.models.cache import cache_root

    monkeypatch.setenv("BENCH_CACHE_DIR", "~/bench-cache-x")
    assert cache_root() == Path.home() / "bench-cache-x"


def test_base_scores_that_cannot_be_cached_are_still_returned(tmp_path: Path, monkeypatch) -> None:
    from bench.evaluate.base_cache import cached_base_scores

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "afile"))
    assert cached_base_scores("k", lambda: {}) == ({}, False)


# 3. what an error names


def test_a_results_folder_that_is_a_file_is_said_so(tmp_path: Path, capsys) -> None:
    (tmp_path / "afile").write_text("x")
    suite = write_suite(tmp_path, fast_suite("paths", ["lora"]))
    code, said = _bench(capsys, "run", str(suite), "--results", str(tmp_path / "afile"))
    assert (code, said) == (
        2,
        f"bench run: results folder {tmp_path / 'afile'} is not writable: a file, not a folder; nothing was run",
    )


def test_a_suite_file_that_does_not_exist_is_said_so(tmp_path: Path, capsys) -> None:
    code, said = _bench(capsys, "report", str(tmp_path / "nosuch.yaml"))
    assert (code, said) == (2, f"error: no such suite file {tmp_path / 'nosuch.yaml'}")


def test_a_relative_model_folder_that_is_not_there_says_where_it_was_looked_for(tmp_path: Path, monkeypatch) -> None:
    from bench.models.checks import source_problem
    from bench.spec import ModelSpec

    monkeypatch.chdir(tmp_path)
    said = source_problem(ModelSpec(path="models/mine"))
    assert said.endswith(f"(a relative path is read from the directory bench runs in: {tmp_path})")


def test_a_plugin_not_on_the_python_path_says_how_to_put_it_there() -> None:
    from bench.suite import plugin_problems

    [said] = plugin_problems(["u22_plugin_not_anywhere"])
    assert "not on the Python path" in said and "PYTHONPATH=." in said


def test_a_report_embeds_the_suite_with_its_paths_cut_as_its_records_cut_them(tmp_path: Path) -> None:
    """`bench run`'s and `bench report SUITE`'s page showed `path: /tmp/user22/proj/data/sums.jsonl`; the
    records beside it said `data/sums.jsonl`."""
    from bench.api import report

    suite = write_suite(tmp_path, fast_suite("embedded", ["full"]))
    text = suite.read_text()
    mine = "- name: mine\n  source: jsonl\n  path: '/srv/Alice Smith/data/mine.jsonl'  # mine\n"
    suite.write_text(text.replace("retain:\n", "retain:\n" + mine) + "# kept: /srv/Alice Smith/notes\n")
    store([make_record("full", 0).model_copy(update={"suite": "embedded"})], tmp_path / "results")
    page = report(suite, tmp_path / "a.html", tmp_path / "results").read_text()
    assert "path: &#39;data/mine.jsonl&#39;  # mine" in page
    assert "Alice Smith/data" not in page and "/srv/Alice Smith/notes" in page  # a comment is the author's


def test_a_relative_base_model_is_found_from_wherever_the_script_is_started(tmp_path: Path, monkeypatch) -> None:
    """reproduce_base.sh held `BASE=${BASE:-'models/mine'}`, the path as bench's directory named it, and read it
    after changing to its own folder: from anywhere but there, lm-eval was given a folder that is not there."""
    import subprocess

    from bench.run.artefacts import write_script

    (tmp_path / "project" / "models" / "mine").mkdir(parents=True)
    kept = tmp_path / "project" / "results" / "kept"
    kept.mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "project")
    write_script(kept / "show.sh", "the base", 'echo "${BASE}"', "", ("# BASE: mine", "models/mine"))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "my copy").mkdir()
    for cwd, env, expected in [
        (tmp_path / "elsewhere", {}, tmp_path / "project" / "models" / "mine"),
        (tmp_path / "elsewhere", {"BASE": "my copy"}, tmp_path / "elsewhere" / "my copy"),
    ]:
        shown = subprocess.run(
            ["bash", str(kept / "show.sh")], cwd=cwd, env={**os.environ, **env}, capture_output=True, text=True
        ).stdout.strip()
        assert (kept / shown).resolve() == expected.resolve(), shown


def test_a_failed_runs_log_keeps_its_traceback_with_this_machines_paths(tmp_path: Path, monkeypatch, capsys) -> None:
    """The record's reason is portable (`romnt/.cache`); the run's log, which stays on this machine, had no
    traceback at all, so the real path was nowhere."""
    from bench.plan import plan
    from bench.run import worker
    from bench.suite import load_suite

    def fails(state) -> None:
        raise OSError(30, "Read-only file system", "/tmp/user22/romnt/.cache")

    monkeypatch.setattr(worker, "execute", fails)
    spec = plan(load_suite(write_suite(tmp_path, fast_suite("paths", ["lora"]))))[0]
    result = worker.run(spec, "x86_64-2c-cpu", tmp_path)
    assert result.status == "failed" and "/tmp/user22/romnt/.cache" in result.reason  # scrubbed when stored
    assert "OSError: [Errno 30] Read-only file system: '/tmp/user22/romnt/.cache'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("message", "scrubbed"),
    [
        ("cannot open /My Data/alice/x.jsonl: no such file", "cannot open alice/x.jsonl: no such file"),
        ("cannot open D:\\My Data\\alice\\x.jsonl: gone", "cannot open alice/x.jsonl: gone"),
        ("/srv/data/x.jsonl is not in docs/data.md.", "data/x.jsonl is not in docs/data.md."),  # words stay words
    ],
)
def test_a_path_whose_first_folder_holds_a_space_is_cut_and_found(message: str, scrubbed: str) -> None:
    """Mutation audit K: the path pattern saw the one-part `/My`, no path: the record kept the whole path and
    `leaks()`, so `bench publish`, passed it."""
    raw = make_record("lora", 0, status="failed", reason=message).model_dump(mode="json")
    assert leaks(raw) and scrub(raw)["reason"] == scrubbed and leaks(scrub(raw)) == []


def test_a_two_word_home_folder_owner_leaves_no_word_in_an_embedded_suite() -> None:
    """Mutation audit K: `path: /home/Alice Smith/data/x.jsonl` became `path: ~ Smith/data/x.jsonl`."""
    from bench.records.portable import scrub_suite

    text = "  path: /home/Alice Smith/data/x.jsonl\n  config: D:/Data Sets/Bob Jones/x\n"
    assert scrub_suite(text) == "  path: data/x.jsonl\n  config: Bob Jones/x\n"
