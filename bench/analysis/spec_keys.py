"""Which runs are the same experiment: a record's spec without its seed, canonical as run ids are.

bench compare matches runs by these keys, and says which fields differ where they do not match.
"""

from __future__ import annotations

import json
from typing import Any

from bench.plan import canonical_spec
from bench.records.results import RunResult


def spec_key(record: RunResult) -> str:
    """The spec without its seed, canonical as run ids are: two runs are comparable when these are equal."""
    return json.dumps(normalised_spec(record.spec), sort_keys=True, default=str)


def normalised_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as RunSpec.run_id hashes it (bench.plan.canonical_spec), less the seed and any unset
    (null) field, so a record written before a field existed matches one written after it."""
    kept = canonical_spec(spec)
    kept.pop("seed", None)
    return _without_unset(kept)


def _without_unset(value: Any) -> Any:
    """The spec without its unset (null) fields: a field added to the spec later is null in new records and
    absent from older ones, and the two describe the same run (as run ids treat them)."""
    if isinstance(value, dict):
        return {k: _without_unset(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_unset(item) for item in value]
    return value


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out.update(_flatten(item, f"{prefix}{key}."))
        return out
    return {prefix.rstrip("."): value}


def spec_diff(a: str, b: str) -> list[str]:
    """Dotted field names that differ between two spec keys."""
    left, right = _flatten(json.loads(a)), _flatten(json.loads(b))
    return sorted(k for k in set(left) | set(right) if left.get(k) != right.get(k))
