"""Quality verdicts that know both noises: items and training seeds (docs/statistics.md).

A quality metric (accuracy, gain, forgetting, final loss, alignment) moves for two reasons that are
not the code's: which items were scored, and which seed trained the run (two seeds of one strategy
on SmolLM2-135M differ by 10 points of ARC-Easy). A verdict is sound only when its standard error
holds both. So:

* **paired by seed** when both sides ran the same seeds (two or more): seed k of the baseline and
  seed k of the candidate are a pair (at one commit they repeat exactly). Item-level metrics are
  paired by item within each seed too: the variance of the mean difference is the spread of the k
  per-seed differences over k (k - 1 degrees of freedom) plus what the items share across seeds, the
  item-by-change interaction of the seeds x items matrix of differences; per-run metrics (final
  loss, alignment) take a paired t over the seeds' differences (log ratios for a loss);
* **unpaired** when the seed sets differ (an A/A with disjoint seeds, a suite whose seeds changed):
  item-level metrics take each side's per-seed means (Welch) plus the item-by-change interaction
  (bench/analysis/variance.py `unpaired`); per-run metrics a Welch t over the runs;
* **cannot tell** when a side has a single seed: the seed variance cannot be estimated, and item
  noise alone is not the whole noise (it called seed 0 against seed 1 a -10 point regression).

Effects are in accuracy points for accuracy-like metrics (a drop from 0.60 to 0.55 is -5.0 points,
never "-8%"), ratios for a loss. Every test is one-sided at the level the caller uses; the interval
that goes with it is the two-sided (1 - 2 alpha) one, so the gate and the interval agree.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from bench.analysis import items, stats, variance

DEFAULT_MIN_EFFECT = {"points": 0.01, "ratio": 0.05, "other": 0.0}


@dataclass
class QualityTest:
    """candidate minus baseline (points, log ratio or plain difference) with its noise."""

    effect: float
    se: float
    df: float
    design: str  # how the two sides were paired, in words
    scale: str  # "points", "ratio" (effect is a log ratio) or "other"
    # the p where the runs show no spread at all (se 0): 0 for a continuous metric, where every seed moving by
    # exactly as much is no chance; for a share (points) it is, so the exact permutation p of the design
    exact_p: float = 0.0

    def p(self) -> float:
        """One-sided p in the direction of the effect."""
        if self.se == 0 and self.effect != 0:
            return self.exact_p
        return stats.t_p(self.effect, self.se, self.df)

    def bounds(self, alpha: float) -> tuple[float, float]:
        """The two-sided (1 - 2 alpha) interval: each bound is the one-sided (1 - alpha) bound."""
        half = stats.t_quantile(1 - alpha, self.df) * self.se
        return self.effect - half, self.effect + half

    def shown(self, value: float) -> str:
        return shown(value, self.scale)


def minimum_detectable(se: float, df: float, level: float, power: float = 0.95) -> float:
    """The true effect a one-sided test at `level` finds with probability `power`: (t_(1-level) + t_power) SE.
    bench compare states it at 95% power and at alpha / m, the level of a lone change among m gating
    hypotheses under Benjamini-Hochberg, so a change beyond it is caught at least 95% of the time."""
    return (stats.t_quantile(1 - level, df) + stats.t_quantile(power, df)) * se


def shown(value: float, scale: str) -> str:
    if scale == "points":
        return f"{100 * value:+.1f} points"
    if scale == "ratio":
        return f"{math.expm1(value):+.1%}"
    return f"{value:+.4g}"


def scale_of(unit: str, values: list[float]) -> str:
    if unit in stats.POINT_UNITS:
        return "points"
    if unit in stats.RATIO_UNITS and values and min(values) > 0:
        return "ratio"
    return "other"


def one_per_seed(runs: list[Any]) -> list[Any]:
    """Quality is compared once per seed: where a side repeats a seed (rounds of `bench ab`, nights of
    the nightly), the newest run stands for it; repeats are replicates of timing, not of training."""
    newest: dict[int, Any] = {}
    for run in sorted(runs, key=lambda r: (r.started_at or "", r.run_id)):
        newest[run.seed] = run
    return [newest[seed] for seed in sorted(newest)]


def _values(runs: list[Any], metric: str, scale: str) -> list[float]:
    values = [run.metrics[metric].value for run in runs]
    return [math.log(v) for v in values] if scale == "ratio" else values


def _paired_runs(base: list[Any], cand: list[Any], metric: str, scale: str) -> QualityTest:
    differences = [c - b for b, c in zip(_values(base, metric, scale), _values(cand, metric, scale))]
    k = len(differences)
    mean = sum(differences) / k
    variance = _spread([sum((d - mean) ** 2 for d in differences) / (k - 1)], mean)
    test = QualityTest(mean, math.sqrt(variance / k), k - 1, f"paired by seed ({k} seeds)", scale)
    return _without_spread(test, 0.5**k, "every seed moved by as much: exact sign-flip p = 1/2^k")


def _spread(variances: list[float], level: float) -> float:
    """The summed variances, 0 where they are float rounding of equal values around `level`."""
    total = sum(variances)
    return total if total > 1e-18 * level**2 else 0.0


def _without_spread(test: QualityTest, exact_p: float, why: str) -> QualityTest:
    """A per-run test of a share (points) whose runs show no spread: equal discrete values are chance (two
    seeds that each lost one item of 25), so its p is the exact permutation p of the design, not 0."""
    if test.se == 0 and test.scale == "points":
        test.exact_p, test.design = exact_p, f"{test.design}; {why}"
    return test


def _welch(base: list[Any], cand: list[Any], metric: str, scale: str) -> QualityTest:
    a, b = _values(cand, metric, scale), _values(base, metric, scale)
    parts = []
    for side in (a, b):
        mean = sum(side) / len(side)
        parts.append((sum((x - mean) ** 2 for x in side) / (len(side) - 1) / len(side), len(side) - 1))
    effect = sum(a) / len(a) - sum(b) / len(b)
    variance = _spread([value for value, _ in parts], max(map(abs, a + b)))
    spread = sum(value**2 / df for value, df in parts)
    df = variance**2 / spread if spread > 0 and variance > 0 else math.inf
    test = QualityTest(effect, math.sqrt(variance), df, f"unpaired seeds ({len(b)} vs {len(a)} runs)", scale)
    least = stats.min_p_value(len(a), len(b))
    return _without_spread(test, least, "each side's runs alike: exact permutation p = 1/C(n+m, n)")


def _paired_items(base: list[Any], cand: list[Any], metric: str) -> QualityTest | None:
    """Seeds paired, items paired within each seed: bench/analysis/variance.py's `seed_paired` (the k
    per-seed differences give the seed-to-seed variance with k - 1 degrees of freedom; the items add
    what they share across seeds: a change on a few items in every seed is exactly that)."""
    matrices = items.comparable_matrices(cand, base, metric)
    if matrices is None:
        return None
    paired = variance.seed_paired(*matrices)
    design = f"paired by seed and item ({len(base)} seeds x {paired.items} items)"
    return QualityTest(paired.mean, paired.se, paired.df, design, "points")


def _unpaired_items(base: list[Any], cand: list[Any], metric: str) -> QualityTest | None:
    """Different seeds on the two sides, the same items: each side's per-seed means (Welch, k - 1 df a
    side) and the item-by-change interaction of every task (bench/analysis/variance.py `unpaired`)."""
    matrices = items.comparable_matrices(cand, base, metric)
    if matrices is None:
        return None
    estimate = variance.unpaired(*matrices)
    design = f"paired by item, unpaired seeds ({len(base)} vs {len(cand)} seeds x {estimate.items} items)"
    return QualityTest(estimate.mean, estimate.se, estimate.df, design, "points")


def quality_test(base: list[Any], cand: list[Any], metric: str) -> QualityTest | str:
    """The test of one quality metric between two sides' runs (one per seed), or why there is none."""
    base, cand = measured(base, metric), measured(cand, metric)
    unit = (base or cand)[0].metrics[metric].unit
    scale = scale_of(unit, [r.metrics[metric].value for r in base + cand])
    if items.same_seeds(base, cand):  # seed k with seed k: both sides are in seed order (measured)
        if scale == "points" and (test := _paired_items(base, cand, metric)) is not None:
            return test
        return _paired_runs(base, cand, metric, scale)
    if len(base) < 2 or len(cand) < 2:
        sizes = f"{len(base)} vs {len(cand)} seeds"
        return (
            f"{sizes}: one seed on a side, so the seed-to-seed (training) variance cannot be estimated and"
            " item noise alone is not the whole noise; add seeds (the same seeds on both sides pair them)"
        )
    if scale == "points" and (test := _unpaired_items(base, cand, metric)) is not None:
        return test
    return _welch(base, cand, metric, scale)


def measured(runs: list[Any], metric: str) -> list[Any]:
    """The runs that recorded a value of `metric`, in seed order (a run may lack it, or record it missing with
    a reason)."""
    recorded = [r for r in runs if metric in r.metrics and r.metrics[metric].value is not None]
    return sorted(recorded, key=lambda r: r.seed)


def identical_per_seed(base: list[Any], cand: list[Any], metric: str) -> bool:
    """Both sides measured the metric on the same seeds and every seed gave the same value: nothing to test."""
    base, cand = measured(base, metric), measured(cand, metric)
    if [r.seed for r in base] != [r.seed for r in cand]:
        return False
    return all(b.metrics[metric].value == c.metrics[metric].value for b, c in zip(base, cand))
