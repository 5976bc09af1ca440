"""`bench scaling ONE MANY`: the scaling efficiency of multi-process runs against one process.

Matches strategies by label between a set of 1-process records and a set of N-process records of
the same suite shape (execution.processes differs), and gives, per strategy, the global tokens/s
of each (mean over seeds, contaminated runs left out), the efficiency tokens/s(N) / (N x
tokens/s(1)), and whether the matched budget held (the same optimizer steps and tokens, seed by seed: a
seed's data order sets its tokens, so sets of different seeds are not compared).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.recommend import throughput
from bench.records.results import RunResult


@dataclass
class Scaling:
    label: str
    processes: int
    one: float | None  # tokens/s with one process
    many: float | None  # global tokens/s with `processes`
    efficiency: float | None
    same_budget: bool | None  # None: no seed ran on both sides
    note: str = ""
    compared: bool = True  # False: ONE had no 1-process runs or MANY no multi-process ones: nothing to scale


def _budget(runs: list[RunResult]) -> dict[int, set[tuple]]:
    """Per seed, the (optimizer steps, tokens) its ok runs did: a seed's data order sets its tokens."""
    done: dict[int, set[tuple]] = {}
    for run in runs:
        if run.status == "ok":
            done.setdefault(run.seed, set()).add((run.budget.get("steps_done"), run.budget.get("tokens_seen")))
    return done


def same_budget(one: list[RunResult], many: list[RunResult]) -> bool | None:
    """Whether every seed both sides ran did the same steps and tokens with N processes as with one."""
    ones, manys = _budget(one), _budget(many)
    seeds = ones.keys() & manys.keys()
    return all(ones[seed] == manys[seed] for seed in seeds) if seeds else None


def processes_of(run: RunResult) -> int:
    """The processes a run trained with (its world size)."""
    return int(run.budget.get("world_size") or 1)


def _machine(run: RunResult) -> tuple | None:
    """The kind of machine, as the fingerprint has it but for torch's threads (divided among the processes)."""
    hardware = run.environment.hardware
    if hardware is None:
        return None
    return hardware.cpu, hardware.cores, tuple(hardware.isa or ()), tuple(hardware.gpus), hardware.cpu_capability


def _row(label: str, processes: int, ones: list[RunResult], manys: list[RunResult]) -> Scaling:
    single, multi = throughput(ones), throughput(manys)  # contaminated timing left out
    efficiency = multi.mean / (processes * single.mean) if single.mean and multi.mean else None
    note = f"{single.n} vs {multi.n} uncontaminated runs"
    if efficiency is None and ones and processes > 1:  # say which side left no clean timing
        empty = [side for side, figure in (("ONE", single), ("MANY", multi)) if not figure.mean]
        note += f"; no efficiency: every run of {' and '.join(empty)} had its timing contaminated or unmeasured"
    if not ones or processes == 1:  # nothing to scale: no single-process side, or MANY's runs are one process too
        why = "ONE holds no 1-process runs of this strategy" if not ones else "MANY's runs of it are 1-process too"
        return Scaling(label, processes, single.mean, multi.mean, None, None, why, compared=False)
    if len({_machine(run) for run in ones + manys}) > 1:
        efficiency, note = None, "ONE and MANY ran on different kinds of machine: their tokens/s do not compare"
    return Scaling(label, processes, single.mean, multi.mean, efficiency, same_budget(ones, manys), note)


def scaling(one: list[RunResult], many: list[RunResult]) -> list[Scaling]:
    """One row per strategy label and process count of MANY, against ONE's 1-process runs of that label;
    each set is first cut to the runs the report compares (newest spec, one run per seed)."""
    from bench.analysis.selection import comparable

    by_processes: dict[int, list[RunResult]] = {}
    for run in many:
        by_processes.setdefault(processes_of(run), []).append(run)
    # per process count: a spec differs by its processes, and the selection keeps one spec per strategy
    groups = {processes: comparable(runs).records for processes, runs in sorted(by_processes.items())}
    singles = comparable([run for run in one if processes_of(run) == 1]).records
    rows = []
    for label in sorted({r.label for r in one} & {r.label for r in many}):
        ones = [r for r in singles if r.label == label]
        for processes, runs in groups.items():
            manys = [r for r in runs if r.label == label]
            if manys:
                rows.append(_row(label, processes, ones, manys))
    return rows


def render(rows: list[Scaling]) -> str:
    lines = ["strategy  processes  tokens/s (1)  tokens/s (N, global)  efficiency  same steps+tokens"]
    for row in rows:
        one = f"{row.one:,.0f}" if row.one else "-"
        many = f"{row.many:,.0f}" if row.many else "-"
        efficiency = f"{row.efficiency:.2f}" if row.efficiency is not None else "-"
        lines.append(
            f"{row.label:9} {row.processes:9}  {one:>12}  {many:>20}  {efficiency:>10}  "
            f"{ {True: 'yes', False: 'NO', None: 'no common seed'}[row.same_budget] if row.compared else '-' }"
            f" ({row.note})"
        )
    return "\n".join(lines)
