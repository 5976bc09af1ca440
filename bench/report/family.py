"""The families of verdicts a report states: every difference it calls beyond noise or not is decided
with the others of its family at once, Benjamini-Hochberg at REPORT_ALPHA, as bench compare decides its
gating tests. Quality is one family: the difference table's strategy-against-reference rows and the
answer table's winner against runner-up on accuracy and forgetting (by item, or over seeds without
items). The answers' costs (fastest, least memory, lowest latency, smallest: tested over seeds,
two-sided) are another, so that a strong speed difference cannot make a weak accuracy one easier to
call. One family makes the answer line and the table agree: before, the answer tested its pair alone
(p = 0.049: "beyond noise") while the table, over two differences, said the same pair was not (q = 0.098).

With one seed on a side a difference is not tested ("cannot tell"): the seed-to-seed variance is unknown.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from bench.analysis.items import SEED_NOISE_UNKNOWN, metric_difference, metric_interval
from bench.analysis.stats import benjamini_hochberg
from bench.analysis.variance import Interval

REPORT_ALPHA = 0.05  # the same level as bench compare's default

Pair = tuple[str, str, str]  # (strategy, against, metric): metric(strategy) - metric(against)
Key = tuple[frozenset[str], str]  # a pair in either order, and its metric
SeedTest = tuple[str, str, str, float]  # (strategy, against, metric, two-sided p over seeds)


@dataclass(frozen=True)
class Verdict:
    """One difference of the family: beyond noise (None: cannot tell), and why where that needs saying."""

    beyond: bool | None
    why: str | None = None
    p: float | None = None
    q: float | None = None


class Family:
    """Every difference of a report with its verdict; a pair reads the same in either order."""

    def __init__(self, differences: dict[Key, tuple[str, Interval]], verdicts: dict[Key, Verdict]) -> None:
        self._differences = differences  # (first strategy, metric(first) - metric(other))
        self._verdicts = verdicts

    @property
    def tests(self) -> int:
        """How many differences were tested together (one-seed ones are not tested)."""
        return sum(verdict.q is not None for verdict in self._verdicts.values())

    def verdict(self, strategy: str, against: str, metric: str) -> Verdict | None:
        return self._verdicts.get((frozenset((strategy, against)), metric))

    def difference(self, strategy: str, against: str, metric: str) -> Interval | None:
        """metric(strategy) - metric(against), the interval its verdict was decided on."""
        found = self._differences.get((frozenset((strategy, against)), metric))
        if found is None:
            return None
        first, estimate = found
        if first == strategy:
            return estimate
        return replace(estimate, mean=-estimate.mean, limits=(-estimate.limits[1], -estimate.limits[0]))


def decide(keyed: dict[str, list], pairs: Iterable[Pair], seed_tests: Iterable[SeedTest] = ()) -> Family:
    """Each distinct pair's item-paired difference (bench/analysis/items.py) and its p-value, with the
    p-values of the seed-level tests, each with its verdict after Benjamini-Hochberg over all of them;
    pairs without comparable items are left out."""
    differences: dict[Key, tuple[str, Interval]] = {}
    for strategy, against, metric in pairs:
        key = (frozenset((strategy, against)), metric)
        if key in differences or strategy not in keyed or against not in keyed:
            continue
        difference = metric_difference(keyed[strategy], keyed[against], metric)
        if difference is not None:
            differences[key] = (strategy, difference)
    verdicts = {key: Verdict(None, SEED_NOISE_UNKNOWN) for key, (_, d) in differences.items() if not d.knows_seed_noise}
    tested = {key: d.p_value for key, (_, d) in differences.items() if d.knows_seed_noise}
    for strategy, against, metric, p in seed_tests:
        tested.setdefault((frozenset((strategy, against)), metric), p)
    verdicts.update(zip(tested, judge(list(tested.values()))))
    return Family(differences, verdicts)


def judge(p_values: list[float]) -> list[Verdict]:
    """Beyond noise where the Benjamini-Hochberg q over all p_values is at most REPORT_ALPHA (two-sided, as
    the 95% intervals); one beyond noise alone but not together says so, with its p and q."""
    verdicts = []
    for p, q in zip(p_values, benjamini_hochberg(p_values)):
        alone = f"p={p:.3f} alone, but q={q:.3f} after Benjamini-Hochberg over {len(p_values)}"
        verdicts.append(Verdict(q <= REPORT_ALPHA, alone if p <= REPORT_ALPHA < q else None, p, q))
    return verdicts


def table_pairs(keyed: dict[str, list], task: str, retained: list[str]) -> tuple[list[str], list[str], list[Pair]]:
    """The difference table's rows: (strategies, most accurate first; the compared metrics: the learned
    task's accuracy and, with retained tasks, mean forgetting; each other strategy against the most
    accurate on every compared metric)."""
    compared = [f"accuracy.{task}", "forgetting.mean"] if retained else [f"accuracy.{task}"]
    means = {strategy: metric_interval(runs, compared[0]) for strategy, runs in keyed.items()}
    ranked = sorted((s for s in means if means[s] is not None), key=lambda s: -means[s].mean)
    return ranked, compared, [(strategy, ranked[0], metric) for strategy in ranked[1:] for metric in compared]
