"""bench compare: direction-aware, noise-aware verdicts, and the CLI's exit code."""

from __future__ import annotations

import json
import math
import os
import random
import subprocess
import sys
from pathlib import Path

from bench.analysis.compare import compare_records, min_p_value
from bench.analysis.verdicts import BETTER, CHANGED, MISSING, NOISE, NOT_COMPARABLE, SAME, UNKNOWN, WORSE
from tests.synthetic_records import make_record, make_set, store

ROOT = Path(__file__).resolve().parents[1]
SLOW = {"train.tokens_per_s": 0.7}  # the planted 30% throughput drop


def verdicts(comparison, metric: str) -> dict[str, str]:
    return {c.strategy: c.verdict for c in comparison.changes if c.metric == metric}


def cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "bench.cli", "compare", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_identical_sets_give_no_change():
    records = make_set()
    result = compare_records(records, records)
    assert not result.failed
    assert {c.verdict for c in result.changes} == {SAME, MISSING}  # missing: the CUDA metrics on this CPU
    assert all(c.note.startswith("both:") for c in result.changes if c.verdict == MISSING)
    assert verdicts(result, "train.tokens_per_s") == {"full": SAME, "lora": SAME}


def test_planted_throughput_drop_is_a_regression():
    result = compare_records(make_set(), make_set(scale=SLOW))
    assert verdicts(result, "train.tokens_per_s") == {"full": WORSE, "lora": WORSE}
    change = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert change.test == "runs" and change.p_value == 0.05  # 3 vs 3 runs, perfectly separated
    assert -0.33 < change.change < -0.27
    assert {c.metric for c in result.regressions} == {"train.tokens_per_s"}
    # unrelated metrics stay unchanged
    assert verdicts(result, "accuracy.cipher") == {"full": SAME, "lora": SAME}
    assert result.failed


def test_planted_drop_is_found_without_raw_samples_too():
    result = compare_records(make_set(timings=False), make_set(scale=SLOW, timings=False))
    change = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert change.test == "runs" and change.verdict == WORSE and change.p_value <= 0.05


def test_cli_exits_non_zero_on_planted_regression(tmp_path):
    baseline = store(make_set(), tmp_path / "base")
    candidate = store(make_set(scale=SLOW), tmp_path / "cand")
    out = tmp_path / "comparison.json"
    run = cli(baseline, candidate, "--json", out)
    assert run.returncode == 1, run.stdout + run.stderr
    assert "REGRESSION" in run.stderr and "train.tokens_per_s" in run.stderr
    assert "worse" in run.stdout
    data = json.loads(out.read_text())
    assert data["failed"] is True
    assert sorted(data["regressions"]) == ["full: train.tokens_per_s", "lora: train.tokens_per_s"]
    print(run.stdout + run.stderr)
    # --fail-on chooses the gating metrics: accuracy alone does not gate on throughput
    assert cli(baseline, candidate, "--fail-on", "accuracy.*").returncode == 0
    # a user threshold above the drop turns it into "no change"
    assert cli(baseline, candidate, "--threshold", "train.*=0.5").returncode == 0
    # identical sets: exit 0
    same = cli(baseline, baseline)
    assert same.returncode == 0 and "no gating regression" in same.stdout


def test_cli_exits_2_when_nothing_was_compared(tmp_path):
    """Every run failed on both sides (a tree that cannot import its trainer, as in a bench ab of a commit
    missing a file): no metric was compared, so the gate has no evidence and must not say 'no regression'."""
    failed = [
        make_record(label, s, status="failed", reason="ModuleNotFoundError")
        for label in ("full", "lora")
        for s in (0, 1)
    ]
    baseline, candidate = store(failed, tmp_path / "base"), store(failed, tmp_path / "cand")
    run = cli(baseline, candidate)
    assert run.returncode == 2, run.stdout + run.stderr
    assert "nothing compared" in run.stderr and "failed in candidate" in run.stderr
    assert "no gating regression" not in run.stdout
    # the candidate failed where the baseline had successful runs: that is a regression, exit 1
    broken = store(make_set(), tmp_path / "ok")
    assert cli(broken, candidate).returncode == 1


def test_change_within_noise_is_not_a_regression():
    base = [
        make_record("full", s, values={"train.tokens_per_s": v}, timings=False) for s, v in enumerate([100, 140, 60])
    ]
    cand = [
        make_record("full", s, values={"train.tokens_per_s": v}, timings=False) for s, v in enumerate([70, 125, 55])
    ]
    result = compare_records(base, cand)
    change = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert change.change < -0.1  # beyond the threshold ...
    assert change.verdict == NOISE and change.p_value > 0.05  # ... but the seeds overlap
    assert not result.failed


def test_small_change_within_threshold_is_no_change():
    result = compare_records(make_set(), make_set(scale={"train.tokens_per_s": 0.95}))
    assert verdicts(result, "train.tokens_per_s") == {"full": SAME, "lora": SAME}
    assert not result.failed


def test_lower_is_better_direction():
    more_memory = compare_records(make_set(), make_set(scale={"memory.train.host_peak_mib": 1.3}))
    assert verdicts(more_memory, "memory.train.host_peak_mib") == {"full": WORSE, "lora": WORSE}
    assert more_memory.failed
    less_memory = compare_records(make_set(), make_set(scale={"memory.train.host_peak_mib": 0.7}))
    assert verdicts(less_memory, "memory.train.host_peak_mib") == {"full": BETTER, "lora": BETTER}
    assert not less_memory.failed
    # latency: raw samples move with the metric, lower is better
    faster = compare_records(make_set(), make_set(scale={"latency.ttft_ms.p50": 0.6}))
    change = next(c for c in faster.changes if c.metric == "latency.ttft_ms.p50")
    assert change.verdict == BETTER and change.test == "runs"


def test_missing_metric_is_reported_as_missing():
    gone = compare_records(make_set(), make_set(values={"train.tokens_per_s": None}))
    change = next(c for c in gone.changes if c.metric == "train.tokens_per_s")
    assert change.verdict == MISSING and change.candidate is None
    assert "planted: not measured" in change.note
    absent = compare_records(make_set(), make_set(drop=("storage.bytes",)))
    assert verdicts(absent, "storage.bytes") == {"full": MISSING, "lora": MISSING}
    assert not gone.failed and not absent.failed


def test_single_sample_per_side_cannot_tell():
    result = compare_records(make_set(seeds=(0,), timings=False), make_set(seeds=(0,), scale=SLOW, timings=False))
    change = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert change.verdict == UNKNOWN and change.p_value is None
    assert not result.failed
    assert min_p_value(1, 1) == 0.5 and min_p_value(3, 3) == 0.05


def test_changed_spec_is_not_comparable():
    result = compare_records(make_set(), make_set(learning_rate=1e-2))
    assert not result.changes
    assert {(i.strategy, i.kind) for i in result.issues} == {("full", NOT_COMPARABLE), ("lora", NOT_COMPARABLE)}
    assert "options.learning_rate" in result.issues[0].detail
    assert not result.failed


def test_failed_candidate_run_gates():
    base = make_set(labels=("full",))
    cand = make_set(labels=("full",), seeds=(0, 1)) + [make_record("full", 2, status="failed", reason="OOM")]
    result = compare_records(base, cand)
    assert [i.kind for i in result.issues] == ["failed in candidate"] and result.failed


def test_git_revision_of_results(tmp_path):
    repo = tmp_path / "repo"
    folder = store(make_set(), repo / "results")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    for command in (["init", "-q"], ["add", "results"], ["commit", "-q", "-m", "baseline"]):
        subprocess.run(["git", "-C", str(repo), *command], check=True, env=env, capture_output=True)
    store(make_set(scale=SLOW), repo / "results")  # same run ids: the working tree now holds the slow set
    run = cli(folder, folder, "--git-rev", "HEAD")
    assert run.returncode == 1, run.stdout + run.stderr
    assert "@HEAD" in run.stdout and "worse" in run.stdout


def test_changed_base_model_is_not_comparable_never_a_regression():
    result = compare_records(make_set(), make_set(scale=SLOW, base_sha="1fb2fb" + "0" * 58))
    assert not result.changes and not result.failed
    details = {i.strategy: i.detail for i in result.issues if i.kind == NOT_COMPARABLE}
    assert details == {s: "base model changed (sha 95f97e3f6575 -> 1fb2fb000000)" for s in ("full", "lora")}


def test_other_hardware_compares_quality_but_not_timing():
    slower_elsewhere = make_set(scale=SLOW | {"accuracy.cipher": 0.7}, cpu="Intel Xeon")
    result = compare_records(make_set(), slower_elsewhere)
    timing = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert timing.verdict == NOT_COMPARABLE and not timing.gating and "hardware differs" in timing.note
    memory = next(c for c in result.changes if c.metric == "memory.train.host_peak_mib")
    assert memory.verdict == NOT_COMPARABLE
    # quality still counts across machines: the planted accuracy drop is the one regression
    assert {c.metric for c in result.regressions} == {"accuracy.cipher"}
    same_quality = compare_records(make_set(), make_set(scale=SLOW, cpu="Intel Xeon"))
    assert not same_quality.failed
    assert {i.kind for i in same_quality.issues} == {"timing not comparable"}


def test_contaminated_timing_is_shown_but_never_gates():
    busy = make_set(scale=SLOW, contaminated="train: other processes used 1.02 cores (limit 0.25)")
    result = compare_records(make_set(), busy)
    change = next(c for c in result.changes if c.metric == "train.tokens_per_s" and c.strategy == "full")
    assert change.verdict == WORSE and not change.gating and "contaminated" in change.note
    assert not result.failed
    assert any(i.kind == "timing contaminated" and "1.02 cores" in i.detail for i in result.issues)


def test_base_model_scores_are_identities_not_samples():
    result = compare_records(make_set(), make_set(values={"accuracy_before.cipher": 0.04}))
    change = next(c for c in result.changes if c.metric == "accuracy_before.cipher" and c.strategy == "full")
    assert change.verdict == CHANGED and change.test == "identity" and not change.gating
    assert not result.failed
    unchanged = compare_records(make_set(), make_set())
    assert {c.verdict for c in unchanged.changes if c.metric.startswith("accuracy_before.")} == {SAME}


SPREAD = 0.15  # run-to-run spread of throughput (log scale)


def _correlated_runs(rng, label: str, seeds: range, run_spread: float) -> list:
    """Runs whose every step shares one run-level slowness: steps inside a run are not independent."""
    records = []
    for seed in seeds:
        slowness = math.exp(rng.gauss(0, run_spread))
        record = make_record(label, seed, values={"train.tokens_per_s": 2000 / slowness})
        samples = [0.128 * slowness * (1 + rng.gauss(0, 0.01)) for _ in range(40)]
        record.timings["train.step_seconds"].samples[:] = samples
        records.append(record)
    return records


def test_samples_correlated_within_a_run_give_no_false_alarm():
    """A/A on synthetic runs with a 15% run-to-run spread: the run is the unit, so the gate's
    false-alarm rate stays at or under 5%; pooling the steps as independent samples would not."""
    from scipy.stats import mannwhitneyu

    rng = random.Random(11)
    alarms = pooled_alarms = 0
    trials = 200
    for _ in range(trials):
        base = _correlated_runs(rng, "full", range(3), SPREAD)
        cand = _correlated_runs(rng, "full", range(3), SPREAD)
        result = compare_records(base, cand, fail_on=["train.tokens_per_s"])
        alarms += result.failed
        pooled_b = [s for r in base for s in r.timings["train.step_seconds"].samples]
        pooled_c = [s for r in cand for s in r.timings["train.step_seconds"].samples]
        change = next(c for c in result.changes if c.metric == "train.tokens_per_s")
        slower = mannwhitneyu(pooled_c, pooled_b, alternative="greater").pvalue <= 0.05
        pooled_alarms += slower and change.change is not None and change.change < -0.10
    print(f"A/A false alarms: per-run test {alarms}/{trials}, pooled steps {pooled_alarms}/{trials}")
    assert alarms / trials <= 0.05, alarms
    assert pooled_alarms / trials > 0.15, pooled_alarms  # the data really are correlated: pooling cries wolf


def test_a_slower_machine_is_not_a_slower_commit():
    """The reference workload took 12% longer in the candidate, and so did every step: the machine
    slowed, not the code. Timings compared at equal machine speed show no change."""
    slower_machine = make_set(scale={"train.tokens_per_s": 1 / 1.12, "train.seconds": 1.12}, reference=0.007 * 1.12)
    result = compare_records(make_set(), slower_machine)
    change = next(c for c in result.changes if c.metric == "train.tokens_per_s" and c.strategy == "full")
    assert change.verdict == SAME and "reference workload +12.0%" in change.note
    assert not result.failed
    raw = compare_records(make_set(), slower_machine, adjust_timing=False)
    assert {c.metric for c in raw.regressions} == {"train.tokens_per_s", "train.seconds"}
    # the same slowdown on an unchanged machine is the code's: it gates
    slower_code = make_set(scale={"train.tokens_per_s": 1 / 1.12, "train.seconds": 1.12})
    assert {c.metric for c in compare_records(make_set(), slower_code).regressions} == {
        "train.tokens_per_s",
        "train.seconds",
    }
    # records without a reference (schema 1) are compared as measured
    old = compare_records(make_set(reference=None), make_set(scale=SLOW, reference=None))
    assert {c.metric for c in old.regressions} == {"train.tokens_per_s"}
