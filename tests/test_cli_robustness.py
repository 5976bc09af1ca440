"""The command line with broken inputs: unreadable records, crashed rounds, unknown labels, bad options and
output paths. Each is one line naming what is wrong and exit 2 (or a redone run), never a traceback. No
training: executors, `bench run` and records are stand-ins."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from bench.cli.main import main
from bench.plan import RunSpec, plan
from bench.suite import load_suite
from tests.conftest import fast_suite, write_suite
from tests.synthetic_records import make_record, store

MACHINE = "x86_64-2c-cpu"  # the synthetic records' machine


def _suite(folder: Path, name: str = "smoke") -> Path:
    return write_suite(folder, fast_suite(name, ["full", "lora"]))


def _specs(suite: Path) -> list[RunSpec]:
    return plan(load_suite(suite))


def _bench(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """`bench ARGS` in this process: the exit code and what it said on stderr."""
    try:
        code = main([*args])
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    return code, capsys.readouterr().err


# 1. a results folder with a file that is not a record


class StubExecutor:
    """Runs nothing: every job ends without a record (a failed record is stored for it)."""

    def __init__(self, *args: Any, **options: Any) -> None: ...

    def machine(self) -> str:
        return MACHINE

    def run(self, jobs: list, machine: str, progress: Any) -> Any:
        from bench.backends.base import Outcome
        from bench.executors.base import Finished, utc_now

        for job in jobs:
            yield Finished(job, Outcome(None, "stub: not run"), utc_now(), 0.0)

    def close(self) -> None: ...


def test_a_truncated_or_empty_record_is_set_aside_and_its_run_redone(tmp_path, monkeypatch, capsys):
    import bench.execute
    from bench.records.store import ResultStore, load_record

    monkeypatch.setattr(bench.execute.EXECUTORS, "get", lambda name: StubExecutor)
    specs = _specs(_suite(tmp_path))
    results = ResultStore(tmp_path / "results")
    paths = [results.path_for(spec.suite, MACHINE, spec.run_id) for spec in specs]
    paths[0].parent.mkdir(parents=True)
    paths[0].write_text('{"run_id": "trunc')
    paths[1].write_text("")
    report = bench.execute.execute(specs, results, machine=MACHINE)
    assert report.executed == 2 and report.reused == 0
    said = capsys.readouterr().err
    for path in paths:
        assert f"{path} is not a record" in said and f"moved to {path}.unreadable" in said
        assert load_record(path).status == "failed"  # the new record replaced it
        assert path.with_name(f"{path.name}.unreadable").exists()
    assert "Traceback" not in said


# 2. bench ab: a crashed round is not a finished one


def _crashed(*args: Any, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(args, 1, stderr="Traceback (most recent call last):\nValueError: planted\n")


def test_a_crashed_round_is_not_marked_done_and_says_why(tmp_path, monkeypatch):
    import bench.analysis.ab as ab

    monkeypatch.setattr(ab.subprocess, "run", _crashed)
    folder = tmp_path / "round-1"
    with pytest.raises(ab.RoundError, match="exited 1 with no record of full seed 0, lora seed 0.*ValueError: planted"):
        suite = _suite(tmp_path)
        ab._run_round(suite, folder, tmp_path, {}, None, ab.planned_runs(suite), "baseline round 1")
    assert not (folder / ".done").exists()


def test_bench_ab_stops_on_a_crashed_round_with_one_line(tmp_path, monkeypatch, capsys):
    import bench.analysis.ab as ab

    monkeypatch.setattr(ab.subprocess, "run", _crashed)
    out = tmp_path / "ab"
    code, said = _bench(capsys, "ab", str(_suite(tmp_path)), "--rounds", "1", "--out", str(out))
    assert code == 2 and "baseline round 1: bench run exited 1" in said and "ValueError: planted" in said
    assert not list(out.rglob(".done"))


def _fake_rounds(monkeypatch: pytest.MonkeyPatch, calls: list[tuple[str, list[str] | None]]) -> None:
    """`bench run` stand-in for run_rounds: stores ok records of the selected labels (seed 0), done."""
    import bench.analysis.ab as ab

    def fake_round(suite, folder, source, extra, only, planned, name):
        calls.append((name, only))
        specs = [spec for spec in _specs(suite) if not only or spec.label in only]
        store([make_record(spec.label, spec.seed).model_copy(update={"run_id": spec.run_id}) for spec in specs], folder)
        (folder / ".done").write_text("")

    monkeypatch.setattr(ab, "_run_round", fake_round)


def test_a_done_round_without_records_runs_again(tmp_path, monkeypatch):
    import bench.analysis.ab as ab

    calls: list = []
    _fake_rounds(monkeypatch, calls)
    out = tmp_path / "out"
    for side in ("baseline", "candidate"):  # what a crashed round of an older bench ab left
        (out / side / "round-1").mkdir(parents=True)
        (out / side / "round-1" / ".done").write_text("")
    said: list[str] = []
    ab.run_rounds(_suite(tmp_path), out, 1, say=said.append)
    assert len(calls) == 2
    assert "round 1/1: baseline has no record of full seed 0, lora seed 0; running it" in said


def test_only_decides_which_done_rounds_are_reused_and_what_is_compared(tmp_path, monkeypatch):
    import bench.analysis.ab as ab

    calls: list = []
    _fake_rounds(monkeypatch, calls)
    suite, out = _suite(tmp_path), tmp_path / "out"
    ab.run_rounds(suite, out, 1, only=["full"], say=lambda m: None)
    assert calls == [("baseline round 1", ["full"]), ("candidate round 1", ["full"])]
    base, _ = ab.run_rounds(suite, out, 1, only=["full"], say=lambda m: None)  # same selection: reused
    assert len(calls) == 2
    base, _ = ab.run_rounds(suite, out, 1, only=["lora"], say=lambda m: None)  # rounds made for full: lora runs
    assert len(calls) == 4 and calls[-1] == ("candidate round 1", ["lora"])
    assert {r.label for runs in ab.load_rounds(base, ["lora"]) for r in runs} == {"lora"}
    assert {r.label for runs in ab.load_rounds(base) for r in runs} == {"full", "lora"}


# 3. unknown labels


def test_an_unknown_only_label_is_one_line_and_exit_2(tmp_path, capsys):
    suite = str(_suite(tmp_path))
    for command in (["run", suite, "--results", str(tmp_path / "r")], ["ab", suite, "--out", str(tmp_path / "ab")]):
        code, said = _bench(capsys, *command, "--only", "lroa")
        assert code == 2 and "Traceback" not in said
        assert said.strip().endswith("--only: no strategy labelled lroa in suite 'smoke' (labels: full, lora)")
    assert not (tmp_path / "r").exists() and not (tmp_path / "ab").exists()


# 4. bench run --only renders the whole suite's report


def test_run_only_reports_every_stored_record_of_the_suite(tmp_path, monkeypatch, capsys):
    import bench.api
    import bench.report.html
    from bench.execute import ExecutionReport

    suite = _suite(tmp_path)
    records = [make_record(s.label, s.seed).model_copy(update={"run_id": s.run_id}) for s in _specs(suite)]
    store(records, tmp_path / "results")
    ran = [record for record in records if record.label == "full"]
    monkeypatch.setattr(bench.api, "run_suite", lambda *a, **k: ExecutionReport(ran, executed=len(ran)))
    reported: list = []
    monkeypatch.setattr(bench.report.html, "write_report", lambda records, out, *a, **k: reported.extend(records))
    code, _ = _bench(capsys, "run", str(suite), "--results", str(tmp_path / "results"), "--only", "full", "--quiet")
    assert code == 0
    assert sorted(r.label for r in reported) == ["full", "lora"]


# 5. bench ab's options


@pytest.mark.parametrize(
    "options, message",
    [
        (["--baseline-rev", "no-such-rev-x"], "--baseline-rev no-such-rev-x: no such commit in"),
        (["--baseline-env", "FOO"], "--baseline-env expects NAME=VALUE, got 'FOO'"),
        (["--max-reruns", "-1"], "--max-reruns must be 0 or more, got -1"),
        (["--threshold", "oops"], "--threshold expects METRIC=VALUE"),
    ],
)
def test_bad_ab_options_exit_2_before_any_round(tmp_path, capsys, options, message):
    out = tmp_path / "ab"
    code, said = _bench(capsys, "ab", str(_suite(tmp_path)), "--out", str(out), *options)
    assert code == 2 and message in said and "Traceback" not in said
    assert not out.exists()


def test_repeated_ab_options_add_up_and_too_few_rounds_are_warned_of(tmp_path, capsys, monkeypatch):
    """`--candidate-env A=1 --candidate-env B=2` kept B only: an injected fault silently never ran."""
    import bench.analysis.ab
    from bench.analysis.ab import RoundError

    seen: dict = {}

    def stop(suite, out, rounds, rev, base_env, cand_env, only, **kw):
        seen.update(cand=cand_env, only=only)
        raise RoundError("stopped by the test")

    monkeypatch.setattr(bench.analysis.ab, "run_rounds", stop)
    suite = str(_suite(tmp_path))
    options = ["--candidate-env", "A=1", "--candidate-env", "B=2", "--only", "full", "--only", "lora"]
    code, said = _bench(capsys, "ab", suite, "--out", str(tmp_path / "ab"), "--rounds", "2", *options)
    assert code == 2 and seen == {"cand": {"A": "1", "B": "2"}, "only": ["full", "lora"]}
    assert "warning: --rounds 2: no timing test can reach p<=0.05 (its smallest p is 1/4" in said
    code, said = _bench(capsys, "ab", suite, "--out", str(tmp_path / "ab"), "--rounds", "5")
    assert code == 2 and "warning" not in said


# 6. output paths that are folders


@pytest.mark.parametrize(
    "command, option",
    [
        (["report", "{results}"], "--out"),
        (["compare", "{results}", "{results}"], "--json"),
        (["compare", "{results}", "{results}"], "--html"),
        (["history", "{results}"], "--json"),
        (["estimate", "{suite}"], "--json"),
        (["recommend", "{results}", "--memory", "24GiB"], "--json"),
    ],
)
def test_an_output_file_option_naming_a_folder_exits_2(tmp_path, capsys, command, option):
    store([make_record("full", 0)], tmp_path / "results")
    names = {"results": str(tmp_path / "results"), "suite": str(_suite(tmp_path))}
    folder = tmp_path / "a-folder"
    folder.mkdir()
    code, said = _bench(capsys, *[part.format(**names) for part in command], option, str(folder))
    assert code == 2
    assert said.strip() == f"bench {command[0]}: {option} {folder} is a folder; give a file path"


def test_history_with_a_filter_that_matches_nothing_names_what_there_is(tmp_path, capsys):
    """A mistyped --metric or --suite is not "no records": the message names the filter and what is there."""
    store([make_record("full", 0)], tmp_path / "results")
    code, said = _bench(capsys, "history", str(tmp_path / "results"), "--metric", "tokens_per_s")
    said = " ".join(said.split())  # the console wraps long lines
    assert code == 2 and "with --metric 'tokens_per_s'; suites there: smoke; metrics:" in said
    assert "train.tokens_per_s" in said.split("metrics:")[1]
    code, said = _bench(capsys, "history", str(tmp_path / "results"), "--suite", "smok")
    assert code == 2 and " ".join(said.split()).endswith("for suite smok; suites there: smoke")
    code, said = _bench(capsys, "history", str(tmp_path / "empty"))
    assert code == 2 and " ".join(said.split()).endswith(f"no records under {tmp_path / 'empty'}")


# 7. bench report's sources


def test_report_refuses_a_history_store_that_does_not_exist(tmp_path, capsys):
    store([make_record("full", 0)], tmp_path / "results")
    code, said = _bench(capsys, "report", str(tmp_path / "results"), "--history", str(tmp_path / "nowhere"))
    assert code == 2 and said.strip() == f"bench report: --history {tmp_path / 'nowhere'}: no such folder"


def test_report_of_one_record_file_renders_it(tmp_path, capsys):
    folder = store([make_record("full", 0), make_record("lora", 0)], tmp_path / "results")
    record = folder / "full-0-0.003.json"
    code, said = _bench(capsys, "report", str(record), "--reports", str(tmp_path / "reports"))
    assert code == 0, said
    page = (tmp_path / "reports" / "smoke-full-0-0.003.html").read_text()
    assert "full" in page and "unknown" not in said


def test_report_of_a_json_file_that_is_no_record_says_what_it_takes(tmp_path, capsys):
    other = tmp_path / "comparison.json"
    other.write_text('{"baseline": "a", "changes": []}')
    code, said = _bench(capsys, "report", str(other))
    assert code == 2 and "not a record: a JSON object without run_id" in said
    assert said.strip().endswith(
        "bench report takes a suite YAML, a results folder (or its records.tar.xz) or one record file"
    )


def test_an_ab_folder_made_against_another_commit_is_refused(tmp_path: Path) -> None:
    """The rounds in an --out folder ran its baseline-src's code: a resumed A/B may reuse them only for
    that commit; another --baseline-rev gets a clear refusal, not the old worktree."""
    from bench.analysis import ab

    folder = tmp_path / "baseline-src"
    subprocess.run(["git", "clone", "-q", "--shared", "--no-checkout", str(ab.SOURCE), str(folder)], check=True)
    head = subprocess.run(["git", "-C", str(ab.SOURCE), "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    subprocess.run(["git", "-C", str(folder), "checkout", "-q", "--detach", head.strip()], check=True)
    assert ab._checkout("HEAD", tmp_path) == folder  # the same commit: reused
    parent = subprocess.run(["git", "-C", str(ab.SOURCE), "rev-parse", "HEAD~1"], capture_output=True, text=True)
    if parent.returncode != 0:
        pytest.skip("a shallow clone: no parent commit to ask for")
    with pytest.raises(ab.RoundError, match=r"holds an A/B against .*give another --out"):
        ab._checkout("HEAD~1", tmp_path)


def test_the_log_of_a_run_cut_off_by_ctrl_c_is_redacted(tmp_path: Path, monkeypatch) -> None:
    """A stored run's log is redacted with its record; a run cut off stores no record, so its log was left
    with whatever secret a library printed. It is redacted when the suite ends, however it ends."""
    from bench.execute import execute
    from bench.executors import EXECUTORS
    from bench.records.store import ResultStore

    secret = "hf_planted_secret_value_123"
    monkeypatch.setenv("HF_TOKEN", secret)

    class CutOff:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def machine(self) -> str:
            return "test-machine"

        def run(self, jobs: list, machine: str, progress: Any):
            jobs[0].log_path.parent.mkdir(parents=True, exist_ok=True)
            jobs[0].log_path.write_text(f"loading with token {secret}\n", encoding="utf-8")
            raise KeyboardInterrupt
            yield

        def close(self) -> None:
            pass

    monkeypatch.setitem(EXECUTORS._targets, "cut-off-test", "<object cut-off-test>")  # this test's only
    monkeypatch.setitem(EXECUTORS._loaded, "cut-off-test", CutOff)
    (spec,) = [s for s in plan(load_suite(write_suite(tmp_path, fast_suite("cut", ["lora"])))) if s.seed == 0][:1]
    with pytest.raises(KeyboardInterrupt):
        execute([spec], ResultStore(tmp_path / "results"), executor="cut-off-test")
    (log,) = (tmp_path / "results").rglob("*.log")
    assert secret not in log.read_text(encoding="utf-8") and "<redacted>" in log.read_text(encoding="utf-8")


def test_a_report_says_which_record_files_it_could_not_read(tmp_path):
    """A truncated record: the report said "None: every run finished" over the runs it had left out."""
    from tests.synthetic_records import make_set

    folder = store(make_set(), tmp_path / "results")
    damaged = folder / "truncated.json"
    damaged.write_text((next(folder.glob("*.json"))).read_text()[:300])
    out = tmp_path / "r.html"
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0
    html = out.read_text()
    assert 'id="unreadable"' in html and "None: every run finished" not in html
    assert "smoke/x86_64-2c-cpu/truncated.json: not JSON (truncated?)" in html and str(tmp_path) not in html
    damaged.unlink()
    assert main(["report", str(tmp_path / "results"), "--out", str(out)]) == 0
    assert 'id="unreadable"' not in out.read_text() and "None: every run finished" in out.read_text()


def test_a_report_names_a_record_whose_headline_disagrees_with_its_items(tmp_path):
    from tests.test_compare_audit import TASK, _scored_set, _with

    runs = _scored_set()
    runs[0] = _with(runs[0], **{f"accuracy__{TASK}": 0.5})
    folder = store(runs, tmp_path / "results")
    out = tmp_path / "r.html"
    assert main(["report", str(folder), "--out", str(out)]) == 0
    html = out.read_text()
    assert 'id="inconsistent"' in html and f"full seed 0: accuracy.{TASK} 0.5, its 100 items 0.9" in html
    assert main(["report", str(store(_scored_set(), tmp_path / "clean")), "--out", str(out)]) == 0
    assert 'id="inconsistent"' not in out.read_text()
