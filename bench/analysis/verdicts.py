"""What a comparison says: the verdicts, one row per strategy and metric, and the comparison as a
whole (bench/analysis/compare.py builds them, bench/analysis/gate.py holds them to the family's alpha).
Imports no torch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

BETTER, WORSE, SAME, NOISE = "better", "worse", "no change", "~ noise"
UNKNOWN, MISSING, NOT_COMPARABLE = "cannot tell", "missing", "not comparable"
ALL_STRATEGIES = "all strategies"  # bench ab's suite-level timing rows
CHANGED = "changed"  # an identity (per-suite constant) that differs: said, never tested or gated
DEFAULT_THRESHOLD = 0.10
DEFAULT_ALPHA = 0.05
DEFAULT_GATES = ["*"]  # every metric except the latency tails (stats.TAILS); --fail-on chooses others
# reasons a row is held out of the gate (MetricChange.held) that bench ab looks for
TIMING_CONTAMINATED = "timing contaminated"
LATENCY_TAIL = "a latency tail (gate it with --fail-on)"


@dataclass
class MetricChange:
    strategy: str
    metric: str
    unit: str
    higher_is_better: bool
    baseline: float | None
    candidate: float | None
    n_baseline: int
    n_candidate: int
    change: float | None  # relative: (candidate - baseline) / |baseline|
    threshold: float
    p_value: float | None
    test: str  # "runs" (permutation test over per-run values), "identity" or ""
    verdict: str
    gating: bool
    note: str = ""
    adjusted: bool = False  # timings brought to equal machine speed with the runs' reference workload
    # quality metrics (bench/analysis/quality.py): the effect in its own unit (points, log ratio), its (1 - 2
    # alpha) interval, the minimum detectable effect, and the p-value after family-wise control
    effect: float | None = None
    low: float | None = None
    high: float | None = None
    mde: float | None = None  # 95% power at alpha / m (m gating hypotheses): see quality.minimum_detectable
    se: float | None = None
    df: float | None = None
    scale: str | None = None  # quality: "points", "ratio" (effect, bounds and mde are log ratios) or "other"
    q_value: float | None = None  # Benjamini-Hochberg adjusted over every gating test of the comparison
    # bench ab: the suite-level row (strategy ALL_STRATEGIES, this metric) a strategy's timing row is
    # tested within; it gates only where that row does (bench/analysis/gate.py, control_family)
    parent: str | None = None
    # why a row that would gate does not ("" where nothing holds it back); its note starts with it
    held: str = ""

    @property
    def regression(self) -> bool:
        return self.verdict == WORSE and self.gating

    def hold(self, reason: str) -> None:
        """Keep this row out of the gate, its reason first in the note."""
        self.gating, self.held = False, reason
        self.note = f"not gated: {reason}" + (f"; {self.note}" if self.note else "")


@dataclass
class RunIssue:
    strategy: str
    kind: str  # "not comparable", "only in baseline", "only in candidate", "failed in candidate"
    detail: str
    gating: bool = False


@dataclass
class Comparison:
    baseline: str
    candidate: str
    changes: list[MetricChange] = field(default_factory=list)
    issues: list[RunIssue] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA

    @property
    def regressions(self) -> list[MetricChange]:
        return [change for change in self.changes if change.regression]

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or any(issue.gating for issue in self.issues)

    def ordered(self) -> list[MetricChange]:
        """Changes, the ones that matter first: worse, better, cannot tell, noise, missing, no change."""
        rank = {WORSE: 0, BETTER: 1, CHANGED: 2, UNKNOWN: 3, NOISE: 4, NOT_COMPARABLE: 5, MISSING: 6, SAME: 7}
        return sorted(self.changes, key=lambda c: (rank.get(c.verdict, 9), c.strategy, c.metric))

    def counts(self) -> dict[str, int]:
        verdicts = [change.verdict for change in self.changes]
        return {verdict: verdicts.count(verdict) for verdict in dict.fromkeys(verdicts)}

    def to_json(self) -> dict[str, Any]:
        """The comparison as plain JSON: a value that is not a finite number (the relative change from a
        baseline of 0, a mean over a NaN) is null, as RFC 8259 JSON has no Infinity or NaN."""
        return _finite(
            {
                "baseline": self.baseline,
                "candidate": self.candidate,
                "alpha": self.alpha,
                "failed": self.failed,
                "counts": self.counts(),
                "regressions": [f"{c.strategy}: {c.metric}" for c in self.regressions],
                "changes": [asdict(change) for change in self.changes],
                "issues": [asdict(issue) for issue in self.issues],
            }
        )


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
