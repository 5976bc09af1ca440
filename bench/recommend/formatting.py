"""Numbers as text for `bench recommend`, and the recommendation as a plain-text table."""

from __future__ import annotations

from collections.abc import Callable

from bench.measure.components import MIB
from bench.recommend.figures import GIB_IN_MIB, MEMORY_SOURCES, Candidate, Figure, Recommendation


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


# ---- text -------------------------------------------------------------------------------------------


def _status(rec: Recommendation, candidate: Candidate) -> str:
    if candidate.name == rec.choice:
        return "RECOMMENDED"
    if candidate.name in rec.rejected:
        return "rejected"
    return "pareto" if candidate.name in rec.pareto else "dominated"


def _row(rec: Recommendation, candidate: Candidate) -> list[str]:
    short = {metric: name for metric, name, _ in MEMORY_SOURCES}
    memory = _size(candidate.memory_mib) + (f" ({short[candidate.memory_source]})" if candidate.memory_source else "")
    row = [
        candidate.name,
        memory,
        _spread(candidate.accuracy, lambda x: f"{x:.2f}"),
        _spread(candidate.forgetting, lambda x: f"{x:+.2f}"),
        _spread(candidate.throughput, _rate),
    ]
    if rec.user_parameters is not None and any(c.estimate for c in rec.candidates):
        estimate = candidate.estimate
        shown = "-" if estimate is None else "failed" if estimate.total_mib is None else f"~{_size(estimate.total_mib)}"
        row.append(shown)
    return [*row, _status(rec, candidate)]


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
