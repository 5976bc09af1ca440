"""Which runs a report compares: strategies told apart by label (and suite and machine where a folder
holds several; machines by their hardware where one machine id ran on several), each strategy's newest
spec only, and one run per seed. The HTML report, the terminal table, the one-line answer and bench
recommend all read records through `comparable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.analysis.quality import one_per_seed
from bench.analysis.spec_keys import spec_key
from bench.records.results import RunResult


def group_key(record: RunResult, machines: int, suites: int = 1, machine: str | None = None) -> str:
    """Strategies are told apart by label; across suites the suite leads it, across machines the machine
    (`machine`: its name as hardware_names gives it) joins it."""
    key = record.label if suites <= 1 else f"{record.suite}/{record.label}"
    return key if machines <= 1 else f"{key} @ {machine or record.environment.machine}"


def hardware_names(records: list[RunResult]) -> dict[int, str]:
    """Each record's machine as reports name it, by id(record): its machine id, with its hardware
    fingerprint where the records of one machine id came from different hardware (two CPU models behind
    one `x86_64-2c-cpu`, another thread count): their timing and memory are not one population."""
    prints: dict[str, set[str | None]] = {}
    for record in records:
        prints.setdefault(record.environment.machine, set()).add(record.environment.fingerprint)

    def name(record: RunResult) -> str:
        machine = record.environment.machine
        if len(prints[machine]) <= 1:
            return machine
        return f"{machine} ({record.environment.fingerprint or 'hardware not recorded'})"

    return {id(record): name(record) for record in records}


def strategy_keys(records: list[RunResult]) -> list[str]:
    """Each record's strategy key (group_key), in order: one rule for the tables, answers and charts."""
    names = hardware_names(records)
    machines, suites = len(set(names.values())), len({record.suite for record in records})
    return [group_key(record, machines, suites, names[id(record)]) for record in records]


def keyed_records(records: list[RunResult]) -> dict[str, list[RunResult]]:
    ordered = sorted(records, key=lambda r: (r.suite, r.label, r.seed))
    grouped: dict[str, list[RunResult]] = {}
    for key, record in zip(strategy_keys(ordered), ordered, strict=True):
        grouped.setdefault(key, []).append(record)
    return grouped


@dataclass(frozen=True)
class Selection:
    """The runs a report compares, and what it left out, in words."""

    records: list[RunResult]
    notes: list[str] = field(default_factory=list)


def comparable(records: list[RunResult]) -> Selection:
    """The runs to compare, one rule for every table and answer: per strategy (label, and suite and machine
    where several) the newest spec's runs only (runs of an older spec, such as an edited suite option,
    are left out, not pooled), and one run per seed, the newest (a seed run again on later nights is a
    replicate of timing, not of training; bench/analysis/quality.py one_per_seed)."""
    suites = len({record.suite for record in records})
    specs: dict[str, dict[str, list[RunResult]]] = {}
    for key, record in zip(strategy_keys(records), records, strict=True):
        specs.setdefault(key, {}).setdefault(spec_key(record), []).append(record)
    kept, notes, repeats, most = [], [], 0, 1
    for key, found in sorted(specs.items()):
        newest = max(found, key=lambda s: (max(r.started_at or "" for r in found[s]), len(found[s]), s))
        older = sum(len(runs) for spec, runs in found.items() if spec != newest)
        if older:
            notes.append(
                f"{key}: {older} run{'s' * (older > 1)} of an older spec left out "
                f"({len(found) - 1} older spec{'s' * (len(found) > 2)}); the newest spec's runs are shown"
            )
        runs = one_per_seed(found[newest])
        repeats += len(found[newest]) - len(runs)
        most = max([most, *(sum(r.seed == seed for r in found[newest]) for seed in {r.seed for r in runs})])
        kept += runs
    if repeats:
        notes.insert(
            0,
            f"{most} nights (runs of one spec and seed repeated, {repeats} older repeats left out): the tables "
            "and answers show each seed's newest run; the History section shows the trend",
        )
    if suites > 1:
        names = ", ".join(sorted({record.suite for record in records}))
        notes.append(
            f"{suites} suites ({names}): each strategy is named suite/label and its runs are never pooled "
            "across suites; their models and tasks differ, so the answers and quality tables are per suite"
        )
    return Selection(sorted(kept, key=lambda r: (r.suite, r.label, r.seed)), notes)


def suites_of(records: list[RunResult]) -> dict[str, list[RunResult]]:
    """The records of each suite, by suite name: strategies of different suites (models, tasks, budgets)
    are not one choice, so reports and `bench recommend` ask their questions per suite."""
    found: dict[str, list[RunResult]] = {}
    for record in records:
        found.setdefault(record.suite, []).append(record)
    return dict(sorted(found.items()))
