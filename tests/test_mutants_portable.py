"""Behaviour of bench/records/portable.py (the scrub of records and what `bench publish` refuses) that a mutation
audit found no test would notice if it broke; the rest of bench/records is in tests/test_mutants_records.py. Each
test fails on a named mutant of the code it names."""

from __future__ import annotations

import socket

import pytest

from bench.records.leaks import leaks, text_leaks
from bench.records.portable import (
    SOURCE_ROOT,
    is_secret_name,
    machine_hosts,
    portable_path,
    redact,
    scrub,
    scrub_text,
    secret_values,
)


def test_of_two_secrets_one_inside_the_other_the_longer_is_redacted_whole_and_short_values_are_no_secret():
    """`abcdefgh` redacted first would leave `<redacted>-and-more` of the longer one; a value under 8 characters
    (`1`, `true`) would redact every such word of a record."""
    environ = {"A_TOKEN": "abcdefgh", "B_TOKEN": "abcdefgh-and-more", "C_KEY": "true", "PATH": "/usr/bin"}
    found = secret_values(environ)
    assert found == ["abcdefgh-and-more", "abcdefgh"]
    assert redact("key abcdefgh-and-more, flag true", found) == "key <redacted>, flag true"


def test_a_lower_case_secret_name_is_secret_too():
    for name in ("hf_token", "github_pat", "my_service_secret", "aws_secret_access_key"):
        assert is_secret_name(name), name
    assert not is_secret_name("omp_num_threads")


@pytest.mark.parametrize(
    ("hostname", "hosts"),
    [
        ("gpu-node-17.corp.example", ["gpu-node-17", "gpu-node-17.corp.example"]),  # and its first label
        ("buildfarm", ["buildfarm"]),  # 8 characters or more
        ("vm01", ["vm01"]),  # 4 characters with a digit
        ("bench", []),  # a word: it would match every path of this checkout
        ("node", []),
        ("localhost", []),
    ],
)
def test_this_machines_host_names_are_those_that_cannot_be_mistaken_for_a_word(monkeypatch, hostname, hosts):
    monkeypatch.setattr(socket, "gethostname", lambda: hostname)
    assert machine_hosts() == hosts


def test_a_recorded_host_names_first_label_is_scrubbed_too_and_only_allowed_variables_are_kept(monkeypatch):
    """`build-box-42.example.org` recorded; a reason naming `build-box-42` alone names the same machine."""
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    raw = {
        "environment": {
            "hostname": "build-box-42.example.org",
            "omp": {"OMP_NUM_THREADS": "2", "LD_PRELOAD": "libiomp5.so", "KMP_BLOCKTIME": "0"},
        },
        "reason": "lost build-box-42 at step 3",
    }
    clean = scrub(raw)
    assert clean["reason"] == "lost <host> at step 3" and clean["environment"]["hostname"] is None
    assert clean["environment"]["omp"] == {"OMP_NUM_THREADS": "2", "KMP_BLOCKTIME": "0"}


def test_a_log_path_is_cut_at_the_last_folder_named_as_the_suite():
    """A results root inside a folder named like the suite (/srv/smoke/results/smoke/...): the log is the suite's."""
    raw = {"suite": "smoke", "log_path": "/srv/smoke/results/smoke/m/logs/r.log"}
    assert scrub(raw)["log_path"] == "smoke/m/logs/r.log"


def test_cache_package_and_checkout_paths_keep_their_place():
    assert portable_path("/data/cache/converted/tiny-abc", cache_root="/data/cache/") == "cache:converted/tiny-abc"
    assert portable_path("/opt/ci/src/bench/records/store.py") == "bench/records/store.py"  # another checkout
    fixture = SOURCE_ROOT / "tests" / "fixtures" / "record-schema-1.json"
    assert portable_path(str(fixture)) == "tests/fixtures/record-schema-1.json"  # this checkout


@pytest.mark.parametrize("text", ["listening on ::1 port 8080", "sizes 300.12.7.1", "checksum 256.0.0.1"])
def test_loopback_and_numbers_past_255_are_no_address(text):
    assert leaks({"reason": text}, hosts=[]) == []


def test_a_recorded_host_name_is_named_once_per_field_and_a_longer_name_is_not_it():
    raw = {"environment": {"hostname": "build-box-42"}, "reason": "on build-box-42", "label": "build-box-420"}
    assert leaks(raw, hosts=["build-box-42"]) == [
        ("environment.hostname", "host name 'build-box-42'"),
        ("reason", "host name 'build-box-42'"),
    ]
    assert text_leaks("ran on node-12", hosts=["node-1"]) == []


def test_a_refusal_shows_a_tokens_first_characters_only():
    """The refusal lands in a CI log: it must not print the token it refuses."""
    assert leaks({"reason": "token hf_SecretTokenValue123456"}, hosts=[]) == [("reason", "token 'hf_Sec…'")]


def test_a_path_of_two_parts_is_a_path():
    """`/home/alice` and `/srv/data` name a folder (two parts); `/root`, `/s` do not."""
    assert leaks({"reason": "wrote /srv/data"}, hosts=[]) == [("reason", "absolute path '/srv/data'")]
    assert scrub_text("in /home/alice and /srv/data") == "in ~ and srv/data"


def test_strings_inside_lists_are_scrubbed():
    """A retained task's file and a timing reason live in lists of the record."""
    raw = {
        "spec": {"retain": [{"jsonl": "/home/alice/data/r.jsonl"}]},
        "timing_quality": {"reasons": ["slow on /home/bob/x/y"]},
    }
    assert scrub(raw) == {
        "spec": {"retain": [{"jsonl": "data/r.jsonl"}]},
        "timing_quality": {"reasons": ["slow on x/y"]},
    }
