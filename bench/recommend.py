"""`bench recommend`: which strategy to use under a memory limit, from measured records.

From the `ok` records (grouped by suite, hardware fingerprint and strategy label), each strategy
gets its planning memory (the worst seed), its accuracy on the learned task, its forgetting and
its training throughput with their seed spread. The constraints (memory, minimum accuracy,
maximum forgetting) are met when the mean meets them, "marginal" when the seeds straddle the
limit. Among the strategies that meet them: the Pareto set and one recommendation, in a
sentence. Where the user's model is larger than the measured one, the memory estimator
(bench.estimate) predicts each strategy's training memory on the user's model instead.

Imports no torch unless a model config is given (the report side builds on `recommend`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from bench import stats
from bench.measure.components import MIB
from bench.report.aggregate import learned_task
from bench.results import RunResult

Objective = Literal["accuracy", "throughput"]
OBJECTIVES: tuple[str, ...] = ("accuracy", "throughput")
ALPHA = 0.05  # the same level as bench compare and the report's "beyond seed noise"
GIB_IN_MIB = 1024.0
SMALL_MODEL = 10**9  # below this many parameters the measured memory says little about a real model

# Training memory for planning, in order of preference: (metric, short name, what it means)
MEMORY_SOURCES: tuple[tuple[str, str, str], ...] = (
    (
        "memory.train.nvml_process_mib",
        "nvidia-smi",
        "the training process's GPU memory as nvidia-smi shows it (allocator reserve and CUDA context)",
    ),
    (
        "memory.train.cuda_reserved_peak_mib",
        "CUDA reserved",
        "the peak reserved by torch's CUDA allocator (nvidia-smi also counts the CUDA context, a few hundred MiB)",
    ),
    (
        "memory.train.components_mib",
        "tensors",
        "weights, gradients, optimizer state and activations counted from the tensors"
        " (the allocator's slack and any CUDA context come on top)",
    ),
    (
        "memory.train.host_peak_mib",
        "host RSS",
        "the host RSS peak of training, which includes ~450 MiB of interpreter and libraries"
        " (torch, transformers, TRL)",
    ),
)
FORGETTING = "forgetting.mean"
THROUGHPUT = "train.tokens_per_s"


@dataclass
class Figure:
    """One metric of one strategy over its seeds: mean and spread; `mean` is None when unmeasured."""

    mean: float | None
    low: float | None
    high: float | None
    n: int
    values: list[float] = field(default_factory=list)
    reason: str | None = None  # why it is missing (or why some seeds were left out)

    @classmethod
    def of(cls, values: list[float], reason: str | None = None) -> Figure:
        if not values:
            return cls(None, None, None, 0, [], reason)
        return cls(sum(values) / len(values), min(values), max(values), len(values), list(values), reason)


@dataclass
class Check:
    """One constraint on one strategy: met by the mean; marginal when its seeds straddle the limit."""

    constraint: str  # memory | accuracy | forgetting
    met: bool
    marginal: bool
    text: str  # names the number and the limit, e.g. "needs 30.1 GiB > 24 GiB"


@dataclass
class ModelEstimate:
    """bench.estimate's training memory of a strategy on the user's model."""

    total_mib: float | None
    fits: bool | None
    tokens: int | None = None
    error: str | None = None


@dataclass
class Candidate:
    """One strategy (label) of one suite on one kind of machine."""

    name: str  # the label, qualified by suite / fingerprint when the records hold several
    label: str
    strategy: str
    suite: str
    fingerprint: str | None
    seeds: list[int]
    memory_mib: float | None  # worst seed
    memory_source: str | None  # the metric it came from
    accuracy_metric: str | None
    accuracy: Figure
    forgetting: Figure
    throughput: Figure
    model_name: str | None = None
    model_parameters: int | None = None
    estimate: ModelEstimate | None = None  # on the user's model, where it is larger
    checks: list[Check] = field(default_factory=list)

    @property
    def planning_mib(self) -> float | None:
        """The memory the constraint is held against: the estimate for the user's model, else measured."""
        return self.estimate.total_mib if self.estimate is not None else self.memory_mib

    @property
    def marginal(self) -> list[Check]:
        return [check for check in self.checks if check.marginal]


@dataclass
class Recommendation:
    memory_bytes: int
    objective: str
    min_accuracy: float | None
    max_forgetting: float | None
    candidates: list[Candidate]
    feasible: list[str]  # names of the candidates that meet every constraint
    pareto: list[str]  # the feasible ones no other feasible one beats on every measured dimension
    rejected: dict[str, str]  # name -> why (every constraint it misses, with the numbers)
    dominated: dict[str, str]  # feasible but not Pareto: name -> by whom and where
    choice: str | None
    reason: str  # one sentence: why `choice`, or why nothing fits
    notes: list[str] = field(default_factory=list)
    measured_parameters: int | None = None
    user_parameters: int | None = None

    def candidate(self, name: str) -> Candidate:
        return next(c for c in self.candidates if c.name == name)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for row, candidate in zip(data["candidates"], self.candidates):
            row["planning_mib"] = candidate.planning_mib
        return data


# ---- formatting ---------------------------------------------------------------------------------


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
    value, limit = _against(value_mib / scale, limit_mib / scale, 1 if scale > 1 else 0, trim=True)
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


def _spread(figure: Figure, fmt: Callable[[float], str]) -> str:
    if figure.mean is None:
        return "-"
    if figure.n < 2:
        return f"{fmt(figure.mean)} (1 seed)"
    return f"{fmt(figure.mean)} [{fmt(figure.low)}, {fmt(figure.high)}] n={figure.n}"  # type: ignore[arg-type]


# ---- figures from records -------------------------------------------------------------------------


def _value(record: RunResult, metric: str | None) -> float | None:
    value = record.value(metric) if metric else None
    return None if value is None or not math.isfinite(value) else float(value)


def _missing_reason(records: list[RunResult], metric: str | None) -> str:
    if metric is None:
        return "the records name no learned task"
    reasons = {str(r.metrics[metric].reason) for r in records if metric in r.metrics and r.metrics[metric].reason}
    return "; ".join(sorted(reasons)) or f"{metric} not in the records"


def _figure(records: list[RunResult], metric: str | None) -> Figure:
    values = [v for v in (_value(r, metric) for r in records) if v is not None]
    return Figure.of(values, None if values else _missing_reason(records, metric))


def throughput(records: list[RunResult]) -> Figure:
    """tokens/s over the runs whose timing was not contaminated by other load (bench/measure/contention.py)."""
    clean = [r for r in records if not r.timing_contaminated]
    figure = _figure(clean, THROUGHPUT)
    left_out = len(records) - len(clean)
    if left_out:
        figure.reason = f"{left_out} of {len(records)} runs left out: timing contaminated" + (
            f"; {figure.reason}" if figure.reason else ""
        )
    return figure


def record_memory(record: RunResult) -> tuple[float | None, str | None]:
    """The record's training memory for planning (MiB) and the metric it came from: the first of
    MEMORY_SOURCES that the run measured."""
    for metric, _, _ in MEMORY_SOURCES:
        value = _value(record, metric)
        if value is not None:
            return value, metric
    return None, None


def _worst_memory(records: list[RunResult]) -> tuple[float | None, str | None]:
    measured = [(value, source) for value, source in map(record_memory, records) if value is not None]
    return max(measured, key=lambda pair: pair[0]) if measured else (None, None)


def _grouped(records: list[RunResult]) -> dict[tuple[str, str | None, str], list[RunResult]]:
    groups: dict[tuple[str, str | None, str], list[RunResult]] = {}
    for record in sorted(records, key=lambda r: (r.suite, r.label, r.seed)):
        groups.setdefault((record.suite, record.environment.fingerprint, record.label), []).append(record)
    return groups


def candidates_from(records: list[RunResult]) -> list[Candidate]:
    """One candidate per (suite, hardware fingerprint, label) of the `ok` records."""
    groups = _grouped([record for record in records if record.status == "ok"])
    suites = {suite for suite, _, _ in groups}
    fingerprints = {fingerprint for _, fingerprint, _ in groups}
    found = []
    for (suite, fingerprint, label), runs in groups.items():
        name = (f"{suite}/" if len(suites) > 1 else "") + label + (f" @ {fingerprint}" if len(fingerprints) > 1 else "")
        task = learned_task(runs[:1])
        memory, source = _worst_memory(runs)
        parameters = [r.model["parameters"] for r in runs if isinstance(r.model.get("parameters"), int)]
        found.append(
            Candidate(
                name=name,
                label=label,
                strategy=runs[0].strategy,
                suite=suite,
                fingerprint=fingerprint,
                seeds=[r.seed for r in runs],
                memory_mib=memory,
                memory_source=source,
                accuracy_metric=f"accuracy.{task}" if task else None,
                accuracy=_figure(runs, f"accuracy.{task}" if task else None),
                forgetting=_figure(runs, FORGETTING),
                throughput=throughput(runs),
                model_name=runs[0].model.get("name"),
                model_parameters=max(parameters) if parameters else None,
            )
        )
    return found


# ---- the user's model -------------------------------------------------------------------------------


def load_model_config(path: Path | str) -> Any:
    """bench.estimate.config_from_file, with every failure a ValueError naming the path."""
    from bench.estimate import config_from_file

    path = Path(path)
    if not path.exists():
        raise ValueError(f"{str(path)!r} does not exist")
    try:
        return config_from_file(path)
    except Exception as error:  # transformers raises OSError, ValueError, KeyError for configs it cannot read
        raise ValueError(f"{str(path)!r} is not a transformers config: {error}") from error


def count_parameters(config: Any, dtype: str = "float32") -> int:
    """Parameters of the model a config describes, built on the meta device (no memory, seconds)."""
    from bench.estimate import meta_model

    try:
        model = meta_model(config, dtype)
    except Exception as error:  # e.g. an architecture with no causal-LM head (T5, a vision model)
        raise ValueError(f"cannot build a causal language model from this config: {error}") from error
    return sum(p.numel() for p in model.parameters())


def _estimate_args(record: RunResult) -> dict[str, Any]:
    spec = record.spec
    training = spec.get("training") or {}
    return {
        "dtype": spec["model"]["dtype"],
        "strategy": spec["strategy"],
        "options": spec.get("options") or {},
        "batch_size": spec["budget"]["batch_size"],
        "tokens": spec["budget"]["seq_len"],
        "optimizer": training.get("optimizer", "adamw_torch"),
        "gradient_checkpointing": training.get("gradient_checkpointing", False),
    }


def _estimate(config: Any, record: RunResult, memory_bytes: int) -> ModelEstimate:
    """The strategy of `record`, with its options and budget, on the user's model; never raises."""
    from bench.estimate import estimate_run

    try:
        args = _estimate_args(record)
        total = estimate_run(config, **args).total_mib()
    except Exception as error:  # an estimator gap (unknown optimizer, strategy) is reported, not fatal
        return ModelEstimate(None, None, error=f"{type(error).__name__}: {error}")
    return ModelEstimate(total, total * MIB <= memory_bytes, tokens=args["tokens"])


def _model_notes(candidates: list[Candidate], user_parameters: int | None) -> list[str]:
    measured = max((c.model_parameters for c in candidates if c.model_parameters), default=None)
    names = sorted({c.model_name for c in candidates if c.model_name})
    model = f"{_count(measured)}-parameter model" if measured else "model"
    model += f" ({', '.join(names)})" if names else ""
    if user_parameters is None:
        if measured is None:
            return [f"memory figures are those of the measured {model}; its parameter count is not recorded"]
        if measured < SMALL_MODEL:
            return [f"memory figures are those of the measured {model}; pass --model-config to estimate a larger model"]
        return []
    if measured is not None and user_parameters <= measured:
        return [
            f"your model ({_count(user_parameters)} parameters) is no larger than the measured {model}:"
            " the measured memory is used"
        ]
    return [
        f"measured on a {model}; yours has {_count(user_parameters)} parameters: memory is the estimator's for"
        " your model (tensors only: weights, gradients, optimizer state, activations at the suite's seq_len; the"
        " CUDA context and allocator slack come on top), while accuracy, forgetting and throughput are the"
        " measured model's"
    ]


def _apply_model(
    candidates: list[Candidate], records: list[RunResult], config: Any, memory_bytes: int
) -> tuple[int, list[str]]:
    """Estimate every candidate on the user's model where it is larger than the measured one."""
    user = count_parameters(config)
    measured = max((c.model_parameters for c in candidates if c.model_parameters), default=None)
    if measured is None or user > measured:
        groups = _grouped([record for record in records if record.status == "ok"])
        for candidate in candidates:
            representative = groups[(candidate.suite, candidate.fingerprint, candidate.label)][0]
            candidate.estimate = _estimate(config, representative, memory_bytes)
    return user, _model_notes(candidates, user)


# ---- constraints, Pareto set, choice ----------------------------------------------------------------


def _straddles(figure: Figure, limit: float) -> bool:
    return any(v < limit for v in figure.values) and any(v >= limit for v in figure.values)


def _memory_check(candidate: Candidate, limit_mib: float) -> Check:
    if candidate.estimate is not None:
        if candidate.estimate.total_mib is None:
            return Check("memory", False, False, f"no estimate for your model ({candidate.estimate.error})")
        value, limit = _sizes(candidate.estimate.total_mib, limit_mib)
        met = candidate.estimate.total_mib <= limit_mib
        return Check("memory", met, False, f"needs ~{value} on your model (estimate) {'<=' if met else '>'} {limit}")
    if candidate.memory_mib is None:
        return Check("memory", False, False, "training memory not measured")
    value, limit = _sizes(candidate.memory_mib, limit_mib)
    met = candidate.memory_mib <= limit_mib
    return Check("memory", met, False, f"needs {value} {'<=' if met else '>'} {limit}")


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


def _checks(
    candidate: Candidate, memory_bytes: int, min_accuracy: float | None, max_forgetting: float | None
) -> list[Check]:
    checks = [_memory_check(candidate, memory_bytes / MIB)]
    if min_accuracy is not None:
        checks.append(_accuracy_check(candidate, min_accuracy))
    if max_forgetting is not None:
        checks.append(_forgetting_check(candidate, max_forgetting))
    return checks


# (name, value of a candidate, higher is better, how "better" reads)
DIMENSIONS: tuple[tuple[str, Callable[[Candidate], float | None], bool, str], ...] = (
    ("memory", lambda c: c.planning_mib, False, "less memory"),
    ("accuracy", lambda c: c.accuracy.mean, True, "higher accuracy"),
    ("forgetting", lambda c: c.forgetting.mean, True, "less forgetting"),
    ("throughput", lambda c: c.throughput.mean, True, "faster training"),
)


def dominance(a: Candidate, b: Candidate) -> list[str] | None:
    """Where `a` beats `b` when `a` dominates it (at least as good on every dimension both measured,
    better on one), else None. A dimension either of them lacks is left out of the test."""
    better = []
    for _, value, higher, wording in DIMENSIONS:
        x, y = value(a), value(b)
        if x is None or y is None:
            continue
        if (x < y) if higher else (x > y):
            return None
        if x != y:
            better.append(wording)
    return better or None


def pareto_set(feasible: list[Candidate]) -> tuple[list[str], dict[str, str]]:
    """(names on the Pareto front, {dominated name: "dominated by X (where)"})."""
    dominated = {}
    for b in feasible:
        for a in feasible:
            where = dominance(a, b) if a is not b else None
            if where:
                dominated[b.name] = f"dominated by {a.name} ({', '.join(where)})"
                break
    return [c.name for c in feasible if c.name not in dominated], dominated


def within_noise(a: Figure, b: Figure) -> bool | None:
    """Whether two strategies' seeds cannot be told apart: the permutation test over seeds where the
    design can reach ALPHA (bench.stats), else overlapping seed ranges; None with one seed (unknown)."""
    beyond, _ = stats.differs(a.values, b.values, ALPHA)
    if beyond is not None:
        return not beyond
    if a.n >= 2 and b.n >= 2:
        return a.low <= b.high and b.low <= a.high  # type: ignore[operator]
    return None


def _objective_figure(candidate: Candidate, objective: str) -> Figure:
    return candidate.accuracy if objective == "accuracy" else candidate.throughput


def _shown(candidate: Candidate, objective: str) -> str:
    """The candidate's mean of the objective, as the reason states it."""
    mean = _objective_figure(candidate, objective).mean
    if mean is None:
        return "?"
    return f"{mean:.2f}" if objective == "accuracy" else f"{_rate(mean)} tokens/s"


def _memory_key(candidate: Candidate) -> float:
    return math.inf if candidate.planning_mib is None else candidate.planning_mib


def _scope(count: int, memory_bytes: int, min_accuracy: float | None, max_forgetting: float | None) -> str:
    """ "the 5 strategies that fit 24 GiB and reach accuracy 0.50", "the only strategy that fits 24 GiB"."""
    verb = ("fits", "reaches", "forgets") if count == 1 else ("fit", "reach", "forget")
    limits = [f"{verb[0]} {_size(memory_bytes / MIB)}"]
    if min_accuracy is not None:
        limits.append(f"{verb[1]} accuracy {_limit(min_accuracy)}")
    if max_forgetting is not None:
        limits.append(f"{verb[2]} at most {_limit(max_forgetting)}")
    phrase = limits[0] if len(limits) == 1 else ", ".join(limits[:-1]) + " and " + limits[-1]
    return f"the only strategy that {phrase}" if count == 1 else f"the {count} strategies that {phrase}"


def _at(candidate: Candidate) -> str:
    """Its planning memory, saying where it is the estimate for the user's model."""
    shown = _size(candidate.planning_mib)
    return f"~{shown} on your model (estimate)" if candidate.estimate is not None else shown


def _noise_words(verdict: bool | None) -> str:
    return {True: "within seed noise", False: "beyond seed noise", None: "one seed: noise unknown"}[verdict]


def choose(feasible: list[Candidate], objective: str, scope: str) -> tuple[Candidate, str]:
    """The recommended candidate and the one-sentence reason: the best by the objective's mean, unless
    others are within seed noise of it and need less memory: then the one of those with the least."""
    best_word = "the most accurate" if objective == "accuracy" else "the fastest to train"
    ranked = [c for c in feasible if _objective_figure(c, objective).mean is not None]
    ranked.sort(key=lambda c: (-(_objective_figure(c, objective).mean or 0.0), _memory_key(c)))
    if not ranked:
        lightest = min(feasible, key=_memory_key)
        return lightest, f"{lightest.name}: none of {scope} measured {objective}; it needs the least memory, " + (
            f"{_at(lightest)}."
        )
    best = ranked[0]
    if len(ranked) == 1:
        only = scope if len(feasible) == 1 else f"the only one of {scope} that measured {objective}"
        named = f"accuracy {_shown(best, objective)}" if objective == "accuracy" else _shown(best, objective)
        return best, f"{best.name}: {only} ({named}), at {_at(best)}."
    figure = _objective_figure(best, objective)
    noise = {c.name: within_noise(figure, _objective_figure(c, objective)) for c in ranked[1:]}
    lighter = [c for c in ranked[1:] if noise[c.name] and _memory_key(c) < _memory_key(best)]
    if lighter:
        pick = min(lighter, key=_memory_key)
        return pick, (
            f"{pick.name}: within seed noise of {best.name}, {best_word} of {scope}"
            f" ({_shown(pick, objective)} vs {_shown(best, objective)}),"
            f" with less memory ({_at(pick)} vs {_size(best.planning_mib)})."
        )
    runner = ranked[1]
    return best, (
        f"{best.name}: {best_word} of {scope} ({_shown(best, objective)} vs {runner.name}"
        f" {_shown(runner, objective)}, {_noise_words(noise[runner.name])}), at {_at(best)}."
    )


def _failing(candidates: list[Candidate], constraint: str) -> list[Candidate]:
    return [c for c in candidates if any(k.constraint == constraint and not k.met for k in c.checks)]


def _nothing_fits(
    candidates: list[Candidate], memory_bytes: int, min_accuracy: float | None, max_forgetting: float | None
) -> str:
    """One line: how many strategies miss each constraint, and the closest to it (what to relax)."""
    if not candidates:
        return "no successful (ok) runs to recommend from"
    total, parts = len(candidates), []
    too_big = _failing(candidates, "memory")
    if too_big:
        part = f"{len(too_big)} of {total} need more than {_size(memory_bytes / MIB)}"
        smallest = min(too_big, key=_memory_key)
        if smallest.planning_mib is not None:
            part += f" (smallest: {smallest.name}, {_at(smallest)})"
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
    return "no strategy meets the constraints: " + "; ".join(parts)


def _source_notes(candidates: list[Candidate]) -> list[str]:
    used = {c.memory_source for c in candidates if c.memory_source}
    notes = [
        f"memory ({short}): {meaning}"
        + (f" [{', '.join(c.name for c in candidates if c.memory_source == metric)}]" if len(used) > 1 else "")
        for metric, short, meaning in MEMORY_SOURCES
        if metric in used
    ]
    if len(used) > 1:
        notes.append("memory figures come from different sources, so they do not compare exactly")
    return notes


def _record_notes(candidates: list[Candidate]) -> list[str]:
    notes = []
    fingerprints = {c.fingerprint for c in candidates}
    if len(fingerprints) > 1:
        notes.append(f"records from {len(fingerprints)} kinds of machine: each strategy is listed per machine")
    for c in candidates:
        if len(set(c.seeds)) < len(c.seeds):
            notes.append(f"{c.name}: several records per seed (older versions of the suite?); all are pooled")
        if c.throughput.reason and c.throughput.mean is not None:
            notes.append(f"{c.name}: throughput: {c.throughput.reason}")
    return notes


def recommend(
    records: list[RunResult],
    memory_bytes: int,
    min_accuracy: float | None = None,
    max_forgetting: float | None = None,
    objective: str = "accuracy",
    model_config: Any = None,
) -> Recommendation:
    """The strategies of `records` that meet the constraints, their Pareto set and one choice.

    `model_config`: the user's model (a transformers config, or the path of its config.json); where it
    is larger than the measured model, memory is the estimator's for it (imports torch).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, got {objective!r}")
    candidates = candidates_from(records)
    user_parameters, notes = None, []
    if model_config is not None and candidates:
        config = load_model_config(model_config) if isinstance(model_config, (str, Path)) else model_config
        user_parameters, notes = _apply_model(candidates, records, config, memory_bytes)
    elif candidates:
        notes = _model_notes(candidates, None)
    for candidate in candidates:
        candidate.checks = _checks(candidate, memory_bytes, min_accuracy, max_forgetting)
    feasible = [c for c in candidates if all(check.met for check in c.checks)]
    rejected = {c.name: "; ".join(k.text for k in c.checks if not k.met) for c in candidates if c not in feasible}
    pareto, dominated = pareto_set(feasible)
    choice, reason = None, _nothing_fits(candidates, memory_bytes, min_accuracy, max_forgetting)
    if feasible:
        picked, reason = choose(feasible, objective, _scope(len(feasible), memory_bytes, min_accuracy, max_forgetting))
        choice = picked.name
        notes += [f"{picked.name}: {check.text}" for check in picked.marginal]
    notes = _source_notes(candidates) + notes + _record_notes(candidates)
    return Recommendation(
        memory_bytes=memory_bytes,
        objective=objective,
        min_accuracy=min_accuracy,
        max_forgetting=max_forgetting,
        candidates=candidates,
        feasible=[c.name for c in feasible],
        pareto=pareto,
        rejected=rejected,
        dominated=dominated,
        choice=choice,
        reason=reason,
        notes=notes,
        measured_parameters=max((c.model_parameters for c in candidates if c.model_parameters), default=None),
        user_parameters=user_parameters,
    )


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


def render_text(rec: Recommendation) -> str:
    """The recommendation as plain text: constraints, one row per strategy, Pareto set, rejections, choice, notes."""
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
    lines += ["", f"Pareto set: {', '.join(rec.pareto) or 'none'}"]
    lines += [f"  {name}: {why}" for name, why in rec.dominated.items()]
    if rec.rejected:
        lines.append("rejected:")
        lines += [f"  {name}: {why}" for name, why in rec.rejected.items()]
    lines += ["", f"recommendation: {rec.reason}" if rec.choice else f"no recommendation: {rec.reason}"]
    if rec.notes:
        lines += ["", "notes:", *(f"  - {note}" for note in rec.notes)]
    return "\n".join(lines)
