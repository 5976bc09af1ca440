"""Which runs a report compares: strategies told apart by label (and suite and machine where a folder
holds several), each strategy's newest spec only, and one run per seed; and the hardware each run's
timing belongs to. The HTML report, the terminal table, the one-line answer and bench
recommend all read records through `comparable`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.analysis.quality import one_per_seed
from bench.analysis.spec_keys import spec_key
from bench.records.results import RunResult


def group_key(record: RunResult, machines: int, suites: int = 1) -> str:
    """Strategies are told apart by label; across suites the suite leads it, across machines the machine joins it."""
    key = record.label if suites <= 1 else f"{record.suite}/{record.label}"
    return key if machines <= 1 else f"{key} @ {record.environment.machine}"


def strategy_keys(records: list[RunResult]) -> list[str]:
    """Each record's strategy key (group_key), in order: one rule for the tables, answers and charts. A strategy
    pools its seeds across hardware of one machine id (CI runners of two CPU models): its quality is one
    population; what the hardware decides (timing, measured memory) is asked per hardware (`hardware_of`)."""
    machines = len({record.environment.machine for record in records})
    suites = len({record.suite for record in records})
    return [group_key(record, machines, suites) for record in records]


def hardware_of(record: RunResult) -> str:
    """The hardware a run's timing and measured memory belong to: its fingerprint, else its machine id."""
    return record.environment.fingerprint or f"machine {record.environment.machine}"


def hardware_names(records: list[RunResult]) -> dict[str, str]:
    """Each hardware (hardware_of) of the records as reports name it: its machine id, with the fingerprint
    where one machine id ran on several hardware (two CPU models behind one `x86_64-2c-cpu`)."""
    prints: dict[str, set[str]] = {}
    for record in records:
        prints.setdefault(record.environment.machine, set()).add(hardware_of(record))
    named = {}
    for record in records:
        machine, hardware = record.environment.machine, hardware_of(record)
        named[hardware] = machine if len(prints[machine]) <= 1 else f"{machine} ({hardware})"
    return named


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
