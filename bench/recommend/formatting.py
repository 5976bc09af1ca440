"""Numbers as text for `bench recommend`, what it says beside its choice (why nothing fits, the strategies whose
runs all failed, where its memory figures come from and that none is a GPU's where no CUDA memory was measured,
what the records leave unknown about timing), and the recommendation as a plain-text table."""

from __future__ import annotations

import math
from collections.abc import Callable

from bench.analysis.selection import keyed_records
from bench.measure.components import MIB
from bench.measure.limits import GPU_SIGNS, NODE_SIGNS, PROCESS_SIGNS
from bench.recommend.figures import GIB_IN_MIB, MEMORY_NAMES, MEMORY_SOURCES, Candidate, Figure, Recommendation
from bench.records.results import RunResult


def _trim(text: str) -> str:
    return text.rstrip("0").rstrip(".") if "." in text else text


def _size(mib: float | None, digits: int = 1) -> str:
    if mib is None:
        return "?"
    if mib >= GIB_IN_MIB:
        return f"{_trim(f'{mib / GIB_IN_MIB:.{digits}f}')} GiB"
    return f"{mib:.0f} MiB" if mib >= 10 else f"{_trim(f'{mib:.{digits + 1}f}')} MiB"


def _decimals(x: float) -> int:
    return min(6, len(f"{x:f}".rstrip("0").partition(".")[2]))


def _limit(x: float) -> str:
    """A limit the user gave, as given (at least two decimals): 0.5 -> 0.50, 0.055 -> 0.055."""
    return f"{x:.{max(2, _decimals(x))}f}"


def _against(value: float, limit: float, digits: int = 2, trim: bool = False) -> tuple[str, str]:
    """`value` and `limit` as text: the limit with its own decimals (sizes: at most two), the value with
    the fewest decimals from `digits` that keep the two apart and in the right order."""

    def show(x: float, d: int) -> str:
        return _trim(f"{x:.{d}f}") if trim else f"{x:.{d}f}"

    def order(a: float, b: float) -> int:
        return (a > b) - (a < b)

    shown_limit = show(limit, min(2, _decimals(limit))) if trim else _limit(limit)
    for d in range(digits, digits + 5):
        shown = show(value, d)
        if order(float(shown), float(shown_limit)) == order(value, limit):
            break
    return shown, shown_limit


def _sizes(value_mib: float, limit_mib: float) -> tuple[str, str]:
    """Both in the limit's unit (GiB from 1 GiB), e.g. ("30.1 GiB", "24 GiB")."""
    scale, unit = (GIB_IN_MIB, "GiB") if limit_mib >= GIB_IN_MIB else (1.0, "MiB")
    digits = 1 if scale > 1 or value_mib < 10 else 0  # a few MiB keep a decimal, as _size shows them
    value, limit = _against(value_mib / scale, limit_mib / scale, digits, trim=True)
    return f"{value} {unit}", f"{limit} {unit}"


def _fraction(x: float | None) -> str:
    return "?" if x is None else f"{x:.2f}"


def _rate(x: float | None) -> str:
    if x is None:
        return "?"
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _count(n: int | None) -> str:
    if n is None:
        return "?"
    for size, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if n >= size:
            return f"{_trim(f'{n / size:.1f}')}{suffix}"
    return str(n)


SPREAD_LEGEND = "mean [lowest seed, highest seed] n=seeds: the seeds' range, not a 95% confidence interval"


def _spread(figure: Figure, fmt: Callable[[float], str]) -> str:
    if figure.mean is None:
        return "-"
    if figure.n < 2:
        return f"{fmt(figure.mean)} (1 seed)"
    return f"{fmt(figure.mean)} [{fmt(figure.low)}, {fmt(figure.high)}] n={figure.n}"  # type: ignore[arg-type]


# ---- what is said beside the choice: why nothing fits, failed strategies, memory sources, timing ----------

# Memory figures a GPU measured: where no candidate plans with one, none of its sizes is a GPU's
GPU_SOURCES = ("memory.train.nvml_process_mib", "memory.train.cuda_reserved_peak_mib")
# What each figure measured without a GPU is, said beside the sizes it gives
CPU_FIGURES = {
    "memory.train.host_peak_mib": "host RSS shown, which is not what a GPU would need",
    "memory.train.components_mib": "tensor counts shown (with the reserve on top), not a GPU's measurement",
    None: "no memory figure",
}
OUT_OF_MEMORY = ("out of memory", *GPU_SIGNS, *NODE_SIGNS, *PROCESS_SIGNS)


def _failing(candidates: list[Candidate], constraint: str) -> list[Candidate]:
    return [c for c in candidates if any(k.constraint == constraint and not k.met for k in c.checks)]


def nothing_fits(
    candidates: list[Candidate], memory_bytes: int, min_accuracy: float | None, max_forgetting: float | None
) -> str:
    """One line: how many strategies miss each constraint, and the closest to it (what to relax)."""
    if not candidates:
        return "no successful (ok) runs to recommend from"
    total, parts = len(candidates), []
    too_big = _failing(candidates, "memory")
    if too_big:
        part = f"{len(too_big)} of {total} need more than {_size(memory_bytes / MIB)}"
        smallest = min(too_big, key=memory_key)
        if smallest.planning_mib is not None:
            part += f" (smallest: {smallest.name}, {plan_text(smallest)})"
        parts.append(part)
    for constraint, limit, words, closest, value in (
        ("accuracy", min_accuracy, "have accuracy below", "best", lambda c: c.accuracy.mean),
        ("forgetting", max_forgetting, "forget more than", "least", lambda c: c.forgetting.mean),
    ):
        failing = _failing(candidates, constraint)
        if not failing or limit is None:
            continue
        part = f"{len(failing)} of {total} {words} {_limit(limit)}"
        measured = [c for c in failing if value(c) is not None]
        if measured:
            top = max(measured, key=value)
            part += f" ({closest}: {top.name}, {abs(value(top)):.2f})"
        parts.append(part)
    if unlearned := _failing(candidates, "learning"):
        best = max(unlearned, key=lambda c: c.gain.mean or 0.0)
        gain = 100 * (best.gain.mean or 0.0)
        parts.append(f"{len(unlearned)} of {total} did not learn the task (best: {best.name}, {gain:+.1f} points)")
    return "no strategy meets the constraints: " + "; ".join(parts)


def failed_strategies(records: list[RunResult]) -> dict[str, str]:
    """{name: why} for each strategy none of whose runs is `ok` (the report's names), with the runs' reasons;
    an out-of-memory failure says where it ran out, the answer to the memory question for that machine."""
    rejected = {}
    for name, runs in keyed_records(records).items():
        if any(run.status == "ok" for run in runs):
            continue
        statuses = sorted({run.status for run in runs})
        reasons = sorted({run.reason or "no reason recorded" for run in runs})
        count = f"all {len(runs)} runs" if len(runs) > 1 else "its only run"
        why = f"{count} {' or '.join(statuses)}: {'; '.join(reasons)}"
        if any(sign.lower() in reason.lower() for reason in reasons for sign in OUT_OF_MEMORY):
            machines = ", ".join(sorted({run.environment.machine for run in runs}))
            why += f"; out of memory on {machines}: it did not fit there, and nothing was measured to plan with"
        rejected[name] = why
    return rejected


def gpu_memory_caveat(candidates: list[Candidate]) -> str | None:
    """Where no candidate's memory is a GPU's measurement (nor an estimate for the user's model), that plainly:
    a CPU process's host RSS or tensor count is not what a GPU would need. None where a GPU measured one."""
    if not candidates or any(c.memory_source in GPU_SOURCES or c.estimate is not None for c in candidates):
        return None
    where = "these runs ran on CPU" if not any(c.ran_on_gpu for c in candidates) else "no run recorded CUDA memory"
    used = {c.memory_source for c in candidates}
    shown = [words for source, words in CPU_FIGURES.items() if source in used]
    return f"no GPU memory measured: {where}; {'; '.join(shown)}; run `bench estimate SUITE --device-memory SIZE`" + (
        " for a GPU estimate"
    )


def source_notes(candidates: list[Candidate]) -> list[str]:
    """What each memory figure in use means, the reserve held beside a tensor count, and the GPU caveat."""
    used = {c.memory_source for c in candidates if c.memory_source}
    notes = [
        f"memory ({short}): {meaning}"
        + (f" [{', '.join(c.name for c in candidates if c.memory_source == metric)}]" if len(used) > 1 else "")
        for metric, short, meaning in MEMORY_SOURCES
        if metric in used
    ]
    reserved = [c for c in candidates if c.reserve_mib]
    if reserved:
        notes.append(
            f"a strategy planned with its tensors fits only with {_size(reserved[0].reserve_mib)} reserve on top"
            " (the CUDA context, the allocator's slack and the process, which they leave out), as bench estimate"
            " holds an estimate; --reserve sets it"
        )
    if len(used) > 1:
        notes.append("memory figures come from different sources, so they do not compare exactly")
    caveat = gpu_memory_caveat(candidates)
    return [caveat, *notes] if caveat else notes


def record_notes(candidates: list[Candidate]) -> list[str]:
    """Machines listed apart, hardware whose timing does not compare, and timing left out or of unknown quality."""
    notes = []
    machines = sorted({c.machine for c in candidates})
    if len(machines) > 1:
        notes.append(
            f"records from {len(machines)} machines ({', '.join(machines)}): each strategy is listed per machine,"
            " its runs never pooled across them"
        )
    timed = [c for c in candidates if c.throughput.mean is not None]
    kinds = {c.hardware for c in timed}
    if len(kinds) > 1:
        notes.append(
            f"tokens/s measured on {len(kinds)} kinds of hardware compare only within one: speed is ranked among"
            " the strategies of one hardware, never across them"
        )
    for c in candidates:
        if c.throughput.reason and c.throughput.mean is not None:
            notes.append(f"{c.name}: throughput: {c.throughput.reason}")
    unknown = [c for c in candidates if c.timing_unrecorded]
    if unknown:
        count = sum(c.timing_unrecorded for c in unknown)
        notes.append(
            f"timing quality not recorded for {count} run{'s' * (count > 1)} "
            f"({', '.join(c.name for c in unknown)}): contamination unknown, so their tokens/s may include other load"
        )
    return notes


# ---- text -------------------------------------------------------------------------------------------


def _status(rec: Recommendation, candidate: Candidate) -> str:
    if candidate.name == rec.choice:
        return "RECOMMENDED"
    if candidate.name in rec.rejected:
        return "rejected"
    return "pareto" if candidate.name in rec.pareto else "dominated"


def _row(rec: Recommendation, candidate: Candidate) -> list[str]:
    row = [
        candidate.name,
        memory_text(candidate),
        _spread(candidate.accuracy, lambda x: f"{x:.2f}"),
        _spread(candidate.forgetting, lambda x: f"{x:+.2f}"),
        _spread(candidate.throughput, _rate),
    ]
    if rec.user_parameters is not None and any(c.estimate for c in rec.candidates):
        estimate = candidate.estimate
        shown = "-" if estimate is None else "failed" if estimate.total_mib is None else f"~{_size(estimate.total_mib)}"
        row.append(shown)
    return [*row, _status(rec, candidate)]


def memory_key(candidate: Candidate) -> float:
    """What it needs (for sorting): its planning memory with the reserve, infinite where unmeasured."""
    return math.inf if candidate.needed_mib is None else candidate.needed_mib


def planned_at(candidate: Candidate) -> str:
    """Its planning memory, saying where it is the estimate for the user's model."""
    shown = _size(candidate.planning_mib)
    return f"~{shown} on your model (estimate)" if candidate.estimate is not None else shown


def memory_text(candidate: Candidate) -> str:
    """Its measured memory (worst seed) named by its figure, the one way a size and its source are said:
    "2.2 GiB host RSS"; the size alone where no figure was measured."""
    shown = _size(candidate.memory_mib)
    return f"{shown} {MEMORY_NAMES[candidate.memory_source]}" if candidate.memory_source else shown


def plan_text(candidate: Candidate) -> str:
    """The figure it plans with, named, and the reserve held beside it: "0.94 MiB tensors + 2 GiB reserve"."""
    if candidate.estimate is not None or candidate.memory_source is None:
        return planned_at(candidate)
    return memory_text(candidate) + (f" + {_size(candidate.reserve_mib)} reserve" if candidate.reserve_mib else "")


def _table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]


def render_text(rec: Recommendation, failure: bool = True) -> str:
    """The recommendation as plain text: constraints, one row per strategy, Pareto set, rejections, choice, notes.
    failure=False leaves out the "no recommendation: why" line (a caller that prints it as its error)."""
    limits = [f"memory <= {_size(rec.memory_bytes / MIB)}"]
    if rec.min_accuracy is not None:
        limits.append(f"accuracy >= {_limit(rec.min_accuracy)}")
    if rec.max_forgetting is not None:
        limits.append(f"forgetting <= {_limit(rec.max_forgetting)}")
    lines = [f"constraints: {', '.join(limits)}; objective: {rec.objective}"]
    if rec.candidates:
        header = ["strategy", "memory (worst seed)", "accuracy", "forgetting.mean", "tokens/s"]
        if rec.user_parameters is not None and any(c.estimate for c in rec.candidates):
            header.append(f"your model ({_count(rec.user_parameters)})")
        order = sorted(rec.candidates, key=lambda c: (c.name != rec.choice, c.name in rec.rejected, c.name))
        lines += ["", *_table([[*header, "verdict"], *(_row(rec, c) for c in order)])]
        lines.append(SPREAD_LEGEND)
    lines += ["", f"Pareto set: {', '.join(rec.pareto) or 'none'}"]
    lines += [f"  {name}: {why}" for name, why in rec.dominated.items()]
    if rec.rejected:
        lines.append("rejected:")
        lines += [f"  {name}: {why}" for name, why in rec.rejected.items()]
    if rec.choice or failure:
        lines += ["", f"recommendation: {rec.reason}" if rec.choice else f"no recommendation: {rec.reason}"]
    if rec.notes:
        lines += ["", "notes:", *(f"  - {note}" for note in rec.notes)]
    return "\n".join(lines)
