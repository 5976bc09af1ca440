"""Schema versions of the record and the migrations that bring an older raw record to the current one.

Imports no torch and nothing of bench but bench/records/portable.py (the schema 7 scrub)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

SCHEMA_VERSION = 7


def _v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 2 added the hardware fingerprint and timing quality. A v1 record's hardware is rebuilt
    from the fields it has; its SIMD extensions were not recorded (isa None), so its fingerprint
    never equals a v2 one and its timings are never compared with newer records."""
    environment = dict(raw.get("environment") or {})
    environment.setdefault(
        "hardware",
        {
            "cpu": environment.get("cpu", "unknown"),
            "cores": environment.get("cpu_count", 0),
            "isa": None,
            "gpus": environment.get("gpus", []),
            "torch_threads": environment.get("torch_threads"),
        },
    )
    return {**raw, "environment": environment, "schema_version": 2}


def _v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 3 added the commit time (`environment.git_commit_time`); older records have none and
    are placed in history by when they ran."""
    environment = {**(raw.get("environment") or {}), "git_commit_time": None}
    return {**raw, "environment": environment, "schema_version": 3}


def _v3_to_v4(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 4 added training memory by component (`memory`); older records have none."""
    return {**raw, "memory": None, "schema_version": 4}


def _v4_to_v5(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 5 added per-item correctness (`items`); older records have none."""
    return {**raw, "items": None, "schema_version": 5}


def _v5_to_v6(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 6 added the session (`session`: the `bench run` invocation); older records have none."""
    return {**raw, "session": None, "schema_version": 6}


def _v6_to_v7(raw: dict[str, Any]) -> dict[str, Any]:
    """Schema 7 records can be published: no absolute path, no host name, only allow-listed environment
    variables (bench/records/portable.py). Older records are scrubbed the same way on load."""
    from bench.records.portable import scrub

    return {**scrub(raw), "schema_version": 7}


# Upgrades a raw record of version N to version N + 1; add one entry per schema change.
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    1: _v1_to_v2,
    2: _v2_to_v3,
    3: _v3_to_v4,
    4: _v4_to_v5,
    5: _v5_to_v6,
    6: _v6_to_v7,
}


class NotARecord(ValueError):
    """A JSON file that is not a record this harness can read; the message says why."""


def migrate(raw: Any) -> dict[str, Any]:
    """A raw record brought to the current schema; NotARecord for anything else."""
    if not isinstance(raw, dict):
        raise NotARecord(f"not a record: a JSON {type(raw).__name__.replace('dict', 'object')}")
    if "run_id" not in raw:
        keys = ", ".join(sorted(map(str, raw))[:5])
        raise NotARecord(f"not a record: a JSON object without run_id (keys: {keys or 'none'})")
    version = raw.get("schema_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise NotARecord(f"not a record: schema_version {version!r}")
    if version > SCHEMA_VERSION:
        raise NotARecord(f"schema_version {version} is newer than this harness ({SCHEMA_VERSION}): update bench")
    while version < SCHEMA_VERSION:
        raw = MIGRATIONS[version](raw)
        version = raw["schema_version"]
    return raw
