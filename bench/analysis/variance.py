"""The variance of quality estimates on seeds x items matrices (Miller 2024, "Adding Error Bars to Evals").

Before and after a fine-tuning are scored on the same items, and so are two strategies: the unit
is the item, and what varies between the two sides is read from the per-item differences, not
from two independent proportions. Seeds are a second level: a run's (seed's) shift of every item
at once is its own variance component.

For a seeds x items matrix X of per-item outcomes (correct 0/1, or after-minus-before -1/0/1) the
estimate is the grand mean and its variance follows the two-way random-effects decomposition
X_si = mu + a_s + b_i + e_si, with the seed as the unit:

    Var(mean) = sigma_a^2 / k + sigma_b^2 / n + sigma_e^2 / (k n)
              = s^2(seed means) / k  +  max(MS_item - MS_error, 0) / (k n)

the first term with k - 1 degrees of freedom (taken over every task at once where a metric spans
several: a seed that moves all of them counts once), the second what the items share across seeds.

With one seed there is no seed component to estimate; the interval then covers the items only,
and says so. Two strategies on the same items: the per-item difference of their seed means
carries the item and residual terms, each side adds its own seed component.
Intervals use t with Satterthwaite degrees of freedom (few seeds: wider; many: z = 1.96); the
minimum detectable effect at 80% power, two-sided alpha 0.05, is (t_0.975 + t_0.80) x SE (1.96 +
0.84 with many degrees of freedom): a true difference smaller than that is missed more often
than not found, so "no difference" below it means "cannot tell".
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from bench.analysis import stats

POWER = 0.8  # of the minimum detectable effect: a true difference that large is found 80% of the time
Part = tuple[float, float]  # a variance estimate and its degrees of freedom


@dataclass
class Interval:
    """A mean with its standard error, 95% interval and minimum detectable effect."""

    mean: float
    se: float
    items: int
    seeds: int
    notes: list[str] = field(default_factory=list)
    df: float = math.inf  # degrees of freedom of the standard error (Satterthwaite); inf: normal
    limits: tuple[float, float] = (-math.inf, math.inf)  # the values the quantity can take: bounds clip to them
    score: tuple[float, float] | None = None  # a Wilson score interval where every outcome was alike (at_the_edge)

    @property
    def low(self) -> float:
        """The 95% lower bound, never under what the quantity can be: a t interval near a limit (a
        92-point drop on 12 items) would pass it, and clipping never lowers its coverage."""
        if self.score is not None:
            return self.score[0]
        return max(self.mean - stats.t_quantile(0.975, self.df) * self.se, self.limits[0])

    @property
    def high(self) -> float:
        if self.score is not None:
            return self.score[1]
        return min(self.mean + stats.t_quantile(0.975, self.df) * self.se, self.limits[1])

    @property
    def mde(self) -> float:
        return (stats.t_quantile(0.975, self.df) + stats.t_quantile(POWER, self.df)) * self.se

    @property
    def knows_seed_noise(self) -> bool:
        """Two or more seeds (a side): the interval holds the seed-to-seed variance, so it can decide."""
        return self.seeds >= 2

    @property
    def beyond_noise(self) -> bool:
        """The 95% interval excludes zero (for a difference)."""
        return self.low > 0 or self.high < 0

    @property
    def p_value(self) -> float:
        """Two-sided, t with the interval's degrees of freedom (0 for an exact nonzero mean)."""
        return min(1.0, 2 * stats.t_p(self.mean, self.se, self.df))


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def mean_squares(matrix: list[list[float]]) -> tuple[float, float]:
    """(MS_item, MS_error) of a seeds x items matrix (two-way layout, one value per cell)."""
    k, n = len(matrix), len(matrix[0])
    grand = _mean([x for row in matrix for x in row])
    seed_means = [_mean(row) for row in matrix]
    item_means = [_mean([row[i] for row in matrix]) for i in range(n)]
    ms_item = k * sum((m - grand) ** 2 for m in item_means) / (n - 1) if n > 1 else 0.0
    if k < 2 or n < 2:
        return ms_item, 0.0
    residual = sum((matrix[s][i] - seed_means[s] - item_means[i] + grand) ** 2 for s in range(k) for i in range(n))
    return ms_item, residual / ((k - 1) * (n - 1))


def seed_part(seed_means: Sequence[float]) -> tuple[float, float]:
    """(variance of their mean, degrees of freedom) from the seeds' own means: the seed is the unit, so
    this holds the seed-to-seed variance and each seed's item scatter, honestly with k - 1 df."""
    k = len(seed_means)
    centre = _mean(seed_means)
    return sum((m - centre) ** 2 for m in seed_means) / (k - 1) / k, k - 1


def satterthwaite(parts: Sequence[Part]) -> float:
    """Degrees of freedom of a sum of independent variance estimates (value, df)."""
    variance = sum(value for value, _ in parts)
    spread = sum(value**2 / df for value, df in parts if value > 0)
    return variance**2 / spread if spread > 0 else math.inf


def interval(matrix: list[list[float]]) -> Interval:
    """The grand mean of a seeds x items matrix with its two-level standard error: the seeds' means
    (k - 1 df) plus what the items share across seeds, (MS_item - MS_error) / (k n), clipped at 0."""
    k, n = len(matrix), len(matrix[0])
    if any(len(row) != n for row in matrix):
        raise ValueError("every seed must score the same items")
    if k == 1:  # one seed: the items' sampling variance only
        row = matrix[0]
        mean = _mean(row)
        variance = sum((x - mean) ** 2 for x in row) / (n - 1) / n if n > 1 else 0.0
        notes = ["one seed: the run-to-run (seed) variance is not included"]
        return Interval(mean, math.sqrt(variance), n, 1, notes, df=max(n - 1, 1))
    return seed_level([matrix])


def seed_level(matrices: list[list[list[float]]]) -> Interval:
    """The mean of one or more tasks' seeds x items matrices (two or more seeds, the same in every task;
    tasks weighted equally, as forgetting.mean is) with the seed as the unit: the spread of the seeds'
    means over every task at once (k - 1 df, so a seed that moves all tasks counts once, not once a task)
    plus what each task's items share across seeds, (MS_item - MS_error) / (k n) / tasks^2."""
    k, tasks = len(matrices[0]), len(matrices)
    per_seed = per_seed_means(matrices)
    seed, seed_for_df = seed_term(matrices, per_seed)
    item_parts = []
    for matrix in matrices:
        ms_item, ms_error = mean_squares(matrix)
        n = len(matrix[0])
        item_parts.append((max(ms_item - ms_error, 0.0) / (k * n) / tasks**2, max(n - 1, 1)))
    variance = sum(value for value, _ in [seed, *item_parts])
    count = sum(len(matrix[0]) for matrix in matrices)
    return Interval(_mean(per_seed), math.sqrt(variance), count, k, df=satterthwaite([seed_for_df, *item_parts]))


def seed_term(matrices: list[list[list[float]]], per_seed: Sequence[float]) -> tuple[Part, Part]:
    """The seed term of a mean over one or more tasks' seeds x items matrices: (variance part, k - 1 df), and
    the same part as its degrees of freedom are to weigh it (`satterthwaite`).

    The variance part is the spread of the seeds' means over k; where every seed's mean came out the same (to
    rounding), what the residual scatter alone puts into it, MS_error / (k n) a task (E[MS_seed] = n
    sigma_seed^2 + sigma_error^2 >= E[MS_error]). Seeds of discrete outcomes agree by chance (each seed lost
    one item, a different one), and a spread of 0 then gave a variance of 0 and p = 0, beyond any family's bar.

    For the degrees of freedom the part is never under that residual floor. With few seeds the spread is
    often far under its expectation by chance, and Satterthwaite then gave the item part's many degrees of
    freedom to exactly the statistics that a small spread had made large: A/A p-values were too small in the
    tail (3 seeds: p <= 0.005 in 0.9-1.8% of A/A pairs, where a family of many differences decides) though
    right at 0.05. The floor brings the tail to its level; the interval's standard error is unchanged."""
    k, tasks = len(per_seed), len(matrices)
    spread, df = seed_part(per_seed)
    floor = sum(mean_squares(m)[1] / (k * len(m[0])) for m in matrices) / tasks**2
    value = spread if spread > 1e-18 * max(abs(m) for m in per_seed) ** 2 else floor
    return (value, df), (max(value, floor), df)


def difference_parts(a: list[list[float]], b: list[list[float]]) -> list[tuple[float, float]]:
    """The variance parts of mean(a) - mean(b) for runs on different seeds and the same items: each
    side's seed means (Welch), and the item-by-side interaction (`interaction`)."""
    parts = [seed_part([_mean(row) for row in side]) for side in (a, b) if len(side) > 1]
    return [*parts, interaction(a, b)]


def interaction(a: list[list[float]], b: list[list[float]]) -> tuple[float, float]:
    """(variance part, df) of the item-by-side interaction of two sides on different seeds: the spread of
    the per-item differences of their seed means beyond what the seeds' residual scatter explains."""
    n = len(a[0])
    if n < 2:
        return 0.0, 1.0
    diffs = [_mean([row[i] for row in a]) - _mean([row[i] for row in b]) for i in range(n)]
    centre = _mean(diffs)
    spread = sum((d - centre) ** 2 for d in diffs) / (n - 1)
    residual = sum(mean_squares(side)[1] / len(side) for side in (a, b))
    if len(a) == 1 or len(b) == 1:  # no seed part: the item differences carry all that is known
        residual = 0.0
    return max(spread - residual, 0.0) / n, n - 1


def difference(a: list[list[float]], b: list[list[float]]) -> Interval:
    """mean(a) - mean(b) for two sets of runs scored on the same items (paired by item)."""
    n = len(a[0])
    if len(b[0]) != n:
        raise ValueError("the two sides must score the same items")
    parts = difference_parts(a, b)
    notes = []
    if len(a) == 1 or len(b) == 1:
        notes.append("one seed on a side: its run-to-run (seed) variance is not included")
    mean = _mean([x for row in a for x in row]) - _mean([x for row in b for x in row])
    total = sum(value for value, _ in parts)
    return Interval(mean, math.sqrt(total), n, min(len(a), len(b)), notes, df=satterthwaite(parts))


def per_seed_means(matrices: list[list[list[float]]]) -> list[float]:
    """Each seed's mean over every task's items (tasks weighted equally, as forgetting.mean is)."""
    return [_mean([_mean(matrix[s]) for matrix in matrices]) for s in range(len(matrices[0]))]


def seed_paired(a: list[list[list[float]]], b: list[list[list[float]]]) -> Interval:
    """mean(a) - mean(b) over one or more tasks (weighted equally, as forgetting.mean is) where both sides
    ran the same seeds in the same order: seed k of a minus seed k of b, items paired within each seed.
    The k per-seed differences (over every task at once, so a seed that moves all tasks counts once) give
    the seed-to-seed variance with k - 1 df; the items add what they share across seeds (`seed_level`)."""
    return seed_level([[[x - y for x, y in zip(ra, rb)] for ra, rb in zip(ma, mb)] for ma, mb in zip(a, b)])


def unpaired(a: list[list[list[float]]], b: list[list[list[float]]]) -> Interval:
    """mean(a) - mean(b) over one or more tasks (weighted equally) for two sides on different seeds, two or
    more a side, scored on the same items: each side's per-seed means over every task at once (Welch, k - 1
    df a side: a seed that moves all tasks counts once) plus each task's item-by-side interaction
    (`interaction`). Its seed parts weigh the degrees of freedom as they are, without `seed_term`'s floor:
    two sides' parts of k - 1 df each kept its A/A tail at its level (3 seeds a side: p <= 0.005 in 0.3-0.4%
    of A/A pairs), and raising the smaller one toward the floor raised the degrees of freedom instead."""
    tasks = len(a)
    parts = [seed_term(side, per_seed_means(side))[0] for side in (a, b)]
    for x, y in zip(a, b):
        value, df = interaction(x, y)
        parts.append((value / tasks**2, df))
    mean = _mean(per_seed_means(a)) - _mean(per_seed_means(b))
    count = sum(len(x[0]) for x in a)
    return Interval(
        mean, math.sqrt(sum(v for v, _ in parts)), count, min(len(a[0]), len(b[0])), df=satterthwaite(parts)
    )


def at_the_edge(estimate: Interval, matrices: list[list[list[float]]]) -> Interval:
    """One task whose every outcome was alike (0 of 24 right, or all of them): the spread is 0, so a t interval
    is [0, 0] and the detectable effect 0. There the Wilson score interval over the outcomes, and the
    Agresti-Coull standard error ((x + 2) / (n + 4)) for the detectable effect; seeds alike add nothing."""
    outcomes = [value for row in matrices[0] for value in row] if len(matrices) == 1 else []
    if estimate.se > 0 or not outcomes or any(value not in (0.0, 1.0) for value in outcomes):
        return estimate
    from scipy.stats import binomtest

    right, count = int(sum(outcomes)), len(outcomes)
    bounds = binomtest(right, count).proportion_ci(confidence_level=0.95, method="wilson")
    adjusted = (right + 2) / (count + 4)
    se = math.sqrt(adjusted * (1 - adjusted) / (count + 4))
    note = f"every one of {count} outcomes alike: a Wilson score interval"
    return replace(estimate, se=se, score=(bounds.low, bounds.high), notes=[*estimate.notes, note])


def average(parts: list[Interval]) -> Interval:
    """The mean of independent per-task estimates (forgetting.mean) and its standard error."""
    if len(parts) == 1:
        return parts[0]
    count = len(parts)
    mean = sum(p.mean for p in parts) / count
    se = math.sqrt(sum(p.se**2 for p in parts)) / count
    notes = sorted({note for p in parts for note in p.notes})
    spread = sum((p.se / count) ** 4 / p.df for p in parts if not math.isinf(p.df))
    df = (se**2) ** 2 / spread if spread > 0 else math.inf
    return Interval(mean, se, sum(p.items for p in parts), min(p.seeds for p in parts), notes, df=df)


def sentence(interval_: Interval, unit: str = "points") -> str:
    """ "with 150 items and 2 seeds, differences under 4.1 points cannot be told from noise"."""
    return (
        f"with {interval_.items} items and {interval_.seeds} seed{'s' if interval_.seeds != 1 else ''}, "
        f"differences under {100 * interval_.mde:.1f} {unit} cannot be told from noise"
    )
