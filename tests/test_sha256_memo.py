"""A large file's sha256 is taken once per version of it (bench/models/cache.py file_sha256)."""

from __future__ import annotations

import hashlib
import os

import pytest

from bench.models import cache


@pytest.fixture
def small_threshold(tmp_path, monkeypatch):
    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(cache, "REMEMBERED_FROM_BYTES", 1024)


def _refuse_to_read(*args, **kwargs):
    raise AssertionError("the file was read again")


def test_a_large_file_is_hashed_once_per_version(tmp_path, small_threshold, monkeypatch):
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"a" * 4096)
    first = cache.file_sha256(weights)
    assert first == hashlib.sha256(b"a" * 4096).hexdigest()
    with monkeypatch.context() as patched:
        patched.setattr(cache, "open", _refuse_to_read, raising=False)
        assert cache.file_sha256(weights) == first  # remembered: not read again
    weights.write_bytes(b"b" * 4096)  # the same size, a new modification time
    stamp = weights.stat().st_mtime_ns + 10**9
    os.utime(weights, ns=(stamp, stamp))
    assert cache.file_sha256(weights) == hashlib.sha256(b"b" * 4096).hexdigest()


def test_a_small_file_is_always_read_and_a_damaged_memo_is_ignored(tmp_path, small_threshold, monkeypatch):
    small = tmp_path / "config.json"
    small.write_text("{}")
    cache.file_sha256(small)
    assert not (tmp_path / "cache" / "sha256").exists()
    large = tmp_path / "big.bin"
    large.write_bytes(b"c" * 2048)
    cache.file_sha256(large)
    (memo,) = (tmp_path / "cache" / "sha256").iterdir()
    memo.write_text("not a digest\n")
    assert cache.file_sha256(large) == hashlib.sha256(b"c" * 2048).hexdigest()
