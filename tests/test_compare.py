"""bench compare: direction-aware, noise-aware verdicts, and the CLI's exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench.compare import BETTER, MISSING, NOISE, NOT_COMPARABLE, SAME, UNKNOWN, WORSE, compare_records, min_p_value
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
    assert change.test == "samples:train.step_seconds" and change.p_value < 1e-6
    assert -0.33 < change.change < -0.27
    assert {c.metric for c in result.regressions} == {"train.tokens_per_s"}
    # unrelated metrics stay unchanged
    assert verdicts(result, "accuracy.cipher") == {"full": SAME, "lora": SAME}
    assert result.failed


def test_planted_drop_over_seeds_alone_when_no_raw_samples():
    result = compare_records(make_set(timings=False), make_set(scale=SLOW, timings=False))
    change = next(c for c in result.changes if c.metric == "train.tokens_per_s")
    assert change.test == "seeds" and change.verdict == WORSE and change.p_value <= 0.05


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
    assert change.verdict == BETTER and change.test == "samples:latency.ttft_ms"


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
