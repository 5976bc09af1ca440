"""Which strategies `bench recommend` may choose from: each constraint checked against a candidate's figures
(memory with its reserve, that it learned the task, minimum accuracy, maximum forgetting; "marginal" where the
seeds straddle a limit), and the Pareto set of those that meet them."""

from __future__ import annotations

from collections.abc import Callable

from bench.measure.components import MIB
from bench.recommend.figures import MEMORY_NAMES, TENSOR_SOURCES, Candidate, Check, Figure
from bench.recommend.formatting import _against, _fraction, _size, _sizes, plan_text
from bench.recommend.noise import dimension_noise
from bench.records.results import RunResult


def _straddles(figure: Figure, limit: float) -> bool:
    return any(v < limit for v in figure.values) and any(v >= limit for v in figure.values)


def _memory_check(candidate: Candidate, limit_mib: float) -> Check:
    estimate = candidate.estimate
    if estimate is not None:
        if estimate.total_mib is None:
            return Check("memory", False, False, f"no estimate for your model ({estimate.error})")
        value, limit = _sizes(estimate.total_mib + estimate.reserve_mib, limit_mib)
        met = estimate.total_mib + estimate.reserve_mib <= limit_mib
        reserve = f" with {_size(estimate.reserve_mib)} reserve" if estimate.reserve_mib else ""
        text = f"needs ~{value}{reserve} on your model (estimate) {'<=' if met else '>'} {limit}"
        return Check("memory", met, False, text)
    needed = candidate.needed_mib
    if needed is None:
        return Check("memory", False, False, "training memory not measured")
    value, limit = _sizes(needed, limit_mib)
    met = needed <= limit_mib
    # the figure with its reserve where one is held; else its name alone, as the size is the one it needs
    named = plan_text(candidate) if candidate.reserve_mib else MEMORY_NAMES[str(candidate.memory_source)]
    return Check("memory", met, False, f"needs {value} {'<=' if met else '>'} {limit} ({named})")


def _accuracy_check(candidate: Candidate, minimum: float) -> Check:
    figure = candidate.accuracy
    if figure.mean is None:
        return Check("accuracy", False, False, f"accuracy not measured ({figure.reason})")
    met = figure.mean >= minimum
    value, limit = _against(figure.mean, minimum)
    text = f"accuracy {value} {'>=' if met else '<'} {limit}"
    marginal = _straddles(figure, minimum)
    if marginal:
        text += f" (marginal: seeds {_fraction(figure.low)} to {_fraction(figure.high)})"
    return Check("accuracy", met, marginal, text)


def _forgetting_check(candidate: Candidate, maximum: float) -> Check:
    figure = candidate.forgetting
    if figure.mean is None:
        return Check("forgetting", False, False, f"forgetting not measured ({figure.reason})")
    met = figure.mean >= -maximum
    value, limit = _against(-figure.mean, maximum)
    text = f"forgetting {value} {'<=' if met else '>'} {limit}"
    marginal = _straddles(figure, -maximum)
    if marginal:
        drops = sorted(-v for v in figure.values)
        text += f" (marginal: seeds forget {_fraction(drops[0])} to {_fraction(drops[-1])})"
    return Check("forgetting", met, marginal, text)


def _learning_check(candidate: Candidate) -> Check | None:
    """A strategy whose mean gain on the learned task is not above 0 did not learn it (by means): no choice,
    whatever it costs (one that changes nothing is the lightest and forgets nothing). None where no gain
    was measured (records without a learned task's before and after)."""
    gain = candidate.gain
    if gain.mean is None:
        return None
    task = (candidate.accuracy_metric or "accuracy.the task").removeprefix("accuracy.")
    met = gain.mean > 0
    text = (
        f"{'learned' if met else 'did not learn'} {task}: mean gain {100 * gain.mean:+.1f} points over the base model"
    )
    return Check("learning", met, False, text)


def checks_of(
    candidate: Candidate, memory_bytes: int, min_accuracy: float | None, max_forgetting: float | None
) -> list[Check]:
    checks = [_memory_check(candidate, memory_bytes / MIB)]
    if (learning := _learning_check(candidate)) is not None:
        checks.append(learning)
    if min_accuracy is not None:
        checks.append(_accuracy_check(candidate, min_accuracy))
    if max_forgetting is not None:
        checks.append(_forgetting_check(candidate, max_forgetting))
    return checks


DIMENSIONS: tuple[tuple[str, Callable[[Candidate], float | None], bool, str], ...] = (
    ("memory", lambda c: c.needed_mib, False, "less memory"),
    ("accuracy", lambda c: c.accuracy.mean, True, "higher accuracy"),
    ("forgetting", lambda c: c.forgetting.mean, True, "less forgetting"),
    ("throughput", lambda c: c.throughput.mean, True, "faster training"),
)


# A whole-process memory peak (host RSS, NVML, CUDA reserved) moves between seeds of one strategy with the
# allocator's caching, the libraries' own allocations and when the peak is sampled: the worst seed's host RSS
# spreads 2% (median) and beyond 5% in a fifth of the strategies in results/: a difference under 5% claims no
# "less memory" (one larger can still be seed spread: the figure is a worst seed, not a test)
MEMORY_NOISE = 0.05


def _exact_memory(candidate: Candidate) -> bool:
    """Its planning memory has no seed noise: a tensor count (TENSOR_SOURCES) or the estimate for the user's model."""
    return candidate.estimate is not None or candidate.memory_source in TENSOR_SOURCES


def memory_differs(a: Candidate, b: Candidate) -> bool:
    """Whether two candidates' memory needs differ beyond the noise of their figures: any difference of exact
    figures on both sides, else more than MEMORY_NOISE of the smaller."""
    x, y = a.needed_mib, b.needed_mib
    if x is None or y is None:
        return False
    if _exact_memory(a) and _exact_memory(b):
        return x != y
    return abs(x - y) > MEMORY_NOISE * min(x, y)


def dominance(a: Candidate, b: Candidate) -> list[str] | None:
    """Where `a` beats `b` when `a` dominates it (at least as good on every dimension both measured,
    better on one), by means, else None. A dimension either of them lacks is left out of the test, and so is
    throughput where they ran on different hardware (tokens/s of a GPU and a CPU do not compare) and memory
    within the noise of its figures (`memory_differs`)."""
    better = []
    for name, value, higher, wording in DIMENSIONS:
        x, y = value(a), value(b)
        if x is None or y is None or (name == "throughput" and a.hardware != b.hardware):
            continue
        if name == "memory" and not memory_differs(a, b):
            continue
        if (x < y) if higher else (x > y):
            return None
        if x != y:
            better.append(wording)
    return better or None


def _qualified(a: Candidate, b: Candidate, where: list[str], runs: dict[str, list[RunResult]]) -> str:
    """Where `a` beats `b`, each measured dimension with the report's test of the pair alone: those it does not
    tell apart are said as "by means only"; memory stands as it is (dominance counts it only beyond its noise)."""
    wording = {words: name for name, _, _, words in DIMENSIONS}
    firm, by_means = [], []
    for words in where:
        if wording[words] == "memory":
            firm.append(words)
            continue
        noise = dimension_noise(a, b, wording[words], runs)
        if noise.within is False:
            firm.append(f"{words} ({noise.words.partition(', uncorrected')[0]})")
        else:
            by_means.append(words)
    if not by_means:
        return ", ".join(firm)
    lead = f"{', '.join(firm)}; " if firm else ""
    return f"{lead}by means only, not beyond seed noise: {', '.join(by_means)}"


def pareto_set(
    feasible: list[Candidate], runs: dict[str, list[RunResult]] | None = None
) -> tuple[list[str], dict[str, str]]:
    """(names on the Pareto front by means, {dominated name: "dominated by X (where)"}), each dimension where
    X is better said with its noise test (`_qualified`; runs: each candidate's records, for the item tests)."""
    dominated = {}
    for b in feasible:
        for a in feasible:
            where = dominance(a, b) if a is not b else None
            if where:
                dominated[b.name] = f"dominated by {a.name} ({_qualified(a, b, where, runs or {})})"
                break
    return [c.name for c in feasible if c.name not in dominated], dominated
