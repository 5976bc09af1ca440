"""The statistics behind every "is this a real difference?" answer: `bench compare`, the report's
"beyond seed noise", and the A/A experiment all call these. Imports no torch.

The unit of replication is the run (one seed), never the step or the token. Steps and tokens
inside one run share its moment on the machine (one slow second moves many of them), so pooling
them as independent samples makes p-values far too small: two runs of the same commit on a quiet
machine differed by 14-26% on pooled latency samples with p < 1e-20 (FINDINGS.md). Each run is
summarised first (its tokens/s, its p50 latency, its accuracy), and the test is across runs.

Which test answers which question (docs/statistics.md):

* two groups of runs (bench compare on timing, memory and counts; the report's and bench recommend's
  "beyond seed noise"): a two-sample permutation test of the difference in means (scipy's
  `permutation_test`; `permutation_p`, `differs`, `seed_test`), one-sided in the direction observed
  unless asked for both. It assumes nothing about the shape of the distribution, handles ties
  (discrete accuracies) exactly, and is exact for the few runs a suite has: every split of the pooled
  runs is enumerated. With n and m runs its smallest p is 1 / C(n+m, n): 0.05 for 3 vs 3, 0.167 for
  2 vs 2. Runs paired by seed (`seed_test`) or by round (bench ab) take the sign-flip permutation test
  of the paired differences instead (`paired_p`; smallest p 1 / 2^n);
* quality verdicts (bench/analysis/quality.py): t-tests whose standard error holds both item and seed
  noise (`t_p`, `t_quantile`);
* one session against several (bench compare's timing by session, bench history's test of tonight):
  the t prediction test (`prediction_p`).

A design that can never reach alpha says "cannot tell" instead of pretending.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Iterable, Sequence

from bench.records.components import COMPONENTS

# Metric families: which rules apply to a metric, by name (docs/statistics.md).
# The base model's scores: identities, not samples (bench/analysis/compare.py compares them, never tests them).
# Per-suite constants: on the task's evaluation items, the same for every seed.
SUITE_CONSTANT = ("accuracy_before.*",)
# On the held-out preference pairs, which the seed draws: the same for one seed, compared seed by seed.
PER_SEED_CONSTANT = ("align.preference_accuracy_before", "align.exact_match_before")
IDENTITY = (*SUITE_CONSTANT, *PER_SEED_CONSTANT)
# Timings: only comparable on the same hardware fingerprint, and only when not contaminated.
TIMING = (
    "train.tokens_per_s",
    "train.samples_per_s",
    "train.steps_per_s",
    "train.seconds",
    "train.batches_ahead_seconds",
    "train.model_tflops_per_s",  # tokens/s times FLOPs per token (bench/measure/flops.py)
    "train.mfu",
    "train.mfu_6n",
    "train.*.tokens_per_s",  # each phase of a run of several (RLHF: train.reward.*, train.policy.*)
    "train.*.steps_per_s",
    "train.*.seconds",
    "latency.*",
)
# The process's host memory peak depends on how it started: a warm run forks from a server that imported
# the stack once (train 476 MiB on smoke), a cold one imports it itself (563 MiB): compared like with like.
START_BOUND = ("memory.*host_peak_mib",)
# Depends on the hardware but not on what else runs: compared on the same fingerprint only.
HARDWARE_BOUND = (*TIMING, "memory.*")
# Training memory counted from the tensors' sizes (bench/records/components.py COMPONENTS, and their sum):
# the same on any machine for the same spec (the spec names the device and dtype), so compared across
# fingerprints. The measured peaks (host RSS, CUDA allocator, NVML) stay hardware-bound.
COUNTED = tuple(f"memory.*.{name}_mib" for name in (*COMPONENTS, "components"))
# Shown but not gated unless asked for (--fail-on): a latency tail moves with one slow moment of a run,
# so gating every tail of every strategy multiplies false alarms; the p50s and throughput gate.
TAILS = ("latency.*.p90", "latency.*.p99")
EXACT_LIMIT = 20_000  # up to this many splits the test enumerates them all; beyond, it samples them
# A quantile q is a stable summary of a run only with at least this many samples beyond it
SAMPLES_BEYOND_QUANTILE = 10


def thin_tail(metric: str, samples: int) -> str | None:
    """Why a latency percentile of `samples` values per run is not gated, or None when it can be:
    the p99 of 8 samples is their largest value, which one slow moment decides."""
    match = re.fullmatch(r"latency\..+\.p(\d+)", metric)
    if not match or int(match.group(1)) <= 50:
        return None
    q = int(match.group(1)) / 100
    needed = math.ceil(round(SAMPLES_BEYOND_QUANTILE / (1 - q), 6))
    if samples >= needed:
        return None
    return f"p{match.group(1)} of {samples} samples per run is not a stable quantile (needs {needed})"


def matches(metric: str, patterns: Iterable[str]) -> bool:
    return any(fnmatch.fnmatchcase(metric, pattern) for pattern in patterns)


def hardware_bound(metric: str) -> bool:
    """Compared only between records of the same hardware fingerprint: timing and measured memory peaks,
    not the memory counted from tensor sizes (COUNTED)."""
    return matches(metric, HARDWARE_BOUND) and not matches(metric, COUNTED)


def min_p_value(n1: int, n2: int) -> float:
    """The smallest one-sided p-value an exact permutation test of n1 vs n2 runs can give."""
    return 1.0 / math.comb(n1 + n2, n1) if n1 and n2 else 1.0


def most_specific(metric: str, by_pattern: dict[str, float]) -> float | None:
    """The value given for the metric's exact name, else for the most specific (longest) pattern that
    matches it, else None: how --threshold, --min-effect and gate.min_effect apply."""
    if metric in by_pattern:
        return by_pattern[metric]
    found = [pattern for pattern in by_pattern if fnmatch.fnmatchcase(metric, pattern)]
    return by_pattern[max(found, key=len)] if found else None


def mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def permutation_p(candidate: Sequence[float], baseline: Sequence[float], increased: bool) -> float:
    """One-sided p that the candidate's mean is above (increased) or below the baseline's by chance."""
    import numpy as np
    from scipy.stats import permutation_test

    if len(set(candidate) | set(baseline)) == 1:
        return 1.0
    if min(len(candidate), len(baseline)) == 1:  # scipy needs two a side; one a side is a rank
        return _one_against_many(candidate, baseline, increased)
    result = permutation_test(
        (np.asarray(candidate, dtype=float), np.asarray(baseline, dtype=float)),
        lambda x, y, axis: np.mean(x, axis=axis) - np.mean(y, axis=axis),
        permutation_type="independent",
        alternative="greater" if increased else "less",
        n_resamples=EXACT_LIMIT,
        vectorized=True,
        rng=np.random.default_rng(0),  # only used past EXACT_LIMIT splits; fixed so answers repeat
    )
    return float(result.pvalue)


def _one_against_many(candidate: Sequence[float], baseline: Sequence[float], increased: bool) -> float:
    """The exact permutation p when one side has a single value: the difference of means is monotone in
    which pooled value stands alone, so p is the share of pooled values at least as far that way (ties
    count)."""
    pooled = [*candidate, *baseline]
    alone, candidate_alone = (candidate[0], True) if len(candidate) == 1 else (baseline[0], False)
    beyond = (lambda v: v >= alone) if increased == candidate_alone else (lambda v: v <= alone)
    return sum(1 for value in pooled if beyond(value)) / len(pooled)


def prediction_p(single: float, others: Sequence[float], increased: bool | None = None) -> float:
    """One-sided p that one session's mean lies this far above (increased) or below the other sessions' means
    by chance: the t prediction test of a new value against a normal sample of m, (x - mean) / (s sqrt(1 +
    1/m)) with m - 1 degrees of freedom, on logarithms where every value is positive (a machine's speed moves
    by a factor). A nightly's runs share one session, so tested one by one against the pooled runs of earlier
    nights they counted as three measurements where the machine gave one: with sessions spread by 13%, 19%
    of A/A nights failed; this test holds alpha whatever the spread (docs/statistics.md). Two or more others;
    where they all agree exactly (made-up records; a machine's timings never do), the limit of the statistic:
    0 for a single value beyond them, 1 for one among them. `increased` None: the direction observed (the
    single value above or below the others' mean), as `differs` tests."""
    if len(others) < 2:
        raise ValueError("a prediction test needs two or more other sessions")
    if increased is None:
        increased = single > sum(others) / len(others)
    logs = all(value > 0 for value in [single, *others])
    x, sample = (math.log(single), [math.log(v) for v in others]) if logs else (single, list(others))
    centre = sum(sample) / len(sample)
    spread = math.sqrt(sum((v - centre) ** 2 for v in sample) / (len(sample) - 1))
    if spread <= 1e-12 * max(1.0, abs(centre)):
        return 0.0 if (x > centre if increased else x < centre) else 1.0
    from scipy.stats import t

    statistic = (x - centre) / (spread * math.sqrt(1 + 1 / len(sample)))
    return float(t.sf(statistic, len(sample) - 1) if increased else t.cdf(statistic, len(sample) - 1))


def finite(values: Iterable[float]) -> bool:
    """Every value is a number (no NaN, no infinity): a test of values that are not is meaningless."""
    return all(math.isfinite(value) for value in values)


def differs(
    a: Sequence[float], b: Sequence[float], alpha: float, two_sided: bool = False
) -> tuple[bool | None, float | None]:
    """(beyond noise?, p) for two groups of per-run values: by default the one-sided test in the
    direction the means point, as `bench compare` uses it, where only one direction gates (so its
    two-sided level is 2 x alpha). `two_sided`: the p of either direction (twice the one-sided p, at
    most 1), for a question whose direction the data chose ("which is faster?"): at alpha, two equal
    strategies are called different alpha of the time, not 2 x alpha.

    (None, None) when the design cannot tell: too few runs for any split to reach alpha, or a value that is
    not a number (NaN, infinity; the caller says which).
    """
    if not finite([*a, *b]):
        return None, None
    mean_a, mean_b = mean(a), mean(b)
    sides = 2 if two_sided else 1
    if mean_a is None or mean_b is None or sides * min_p_value(len(a), len(b)) > alpha:
        return None, None
    p = min(1.0, sides * permutation_p(a, b, increased=mean_a > mean_b))
    return p <= alpha, p


def seed_test(
    first: Sequence[tuple[int, float]], second: Sequence[tuple[int, float]], alpha: float
) -> tuple[float | None, str]:
    """(two-sided p, design) that two strategies' runs, (seed, value) each, differ beyond seed noise; p is
    None where the design cannot reach alpha. Paired by seed (a sign-flip test of the per-seed
    differences: seed k set both runs' data order, and in a suite they ran one after the other) where
    both ran once each, on the seeds both ran, where there are enough of them to reach alpha (6 at 0.05);
    else the two-sample test over all runs. The choice rests on the design alone, never on the values,
    so alpha holds."""
    by_seed_a, by_seed_b = dict(first), dict(second)
    once = len(by_seed_a) == len(first) and len(by_seed_b) == len(second)
    seeds = sorted(by_seed_a.keys() & by_seed_b.keys()) if once else []
    a, b = [value for _, value in first], [value for _, value in second]
    if not finite([*a, *b]):
        return None, "a value that is not a number (NaN or infinity): not tested"
    if len(seeds) and 2 / 2 ** len(seeds) <= alpha:  # the seeds both ran; a seed one side lacks is left out
        a, b = [by_seed_a[k] for k in seeds], [by_seed_b[k] for k in seeds]
        return min(1.0, 2 * paired_p(a, b, _above(a, b))), f"paired by seed ({len(seeds)} seeds), two-sided"
    if 2 * min_p_value(len(a), len(b)) > alpha:
        return None, f"{len(a)} vs {len(b)} seeds: too few to tell at two-sided p<={alpha}"
    return min(1.0, 2 * permutation_p(a, b, _above(a, b))), f"{len(a)} vs {len(b)} seeds, two-sided"


def _above(a: Sequence[float], b: Sequence[float]) -> bool:
    return sum(a) / len(a) > sum(b) / len(b)


def paired_p(candidate: Sequence[float], baseline: Sequence[float], increased: bool) -> float:
    """One-sided p that the candidate's values are above (increased) or below their paired baseline
    values by chance: a sign-flip permutation test of the mean paired difference (exact for up to
    2^14 pairs' flips). With n pairs the smallest p is 1 / 2^n: 0.031 for 5 rounds."""
    import numpy as np
    from scipy.stats import permutation_test

    differences = np.asarray(candidate, dtype=float) - np.asarray(baseline, dtype=float)
    if not differences.any():
        return 1.0
    result = permutation_test(
        (differences,),
        lambda d, axis: np.mean(d, axis=axis),
        permutation_type="samples",
        alternative="greater" if increased else "less",
        n_resamples=EXACT_LIMIT,
        vectorized=True,
        rng=np.random.default_rng(0),
    )
    return float(result.pvalue)


# ---- quality metrics and the family of gating tests (docs/statistics.md) -------------------------

# Quality: what training produced. Every verdict on these carries both noises (items and seeds).
QUALITY = ("accuracy.*", "gain.*", "forgetting.*", "train.final_loss", "align.*")
# Quality metrics measured in accuracy points: their effects are differences, never percentages
POINT_UNITS = ("acc", "rate")
# Positive, scale-like quality metrics: effects are ratios (tested on the log scale)
RATIO_UNITS = ("loss",)


def is_quality(metric: str) -> bool:
    return matches(metric, QUALITY) and not matches(metric, IDENTITY)


def t_p(effect: float, se: float, df: float) -> float:
    """One-sided p of a t statistic in the direction of `effect` (0 when the effect is exact)."""
    if se == 0:
        return 0.0 if effect != 0 else 1.0
    from scipy.stats import t

    return float(t.sf(abs(effect) / se, df)) if math.isfinite(df) else 0.5 * math.erfc(abs(effect) / se / math.sqrt(2))


def t_quantile(probability: float, df: float) -> float:
    from scipy.stats import norm, t

    return float(t.ppf(probability, df) if math.isfinite(df) else norm.ppf(probability))


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg adjusted p-values (q-values), in the input order. Rejecting every q <= alpha
    keeps the expected share of false discoveries at or under alpha (independent or positively
    dependent tests); when no change is real that is the chance of any false alarm. scipy's
    false_discovery_control(p, method="bh") gives the same q-values but for the last bit, and raises on a
    NaN p, so the comparison is kept here (tests/test_benjamini_hochberg.py holds the two together). A NaN p
    is no test: its q is 1 and it is not counted in the family (it sorted anywhere and took its neighbours' q)."""
    tested = [i for i, p in enumerate(p_values) if not math.isnan(p)]
    count = len(tested)
    order = sorted(tested, key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 1.0
    for rank in range(count, 0, -1):
        index = order[rank - 1]
        running = min(running, p_values[index] * count / rank)
        adjusted[index] = min(running, 1.0)
    return adjusted


# Metrics that restate another's test exactly (same runs, a constant apart): one hypothesis in the family.
# gain.T and forgetting.T are accuracy.T minus the base model's score on the same items; samples/s and
# steps/s are tokens/s over a fixed batch, and training seconds their inverse over fixed steps.
SAME_HYPOTHESIS = {
    "train.samples_per_s": "train.tokens_per_s",
    "train.steps_per_s": "train.tokens_per_s",
    "train.seconds": "train.tokens_per_s",
    "train.model_tflops_per_s": "train.tokens_per_s",  # tokens/s times the run's FLOPs per token
    "train.mfu": "train.tokens_per_s",
    "train.mfu_6n": "train.tokens_per_s",
}


def hypothesis(metric: str) -> str:
    """The family member a metric's test belongs to (itself unless it restates another metric)."""
    family, _, task = metric.partition(".")
    if family in ("gain", "forgetting") and task != "mean":
        return f"accuracy.{task}"
    return SAME_HYPOTHESIS.get(metric, metric)
