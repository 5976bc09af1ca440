"""What differs between two sets of runs besides what is being compared: the commit, the packages, Python
and the hardware. A regression that arrives with a new PEFT is a question about PEFT before it is one
about the code, so a comparison says which of these changed between its sides."""

from __future__ import annotations

from dataclasses import dataclass

from bench.records.results import RunResult

_SHORT_COMMIT = 10


@dataclass(frozen=True)
class EnvironmentChange:
    """One fact of the runs' environment whose values differ between the sides (each side's values sorted)."""

    name: str  # "commit", "python", "hardware", "cuda", or a package's name
    baseline: list[str]
    candidate: list[str]

    def text(self) -> str:
        """`peft 0.21.2 -> 0.22.0`; a side whose runs disagree among themselves lists each value."""
        return f"{self.name} {' / '.join(self.baseline)} -> {' / '.join(self.candidate)}"


def _commit(record: RunResult) -> str | None:
    env = record.environment
    if not env.git_commit:
        return None
    return env.git_commit[:_SHORT_COMMIT] + (" (with uncommitted changes)" if env.git_dirty else "")


def _facts(record: RunResult) -> dict[str, str | None]:
    """A run's environment as name -> value; None where the record does not say."""
    env = record.environment
    facts: dict[str, str | None] = {"commit": _commit(record), "python": env.python}
    facts["hardware"] = env.fingerprint or f"machine {env.machine}"
    facts["cuda"] = env.cuda
    facts.update(env.packages)
    return facts


def _values(records: list[RunResult]) -> dict[str, set[str | None]]:
    values: dict[str, set[str | None]] = {}
    for record in records:
        for name, value in _facts(record).items():
            values.setdefault(name, set()).add(value)
    return values


def environment_changes(baseline: list[RunResult], candidate: list[RunResult]) -> list[EnvironmentChange]:
    """The facts whose recorded values differ between the sides' runs, commit first, then Python, the
    hardware, CUDA and the packages by name. A fact one side's runs never recorded is left out: records of an
    older schema list fewer packages, and a value that was not recorded is no evidence that it changed."""
    base, cand = _values(baseline), _values(candidate)
    fixed = ["commit", "python", "hardware", "cuda"]
    names = fixed + sorted((set(base) | set(cand)) - set(fixed))
    changes = []
    for name in names:
        before, after = base.get(name, set()) - {None}, cand.get(name, set()) - {None}
        if before and after and before != after:
            changes.append(EnvironmentChange(name, sorted(before), sorted(after)))  # type: ignore[arg-type]
    return changes
