"""Behaviour of bench/plan.py (run ids), bench/execute.py (which stored runs are kept, the results and cache
folder checks, failure records), bench/cli/paths.py (output checks before any work) and the path rules of
bench/records/portable.py added on 2026-12-07 (whole and quoted paths, the checkout, a suite embedded in a report)
that a mutation audit found no test would notice if it broke. Each test fails on a named mutant of the code it
names. A run id that does not change when a run's result can (a gate aside) reuses a stale record; one that changes
when nothing does runs everything again."""

from __future__ import annotations

import argparse
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.cli import paths
from bench.cli.paths import output_problem
from bench.plan import plan
from bench.records.portable import portable_path, scrub, scrub_suite, scrub_text
from bench.records.store import ResultStore
from bench.suite import parse_suite
from tests.conftest import fast_suite
from tests.test_plan import ids
from tests.test_run_failures import MACHINE, StubExecutor, _specs

# bench/plan.py


def test_a_gate_is_no_part_of_a_run_id():
    """How bench compare gates a suite changes no run: a gate added to a measured suite reran all of it."""
    base = ids(fast_suite("s", ["full", "lora"]))
    assert ids(fast_suite("s", ["full", "lora"], gate={"min_effect": {"accuracy.*": 0.02}})) == base


def test_settings_that_change_a_result_change_every_run_id():
    """Remote code, gradient checkpointing (memory, speed), processes and FSDP: each a new run, not the stored one
    (each at its default gives the ids of the suite that does not name it)."""
    base = ids(fast_suite("s", ["full", "lora"]))
    execution = {"timeout_s": 300}
    changed = {
        "trust_remote_code": fast_suite(
            "s", ["full", "lora"], model={"preset": "tiny-llama", "trust_remote_code": True}
        ),
        "gradient_checkpointing": fast_suite("s", ["full", "lora"], training={"gradient_checkpointing": True}),
        "processes": fast_suite("s", ["full", "lora"], execution={**execution, "processes": 2}),
        "fsdp": fast_suite("s", ["full", "lora"], execution={**execution, "processes": 2, "parallel": "fsdp"}),
    }
    seen = {name: set(ids(data).values()) for name, data in changed.items()}
    for name, found in seen.items():
        assert found.isdisjoint(base.values()), name
    assert seen["processes"].isdisjoint(seen["fsdp"])
    defaults = fast_suite(
        "s",
        ["full", "lora"],
        model={"preset": "tiny-llama", "trust_remote_code": False},
        training={"gradient_checkpointing": False},
        execution={**execution, "processes": 1, "parallel": "ddp"},
    )
    assert ids(defaults) == base
    [spec, *_] = plan(parse_suite(changed["fsdp"]))
    assert (spec.processes, spec.parallel) == (2, "fsdp")


def test_a_later_option_is_left_out_of_the_run_id_only_at_its_default():
    """DPO's label_smoothing: 0.0 keeps the ids of runs stored before the option; the robust loss's 0.1 and 0.2
    are two runs."""
    assert ids(fast_suite("s", [{"dpo": {"label_smoothing": 0.0}}])) == ids(fast_suite("s", ["dpo"]))
    smoothed = [ids(fast_suite("s", [{"dpo": {"loss_type": "robust", "label_smoothing": p}}])) for p in (0.1, 0.2)]
    assert set(smoothed[0].values()).isdisjoint(smoothed[1].values())


def test_a_chained_run_embeds_its_parent_of_the_same_seed():
    """Seed 1's dpo starts from seed 1's sft run: its parent's run id is that run's, not seed 0's."""
    strategies = [{"lora": {"label": "sft"}}, {"dpo": {"label": "after", "start_from": "sft"}}]
    specs = {(spec.label, spec.seed): spec for spec in plan(parse_suite(fast_suite("s", strategies, seeds=[0, 1])))}
    for seed in (0, 1):
        assert specs[("after", seed)].parent["run_id"] == specs[("sft", seed)].run_id
    assert specs[("after", 0)].run_id != specs[("after", 1)].run_id


def test_a_records_header_names_the_runs_label_and_seed():
    """A failure record the driver writes (bench/execute.py failure_record) starts with the header: a labelled
    run's record under its strategy's name would be another run's in a report."""
    [spec] = plan(parse_suite(fast_suite("s", [{"lora": {"label": "lora-r4", "r": 4}}], seeds=[7])))
    header = spec.record_header()
    assert (header["run_id"], header["strategy"], header["label"], header["seed"]) == (
        spec.run_id,
        "lora",
        "lora-r4",
        7,
    )
    assert header["spec"]["options"]["r"] == 4


# bench/execute.py


@pytest.fixture
def stub(monkeypatch: pytest.MonkeyPatch) -> type[StubExecutor]:
    """tests/test_run_failures.py's stand-in executor: each run ends with its OUTCOME, nothing trains."""
    import bench.execute

    monkeypatch.setattr(bench.execute.EXECUTORS, "get", lambda name: StubExecutor)
    monkeypatch.setattr(StubExecutor, "started", [])
    return StubExecutor


def test_a_stored_skipped_run_is_kept_and_a_failed_one_runs_again(tmp_path, monkeypatch, stub):
    """A strategy that does not apply to the model (skipped) is not tried again by every `bench run`; a failure is.
    The report's results are in plan order, stored or run."""
    import bench.execute

    specs = _specs(tmp_path)
    results = ResultStore(tmp_path / "results")
    for spec, status in zip(specs, ("failed", "skipped")):
        record = bench.execute.failure_record(
            spec, MACHINE, "planted", "2026-12-07T00:00:00+00:00", 1.0, tmp_path / "x"
        )
        results.write(record.model_copy(update={"status": status}))
    report = bench.execute.execute(specs, results, machine=MACHINE)
    assert (report.reused, report.executed, stub.started) == (1, 1, [specs[0].label])
    assert [(r.label, r.status, r.reason) for r in report.results] == [
        (specs[0].label, "failed", "stub: not run"),
        (specs[1].label, "skipped", "planted"),
    ]


def test_a_suite_whose_runs_are_all_stored_checks_no_folder_and_runs_nothing(tmp_path, monkeypatch, stub):
    """`bench report`'s data is there: a full disk (or a read-only results copy) is no reason to refuse a rerun of
    a finished suite, which writes nothing."""
    import bench.execute

    specs, results = _specs(tmp_path), ResultStore(tmp_path / "results")
    for spec in specs:
        record = bench.execute.failure_record(
            spec, MACHINE, "planted", "2026-12-07T00:00:00+00:00", 1.0, tmp_path / "x"
        )
        results.write(record.model_copy(update={"status": "skipped"}))
    monkeypatch.setattr(bench.execute.shutil, "disk_usage", lambda path: SimpleNamespace(free=0))
    report = bench.execute.execute(specs, results, machine=MACHINE, keep_artefacts=True)  # a skipped run keeps none
    assert (report.reused, report.executed, stub.started) == (2, 0, [])
    assert bench.execute.results_dir_problem(results.root) == (
        f"results folder {results.root} has 0 MiB free, under the 100 MiB needed to store records and logs;"
        " nothing was run"
    )


def test_the_datasets_cache_lm_eval_writes_is_checked_too_where_hf_datasets_cache_puts_it(tmp_path, monkeypatch):
    import bench.execute

    (tmp_path / "afile").write_text("x")
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "bench-cache"))
    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "afile" / "datasets"))
    assert bench.execute.cache_dir_problem() == (
        f"cache folder {tmp_path / 'afile' / 'datasets'} is not writable: Not a directory;"
        " set HF_HOME or HF_DATASETS_CACHE to a writable folder; nothing was run"
    )
    monkeypatch.setenv("HF_DATASETS_CACHE", "~/hf-datasets-x")
    assert list(bench.execute.cache_dirs()) == [tmp_path / "bench-cache", Path.home() / "hf-datasets-x"]


@pytest.mark.parametrize(
    ("failure", "reason"),
    [
        ("worker raised MemoryError", "worker raised MemoryError\nout of memory: MemoryError"),
        ("out of memory: MemoryError in the forward pass", "out of memory: MemoryError in the forward pass"),
        (
            "worker killed by SIGKILL; the backend named its cause",
            "worker killed by SIGKILL; the backend named its cause",
        ),
        (
            "killed by SIGKILL after 3 s",
            "killed by SIGKILL after 3 s\nkilled by SIGKILL: the out-of-memory killer is the usual cause;"
            " check `dmesg` or the memory figures",
        ),
    ],
)
def test_a_failure_is_named_out_of_memory_once(tmp_path, monkeypatch, stub, failure: str, reason: str):
    """A reason that says out of memory already (no memory limit to name), or a SIGKILL the local backend has
    explained, gets no second line saying it."""
    import bench.execute
    from bench.backends.base import Outcome

    monkeypatch.setattr(stub, "OUTCOME", Outcome(None, failure))
    report = bench.execute.execute(_specs(tmp_path)[:1], ResultStore(tmp_path / "results"), machine=MACHINE)
    assert [(r.status, r.reason) for r in report.results] == [("failed", reason)]


def test_a_file_the_executor_cannot_write_stops_the_suite_naming_it_and_another_oserror_is_raised(
    tmp_path, monkeypatch, stub
):
    """A full disk under a run's log is a StoreError naming the file (bench run: one line, exit 2); an OSError that
    names no file (a fork that failed) is no environment problem to name: raised as it is."""
    import errno

    import bench.execute
    from bench.executors.base import StoreError

    def full(self, jobs, machine, progress):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "run.log"))
        yield

    def no_fork(self, jobs, machine, progress):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        yield

    monkeypatch.setattr(stub, "run", full)
    with pytest.raises(StoreError) as raised:
        bench.execute.execute(_specs(tmp_path), ResultStore(tmp_path / "results"), machine=MACHINE)
    assert str(raised.value) == f"could not write {tmp_path / 'run.log'}: No space left on device"
    monkeypatch.setattr(stub, "run", no_fork)
    with pytest.raises(OSError) as raised:
        bench.execute.execute(_specs(tmp_path), ResultStore(tmp_path / "results"), machine=MACHINE)
    assert type(raised.value) is BlockingIOError and raised.value.filename is None


def test_a_stored_run_whose_preference_file_was_split_by_row_runs_again(tmp_path, capsys, stub):
    """Its align.* metrics scored held-out pairs whose prompts it trained on (before the split by prompt); a file
    that cannot be read to tell counts as one that repeats its prompts."""
    import bench.execute

    [spec] = _specs(tmp_path)[:1]
    record = bench.execute.failure_record(spec, MACHINE, "planted", "2026-12-07T00:00:00+00:00", 1.0, tmp_path / "x")
    by_row = {"spec": {**record.spec, "preference": {"jsonl": str(tmp_path / "gone.jsonl")}}}
    ResultStore(tmp_path / "results").write(
        record.model_copy(update={**by_row, "status": "skipped", "budget": {"preference": {"heldout": 4}}})
    )
    report = bench.execute.execute([spec], ResultStore(tmp_path / "results"), machine=MACHINE)
    assert (report.reused, stub.started) == (0, [spec.label])
    assert "its stored run split the preference file by row" in " ".join(capsys.readouterr().err.split())


def test_a_stored_file_that_is_no_record_and_cannot_be_moved_is_said_once(tmp_path, monkeypatch, capsys, stub):
    """bench run reads each planned record twice (is anything to run? then per run): one line, not two."""
    import bench.execute

    real = os.replace

    def refuse(source, target):  # the set-aside's rename only: the new record is written by a rename too
        if str(target).endswith(".unreadable"):
            raise PermissionError(13, "Permission denied")
        real(source, target)

    [spec] = _specs(tmp_path)[:1]
    path = ResultStore(tmp_path / "results").path_for(spec.suite, MACHINE, spec.run_id)
    path.parent.mkdir(parents=True)
    path.write_text("{")
    monkeypatch.setattr(bench.execute.os, "replace", refuse)
    report = bench.execute.execute([spec], ResultStore(tmp_path / "results"), machine=MACHINE)
    said = [line for line in capsys.readouterr().err.splitlines() if "is not a record" in line]
    assert len(said) == 1 and said[0].startswith(f"bench: {path} is not a record (")
    assert said[0].endswith(f"left in place; the new record replaces it; running {spec.run_id} again")
    assert (report.executed, stub.started) == (1, [spec.label])


# bench/cli/paths.py


def _problem(command: str, **options: Path | None) -> str | None:
    return output_problem(argparse.Namespace(command=command, **options))


def test_an_output_file_that_exists_or_whose_folders_are_missing_is_no_problem(tmp_path):
    """Writing the same --json again overwrites it; a folder that is not there yet is made."""
    (tmp_path / "c.json").write_text("{}")
    assert _problem("compare", json=tmp_path / "c.json", html=None) is None
    assert _problem("history", json=tmp_path / "new" / "deeper" / "h.json") is None
    assert _problem("report", out=None, reports=tmp_path / "new" / "reports") is None


def test_an_output_below_a_file_names_the_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    below = tmp_path / "afile" / "sub" / "c.json"
    assert _problem("estimate", json=below) == f"--json {below}: {tmp_path / 'afile'} is a file, not a folder"
    folder = tmp_path / "afile" / "reports"
    assert (
        _problem("report", out=None, reports=folder)
        == f"--reports {folder}: {tmp_path / 'afile'} is a file, not a folder"
    )


def test_a_folder_that_cannot_be_entered_or_an_existing_read_only_output_folder_is_refused(tmp_path, monkeypatch):
    """A file is made in a folder that can be written *and* entered (os.access W_OK | X_OK); an output folder that
    exists is checked itself, not only the folder above it."""
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr(paths.os, "access", lambda path, mode: not (Path(path) == locked and mode & os.X_OK))
    said = _problem("recommend", json=locked / "r.json")
    assert said == f"--json {locked / 'r.json'}: cannot write in {locked} (read-only or no permission)"
    said = _problem("report", out=None, reports=locked)
    assert said == f"--reports {locked}: cannot write in {locked} (read-only or no permission)"


def test_ab_checks_both_its_outputs_and_report_checks_reports_only_where_it_writes_there(tmp_path):
    (tmp_path / "afile").write_text("x")
    (tmp_path / "afolder").mkdir()
    assert (
        _problem("ab", json=tmp_path / "afolder", out=None)
        == f"--json {tmp_path / 'afolder'} is a folder; give a file path"
    )
    assert _problem("ab", json=None, out=tmp_path / "afile") == f"--out {tmp_path / 'afile'} is a file; give a folder"
    # `bench report --out x.html` writes no file in --reports: a --reports that is a file is no problem then
    assert _problem("report", out=tmp_path / "r.html", reports=tmp_path / "afile") is None
    assert (
        _problem("report", out=None, reports=tmp_path / "afile")
        == f"--reports {tmp_path / 'afile'} is a file; give a folder"
    )


# bench/records/portable.py: the rules of 2026-12-07 (whole and quoted paths, the checkout, scrub_suite)


@pytest.mark.parametrize(
    ("path", "kept"),
    [
        ("/opt/ci/src/bench/cli/main.py:58", "bench/cli/main.py:58"),  # a traceback's line in another checkout
        ("/opt/ci/src/bench/report/templates/report.html.j2", "bench/report/templates/report.html.j2"),
        ("/tmp/u/bench/clients/acme-secret/run.py", "acme-secret/run.py"),  # a user's folder named bench
        ("/tmp/u/bench/run.py.d/acme-secret/x.jsonl", "acme-secret/x.jsonl"),
    ],
)
def test_only_the_packages_own_files_keep_their_place_below_a_folder_named_bench(path: str, kept: str):
    assert portable_path(path) == kept


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("/srv/data/x.jsonl, see docs/data.md", "data/x.jsonl, see docs/data.md"),  # a comma: a message
        ("/srv/data/x.jsonl is not in docs/data.md.", "data/x.jsonl is not in docs/data.md."),  # a full stop
        ("/srv/data/x.jsonl has rows/columns:", "data/x.jsonl has rows/columns:"),
        ("/s per step", "/s per step"),  # one part: no path, its slash kept
        ('cd "/root" and (/tmp) first', 'cd "/root" and (/tmp) first'),  # quoted, one part: as written
    ],
)
def test_a_message_that_starts_with_a_path_keeps_its_words(text: str, scrubbed: str):
    assert scrub_text(text) == scrubbed


def test_a_path_under_the_results_root_is_relative_to_it_spaces_or_quotes_and_all(tmp_path):
    """artefacts_dir is read back as <results>/<artefacts_dir> (bench/execute.py): cut to its last two parts, a
    results root with a space in it ran every kept run again under --keep-artefacts."""
    root = tmp_path / "my results"
    kept = f"{root}/smoke/{MACHINE}/artefacts/abc123"
    raw = {"spec": {"artefacts_dir": kept}, "reason": f"could not write '{kept}/adapter.safetensors'"}
    clean = scrub(raw, results_root=root)
    assert clean["spec"]["artefacts_dir"] == f"smoke/{MACHINE}/artefacts/abc123"
    assert clean["reason"] == f"could not write 'smoke/{MACHINE}/artefacts/abc123/adapter.safetensors'"


@pytest.mark.parametrize(
    ("line", "embedded"),
    [
        ('  - jsonl: "/srv/a b/c d/x.jsonl"  # n', '  - jsonl: "c d/x.jsonl"  # n'),
        ("  gguf: /srv/Alice Smith/models/q4.gguf", "  gguf: models/q4.gguf"),
        ("  config: '/srv/Alice Smith/cfg/config.json'", "  config: 'cfg/config.json'"),
        ("  chat_template: /srv/Alice Smith/t/chat.jinja", "  chat_template: t/chat.jinja"),
        ("- path: /srv/Alice Smith/data/x.jsonl", "- path: data/x.jsonl"),
        ("  path: https://example.org/a/b/x.jsonl", "  path: https://example.org/a/b/x.jsonl"),  # a URL: no path
        ("  path: /data", "  path: /data"),  # one part: no folder of anyone's
        ("  path: data/x.jsonl", "  path: data/x.jsonl"),
        ("  name: /srv/Alice Smith/x", "  name: /srv/Alice Smith/x"),  # not a path field: as the author wrote it
    ],
)
def test_a_suite_embedded_in_a_report_cuts_each_path_field_as_records_cut_it(line: str, embedded: str):
    assert scrub_suite(line + "\n") == embedded + "\n"


def test_a_suite_embedded_in_a_report_is_scrubbed_as_any_authors_text_first(monkeypatch):
    """scrub_document: a home folder's owner left out wherever it is (a comment too), a token redacted."""
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    text = "# copied from /home/alice/suites, token hf_abcdefghijklmnop1234\nname: x\n"
    assert scrub_suite(text) == "# copied from ~/suites, token <redacted>\nname: x\n"
