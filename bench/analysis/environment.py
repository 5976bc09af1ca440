"""What differs between two sets of runs besides what is being compared: the commit, the packages, Python,
the hardware and the data files the runs read (their sha256). A regression that arrives with a new PEFT is
a question about PEFT before it is one about the code, so a comparison says which of these changed between
its sides."""

from __future__ import annotations

from dataclasses import dataclass

from bench.records.results import RunResult

_SHORT_COMMIT = 10


@dataclass(frozen=True)
class EnvironmentChange:
    """One fact of the runs' environment whose values differ between the sides (each side's values sorted)."""

    # "commit", "python", "machine", "hardware FIELD", "cuda", "data ROLE" or "code plugin:MODULE" (a file's
    # sha256), or a package's name
    name: str
    baseline: list[str]
    candidate: list[str]

    def text(self) -> str:
        """`peft 0.21.2 -> 0.22.0`; a side whose runs disagree among themselves lists each value."""
        return f"{self.name} {' / '.join(self.baseline)} -> {' / '.join(self.candidate)}"


def _commit(record: RunResult) -> str | None:
    """`abc1234567`, `abc1234567 (with uncommitted changes 1a2b3c4d)`: the digest of the changes tells two dirty
    trees of one commit apart; a dirty record written before it was recorded says only that it was dirty."""
    env = record.environment
    if not env.git_commit:
        return None
    if not env.git_dirty:
        return env.git_commit[:_SHORT_COMMIT]
    digest = f" {env.git_diff_sha256[:8]}" if env.git_diff_sha256 else ""
    return f"{env.git_commit[:_SHORT_COMMIT]} (with uncommitted changes{digest})"


def _facts(record: RunResult) -> dict[str, str | None]:
    """A run's environment as name -> value; None where the record does not say."""
    env = record.environment
    facts: dict[str, str | None] = {"commit": _commit(record), "python": env.python, "machine": env.machine}
    # the hardware field by field, each only where recorded: an older record without `isa` is no other CPU
    for field, value in (env.hardware.model_dump() if env.hardware else {}).items():
        facts[f"hardware {field}"] = _text(value)
    facts["cuda"] = env.cuda
    facts.update(env.packages)
    digests = (record.model or {}).get("data_sha256") or {}  # role -> sha256 of a file (or plugin module) it read
    for role, sha in digests.items():
        facts[f"{'code' if role.startswith('plugin:') else 'data'} {role}"] = str(sha)[:_SHORT_COMMIT]
    return facts


def _text(value: object) -> str | None:
    if value is None:
        return None
    return (", ".join(map(str, value)) or "none") if isinstance(value, list) else str(value)


def environment_of(records: list[RunResult]) -> dict[str, list[str]]:
    """Each environment fact the runs recorded, with its values over them (sorted; facts none recorded left out)."""
    values: dict[str, set[str]] = {}
    for record in records:
        for name, value in _facts(record).items():
            if value is not None:
                values.setdefault(name, set()).add(value)
    return {name: sorted(found) for name, found in values.items()}


def differences(before: dict[str, list[str]], after: dict[str, list[str]]) -> list[EnvironmentChange]:
    """The facts whose values differ, commit first, then Python, the machine, the hardware field by field, CUDA,
    the data files and plugin code by role, and the packages by name.
    A fact one side never recorded is left out: records of an older schema list fewer packages, and a value
    that was not recorded is no evidence that it changed."""
    fixed = ["commit", "python", "machine"]
    rest = (set(before) | set(after)) - set(fixed)
    first = ("hardware ", "cuda", "data ", "code ")
    names = fixed + [n for p in first for n in sorted(rest) if n.startswith(p)]
    names += sorted(n for n in rest if not n.startswith(first))
    return [
        EnvironmentChange(name, before[name], after[name])
        for name in names
        if name in before and name in after and before[name] != after[name]
    ]


def environment_changes(baseline: list[RunResult], candidate: list[RunResult]) -> list[EnvironmentChange]:
    """What differs between the environments of two sets of runs (`differences`)."""
    return differences(environment_of(baseline), environment_of(candidate))
