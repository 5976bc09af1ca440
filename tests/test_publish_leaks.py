"""What `bench publish` promises: nothing it ships names a path, a host, a person or a secret. A failed
run's reason kept a proxy's password, a GitHub token, an IPv6 address and a network share; the front page,
the validation pages and archives and `bench run`'s report showed authored text unchecked; harmless text
(`peft@v0.13.0`, `tokens /s`) was refused or rewritten."""

from __future__ import annotations

import argparse
import json
import subprocess
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from bench.cli.publish import main as publish_main
from bench.records.archives import pack
from bench.records.leaks import leaks
from bench.records.portable import is_secret_name, portable_path, scrub_text, secret_values
from bench.records.store import ResultStore
from bench.report.publish import LeakError, publish
from tests.conftest import REPO, fast_suite, write_suite
from tests.synthetic_records import make_record

PROXY = "http://alice:pr0xyPass@proxy:3128"
REASON = (
    f"RuntimeError: upload to {PROXY} failed (fe80::1ff:fe23:4567:890a) with token hf_SecretTokenValue123456"
    " and pat ghp_patSecret0000111; cwd ~alice/x; share \\\\fileserver.corp\\alice\\x"
)

# (text, what leaks.leaks() names in it): each must be refused
LEAKS = [
    (PROXY, "credentials in URL"),
    ("postgres://app:dbSecret99@db:5432/x", "credentials in URL"),
    ("token hf_SecretTokenValue123456", "token"),
    ("pat ghp_patSecret0000111", "token"),
    ("github_pat_11ABCDEFG0123456789_abcdefXYZ", "token"),
    ("aws AKIAIOSFODNN7EXAMPLE", "token"),
    ("key sk-proj-abcdEFGH1234ijklMNOP", "token"),
    ("slack xoxb-1234567890-abcdefghij", "token"),
    ("fe80::1ff:fe23:4567:890a", "IPv6 address"),
    ("2001:db8:85a3:0:0:8a2e:370:7334", "IPv6 address"),
    ("\\\\fileserver.corp\\alice\\x", "network share"),
    ("cwd ~alice/x", "home folder of a named user"),
    ("on gpu-box-17.corp.example.com", "internal host name"),
    ("10.1.2.3", "IP address"),
    ("mail alice@gpu-node.example.org", "user@host"),
    ("/home/alice/secret-project", "absolute path"),
    ("C:\\Users\\bob\\notes.txt", "absolute path"),
]
# harmless text: never refused, never rewritten by the scrub
HARMLESS = [
    "lora@r8.a16",
    "peft@v0.13.0",
    "team@arxiv.org",  # an organisation's mailbox names no person (a person's address is refused, above)
    "release 1.2.3.4",
    "3 /4",
    "tokens /s",
    "^/api/v1$",
    "cd /root",
    "https://arxiv.org/abs/2106.09685",
    "until: ['</s>']",
    "12:30:45",
    "std::vector",
    "hf_hub_download",
]


@pytest.mark.parametrize(("text", "kind"), LEAKS)
def test_each_leak_is_refused(text: str, kind: str):
    found = leaks({"reason": text}, hosts=[])
    assert any(what.startswith(kind) for _, what in found), found


@pytest.mark.parametrize("text", HARMLESS)
def test_harmless_text_is_neither_refused_nor_rewritten(text: str):
    assert leaks({"reason": text}, hosts=[]) == []
    assert scrub_text(text) == text


def test_scrub_redacts_credentials_tokens_shares_and_named_homes():
    clean = scrub_text(REASON)
    for secret in ("alice", "pr0xyPass", "hf_Secret", "ghp_", "fileserver"):
        assert secret not in clean, clean
    assert "http://<redacted>@proxy:3128" in clean and "cwd ~/x" in clean
    assert [what for _, what in leaks({"reason": clean}, hosts=[])] == ["IPv6 address 'fe80::1ff:fe23:4567:890a'"]
    assert scrub_text(clean) == clean  # idempotent


def test_secret_names_include_pats_passwords_dsns_and_credentials_of_any_url():
    for name in (
        "GITHUB_PAT",
        "SMTP_PASS",
        "DB_PASSWD",
        "SENTRY_DSN",
        "DATABASE_URL",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        assert is_secret_name(name), name
    for name in ("PATH", "PYTHONPATH", "HTTPS_PROXY", "OMP_NUM_THREADS", "SSH_AUTH_SOCK"):
        assert not is_secret_name(name), name
    found = secret_values({"HTTPS_PROXY": PROXY, "GITHUB_PAT": "ghp_patSecret0000111", "PATH": "/usr/bin"})
    assert set(found) == {"alice:pr0xyPass", "pr0xyPass", "ghp_patSecret0000111"}


@pytest.mark.parametrize(
    ("path", "portable"),
    [
        ("/home/alice/train.jsonl", "train.jsonl"),
        ("/Users/bob/data.jsonl", "data.jsonl"),
        ("C:\\Users\\carol\\x.jsonl", "x.jsonl"),
        ("/home/alice/data/train.jsonl", "data/train.jsonl"),
        ("/tmp/user2/home/alice/models/my-llama", "models/my-llama"),
        ("/home/alice", "~"),
        ("/srv/data/train.jsonl", "data/train.jsonl"),
        ("/srv/results/smoke/m/a.json", "smoke/m/a.json"),  # with results_root, below
    ],
)
def test_a_portable_path_never_names_a_home_folders_owner(path: str, portable: str):
    assert portable_path(path, results_root="/srv/results/") == portable


def test_a_failed_runs_reason_is_scrubbed_and_publish_names_what_is_left(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HTTPS_PROXY", PROXY)
    monkeypatch.setenv("GITHUB_PAT", "ghp_patSecret0000111")
    root = tmp_path / "results"
    path = ResultStore(root).write(make_record("full", 0, status="failed", reason=REASON))
    text = path.read_text()
    for secret in ("pr0xyPass", "ghp_patSecret0000111", "hf_SecretTokenValue123456", "fileserver", "~alice"):
        assert secret not in text, secret
    assert publish_main([str(root), "--out", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert f"{path.relative_to(root)}: reason: IPv6 address" in err and not (tmp_path / "site").exists()


def _set(root: Path, suite: str = "smoke") -> None:
    for label in ("full", "lora"):
        ResultStore(root).write(make_record(label, 0).model_copy(update={"suite": suite}))


@pytest.mark.parametrize(
    "leak",
    [
        "token hf_SecretTokenValue123456",
        f"proxy {PROXY}",
        "data in /home/alice/secret-project",
        "server 10.1.2.3",
        "ask alice@gpu-node.example.org",
        "C:\\Users\\bob\\notes",
    ],
)
def test_findings_and_suite_descriptions_on_the_front_page_are_leak_checked(tmp_path, leak: str):
    root = tmp_path / "results"
    _set(root, "forgetting")
    (root / "forgetting" / "FINDINGS.txt").write_text(f"Question: does LoRA forget less?\n\nSeen {leak}.\n")
    with pytest.raises(LeakError, match=r"forgetting/FINDINGS\.txt: "):
        publish(root, tmp_path / "site")
    assert not (tmp_path / "site").exists()
    (root / "forgetting" / "FINDINGS.txt").unlink()
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "forgetting.yaml").write_text(json.dumps({"description": f"Run {leak}"}))
    with pytest.raises(LeakError, match=r"forgetting\.yaml \(its description\): "):
        publish(root, tmp_path / "site")
    (tmp_path / "suites" / "forgetting.yaml").write_text(json.dumps({"description": "Which forgets less?"}))
    assert "Which forgets less?" in publish(root, tmp_path / "site").read_text()


def _experiment(root: Path, extra: dict[str, str] | None = None) -> Path:
    home = root / "validation" / "exp"
    _set(home / "records")
    for name, text in (extra or {}).items():
        (home / "records" / name).write_text(text)
    pack(home / "records", home / "records.tar.xz")
    subprocess.run(["rm", "-r", str(home / "records")], check=True)
    (home / "README.md").write_text("# exp: an A/A\n\nValidates nothing planted.\n")
    return home


def test_validation_pages_skip_what_git_ignores_and_pages_and_archives_are_leak_checked(tmp_path):
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("local-*.md\n")
    root, site = tmp_path / "results", tmp_path / "site"
    _set(root)
    home = _experiment(root)
    (home / "local-notes.md").write_text("scratch in /home/alice/tmp, not for the site\n")
    publish(root, site)
    assert (site / "validation" / "exp" / "README.html").is_file()
    assert not (site / "validation" / "exp" / "local-notes.html").exists()  # git-ignored: stays local

    (home / "summary.md").write_text("ran on 10.1.2.3\n")
    with pytest.raises(LeakError, match=r"validation/exp/summary\.md: IP address '10\.1\.2\.3'"):
        publish(root, site)
    (home / "summary.md").unlink()
    _experiment(root, {"comparison.json": json.dumps({"candidate": "/tmp/exp/avx2/smoke/x86_64-2c-cpu"})})
    with pytest.raises(LeakError, match=r"records\.tar\.xz: records/comparison\.json: candidate: absolute path"):
        publish(root, site)


def test_committed_archives_hold_no_absolute_path():
    """history-sim's history.json and store/*.history.json had /work/main/results/... folders, aa's
    other-kernels/comparison.json a /tmp/exp/... candidate."""
    from bench.report.front import archive_leaks

    for name in ("history-sim", "aa"):
        archive = REPO / "results" / "validation" / name / "records.tar.xz"
        assert archive_leaks(archive, hosts=[]) == [], name
        with tarfile.open(archive) as tar:
            assert all(not member.name.startswith("/") for member in tar)


SUITE_SECRETS = (
    "# my proxy: http://alice:pr0xyPass@proxy:3128, pat ghp_patSecret0000111\n"
    "description: data in /home/alice/secret-project, token hf_SecretTokenValue123456\n"
)


def _suite(tmp_path: Path) -> Path:
    path = write_suite(tmp_path, fast_suite("embedded", ["full"]))
    path.write_text(SUITE_SECRETS + path.read_text().replace("description:", "# description:"))
    return path


def _clean(html: str) -> None:
    for secret in ("pr0xyPass", "ghp_patSecret0000111", "hf_SecretTokenValue123456", "/home/alice", "my-pat-value-42"):
        assert secret not in html, secret


def test_bench_run_report_embeds_the_suite_scrubbed(tmp_path, monkeypatch):
    import bench.api
    from bench.cli.run import _run

    monkeypatch.setenv("MY_PAT", "my-pat-value-42")
    suite = _suite(tmp_path)
    suite.write_text(suite.read_text() + "# the pat my-pat-value-42\n")
    ran = SimpleNamespace(
        results=[make_record("full", 0).model_copy(update={"suite": "embedded"})], executed=1, reused=0
    )
    monkeypatch.setattr(bench.api, "run_suite", lambda *args, **kwargs: ran)
    args = argparse.Namespace(
        suite=suite, results=tmp_path / "results", only=None, quiet=True, no_report=False, reports=tmp_path / "r",
        keep_artefacts=False, record_host=False, executor="local", address=None,
    )  # fmt: skip
    assert _run(args) == 0
    html = (tmp_path / "r" / "embedded.html").read_text()
    assert "secret-project" in html and "http://&lt;redacted&gt;@proxy:3128" in html  # the suite is there, scrubbed
    _clean(html)


def test_bench_report_scrubs_the_suite_and_the_notes(tmp_path, monkeypatch):
    from bench.api import report

    monkeypatch.setenv("MY_PAT", "my-pat-value-42")
    suite = _suite(tmp_path)
    ResultStore(tmp_path / "results").write(make_record("full", 0).model_copy(update={"suite": "embedded"}))
    notes = tmp_path / "notes.txt"
    notes.write_text("Findings: see /home/alice/secret-project; pat my-pat-value-42; token hf_SecretTokenValue123456\n")
    html = report(suite, tmp_path / "a.html", tmp_path / "results", notes=notes).read_text()
    assert "Findings: see ~/secret-project" in html  # the home folder's owner left out, the rest as written
    _clean(html)
    record = ResultStore(tmp_path / "results").write(make_record("lora", 1).model_copy(update={"suite": "embedded"}))
    _clean(report(record, tmp_path / "b.html", notes=notes).read_text())


def test_a_documents_own_paths_stay_as_written_but_a_home_folders_owner_goes():
    """The suite comment `tar -xJf ... -C /tmp/u && cp -r /tmp/u/records/x/* results/x/` was rewritten to
    `-C tmp/u && cp -r x/* ...` in the committed reports: a command that no longer says what it did."""
    from bench.records.portable import scrub_document

    command = "mkdir -p /tmp/u && tar -xJf results/x/records.tar.xz -C /tmp/u && cp -r /tmp/u/records/x/* results/x/"
    assert scrub_document(command) == command
    assert scrub_document("data: /home/alice/data/x.jsonl, C:\\Users\\carol\\y.csv, ~bob/z") == (
        "data: ~/data/x.jsonl, ~\\y.csv, ~/z"
    )
