"""`bench recommend` groups runs as the report does (bench.analysis.selection): per machine, so the same
hardware stored under two machine names gives two candidates, never one with each seed twice."""

from __future__ import annotations

from bench.analysis.selection import comparable, keyed_records
from bench.recommend import candidates_from, recommend
from bench.records.results import RunResult
from tests.synthetic_records import make_record

GIB = 2**30


def _on(machine: str, record: RunResult) -> RunResult:
    """The record as if stored under machine name MACHINE (the same hardware, so the same fingerprint)."""
    environment = record.environment.model_copy(update={"machine": machine})
    return record.model_copy(update={"environment": environment, "run_id": f"{record.run_id}-{machine}"})


def _two_machines() -> list[RunResult]:
    return [
        _on(machine, make_record(label, seed))
        for machine in ("ci-a", "ci-b")
        for label in ("full", "lora")
        for seed in (0, 1)
    ]


def test_two_machines_are_two_candidates_each_with_its_own_seeds():
    records = _two_machines()
    assert len({record.environment.fingerprint for record in records}) == 1
    found = {c.name: c for c in candidates_from(comparable(records).records)}
    assert sorted(found) == ["full @ ci-a", "full @ ci-b", "lora @ ci-a", "lora @ ci-b"]
    assert sorted(found) == sorted(keyed_records(comparable(records).records))  # the report's names
    assert all(c.seeds == [0, 1] for c in found.values())
    assert found["lora @ ci-b"].machine == "ci-b"


def test_worst_seed_memory_is_of_its_own_machine():
    records = _two_machines()
    heavy = make_record("lora", 1, values={"memory.train.host_peak_mib": 9000.0})
    records = [
        _on("ci-b", heavy) if r.label == "lora" and r.seed == 1 and r.environment.machine == "ci-b" else r
        for r in records
    ]
    found = {c.name: c for c in candidates_from(records)}
    assert found["lora @ ci-b"].memory_mib == 9000.0 and found["lora @ ci-a"].memory_mib < 1000


def test_recommend_says_it_lists_each_machine_apart():
    result = recommend(_two_machines(), 24 * GIB)
    assert sorted(c.name for c in result.candidates) == ["full @ ci-a", "full @ ci-b", "lora @ ci-a", "lora @ ci-b"]
    assert any("2 machines (ci-a, ci-b)" in note for note in result.notes)
    assert result.choice is not None and result.choice.endswith(("@ ci-a", "@ ci-b"))


def test_one_machine_keeps_the_plain_labels():
    found = candidates_from([make_record(label, seed) for label in ("full", "lora") for seed in (0, 1)])
    assert sorted(c.name for c in found) == ["full", "lora"]
