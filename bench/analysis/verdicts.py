"""What a comparison says: the verdicts, one row per strategy and metric, and the comparison as a
whole (bench/analysis/compare.py builds them, bench/analysis/gate.py holds them to the family's alpha).
Imports no torch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.analysis.environment import EnvironmentChange

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
# a record whose headline value disagrees with its own per-item outcomes: its rows are not tested, and the
# comparison's input is bad (bench compare exits 2)
INCONSISTENT = "record disagrees with its items"
UNREADABLE = "unreadable record"  # a record file of a set that could not be read (RunIssue.kind)


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
    # what the p-value tested: "runs" (permutation test over per-run values, compare.py), "sessions" (timing
    # over session means or a t prediction test, compare.py), "seeds" / "items" (a quality t-test over seeds,
    # paired by item where the records hold items: gate.py, quality.py), "rounds" (bench ab's sign-flip test
    # over paired rounds, ab.py), "identity" (a per-suite constant, never tested) or "" (not tested)
    test: str
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
    strategy: str  # for an unreadable file, the side: "(baseline)" or "(candidate)"
    kind: str  # "not comparable", "only in baseline", "failed in candidate", "seed missing in candidate", ...
    detail: str
    gating: bool = False
    bad_input: bool = False  # the comparison's input is corrupt (INCONSISTENT): it fails, and bench compare exits 2


@dataclass
class Comparison:
    baseline: str
    candidate: str
    changes: list[MetricChange] = field(default_factory=list)
    issues: list[RunIssue] = field(default_factory=list)
    alpha: float = DEFAULT_ALPHA
    # per side ("baseline", "candidate"), the files under its folder that may be records but could not be
    # read ("<path>: <reason>"): the comparison may be missing runs (bench compare exits 2 for the candidate's)
    unreadable: dict[str, list[str]] = field(default_factory=dict)
    # what differs between the compared runs besides what is compared: commit, packages, Python, hardware
    environment: list[EnvironmentChange] = field(default_factory=list)

    @property
    def regressions(self) -> list[MetricChange]:
        return [change for change in self.changes if change.regression]

    @property
    def bad_input(self) -> list[RunIssue]:
        """Issues that make the comparison's verdicts untrustworthy: records that contradict themselves."""
        return [issue for issue in self.issues if issue.bad_input]

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or any(issue.gating or issue.bad_input for issue in self.issues)

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
                "bad_input": [f"{issue.strategy}: {issue.detail}" for issue in self.bad_input],
                "unreadable": self.unreadable,
                "environment_changes": [asdict(change) for change in self.environment],
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
