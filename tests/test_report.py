"""The HTML report: rendered from records, self-contained, honest about missing values, no torch."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.analysis import stats
from bench.analysis.compare import compare_records
from bench.report import aggregate, charts, html, scales
from bench.report.family import REPORT_ALPHA
from bench.report.html import render, write_report
from tests.synthetic_records import TASK, make_record, make_set, store

ROOT = Path(__file__).resolve().parents[1]
CHART_IDS = ("accuracy-memory", "accuracy-throughput", "forgetting", "loss", "latency-ttft-ms")


@pytest.fixture(scope="module")
def records():
    failed = make_record("lora", 3, status="failed", reason="Traceback ...\nRuntimeError: planted out of memory")
    missing = make_record("lora", 2, values={"train.tokens_per_s": None})
    return [r for r in make_set() if not (r.label == "lora" and r.seed == 2)] + [missing, failed]


@pytest.fixture(scope="module")
def page(records) -> str:
    return render(records, suite_text="name: smoke\n")


def test_summary_is_mean_and_spread_over_seeds(records):
    summary = aggregate.summarize(records)
    row = summary[(summary.strategy == "full") & (summary.metric == "train.tokens_per_s")].iloc[0]
    values = [r.metrics["train.tokens_per_s"].value for r in records if r.label == "full"]
    assert row["n"] == 3 and row["mean"] == pytest.approx(sum(values) / 3)
    assert row["std"] > 0 and row["unit"] == "tokens/s" and bool(row["higher_is_better"])
    lora = summary[(summary.strategy == "lora") & (summary.metric == "train.tokens_per_s")].iloc[0]
    assert lora["n"] == 2 and lora["runs"] == 3 and "planted" in lora["reason"]  # the missing one is not a 0


def test_answers_pick_winners_by_direction(records):
    found = {a.question: a for a in aggregate.answers(records)}
    assert found["Most accurate"].winner == "full" and found["Most accurate"].metric == "accuracy.cipher"
    assert found["Least forgetting"].winner == "lora"  # forgetting is "after minus before": higher is better
    assert found["Smallest to store"].winner == "lora" and found["Smallest to store"].beyond_noise is True
    assert found["Lowest latency"].metric == "latency.ttft_ms.p50" and found["Lowest latency"].winner == "full"
    assert found["Least memory (training peak)"].metric == "memory.train.host_peak_mib"  # CUDA one is all missing
    assert "Best aligned" not in found  # no align.* metric in these records: the question is not asked


def test_too_few_seeds_are_not_called_beyond_noise():
    """Which strategy wins is the data's choice, so the test is two-sided: 3 vs 3 seeds reach p = 0.1 at
    best (every split enumerated), 4 vs 4 reach 2/70."""
    for seeds in ((0,), (0, 1), (0, 1, 2)):
        answer = {a.question: a for a in aggregate.answers(make_set(seeds=seeds))}["Most accurate"]
        assert answer.beyond_noise is None and "too few to tell at two-sided" in answer.note, answer
    found = {a.question: a for a in aggregate.answers(make_set(seeds=(0, 1, 2, 3)))}
    four = found["Most accurate"]
    assert four.p_value == pytest.approx(2 / 70) and "permutation test over seeds, 4 vs 4 seeds, two-sided" in four.note
    assert four.beyond_noise is True and "quality differences (Benjamini-Hochberg)" in four.note


def test_a_size_that_never_varies_is_exact():
    """Storage is the same on every seed (real records: 356,936 and 80,001 bytes on each of 3): nothing to
    test, so 3 seeds say beyond noise; a measurement that varies says unknown at 3."""
    found = {a.question: a for a in aggregate.answers(make_set())}
    store = found["Smallest to store"]
    assert store.beyond_noise is True and store.p_value is None and "no seed noise, exact" in store.note
    assert found["Fastest to train"].beyond_noise is None  # tokens/s vary from seed to seed


def test_seeds_both_strategies_ran_are_paired():
    """Seed k sets the data order (and the moment on the machine) of both strategies' runs: where each seed
    moves both alike, the per-seed differences tell what the runs pooled cannot. Six seeds are the
    fewest a two-sided sign-flip test can decide at 0.05 (2/64); a contaminated run is left out, as
    bench compare leaves it out, and with it its seed's pair."""
    shift = {0: 0.7, 1: 1.3, 2: 0.9, 3: 1.2, 4: 0.8, 5: 1.1, 6: 1.0}  # per seed, shared by both strategies
    records = [
        make_record(label, seed, values={"train.tokens_per_s": 1000 * shift[seed] * (1.03 if label == "full" else 1)})
        for label in ("full", "lora")
        for seed in range(6)
    ]
    fastest = {a.question: a for a in aggregate.answers(records)}["Fastest to train"]
    assert "paired by seed (6 seeds), two-sided" in fastest.note and fastest.p_value == pytest.approx(2 / 64)
    unpaired = stats.seed_test([(k, r.metrics["train.tokens_per_s"].value) for k, r in enumerate(records[:6])],
                               [(k + 6, r.metrics["train.tokens_per_s"].value) for k, r in enumerate(records[6:])],
                               REPORT_ALPHA)  # fmt: skip
    assert "6 vs 6 seeds" in unpaired[1] and unpaired[0] > 0.5  # pooled, the seeds' spread hides 3%
    seventh = [
        make_record("full", 6, values={"train.tokens_per_s": 1030.0}),
        make_record("lora", 6, values={"train.tokens_per_s": 700.0}, contaminated="train: other processes used 1 core"),
    ]
    found = {a.question: a for a in aggregate.answers([*records, *seventh])}["Fastest to train"]
    assert "paired by seed (6 seeds)" in found.note and "(1 run with contaminated timing left out)" in found.note
    assert found.p_value == pytest.approx(2 / 64)


def test_equal_strategies_are_called_different_at_most_alpha_of_the_time():
    """An A/A of the answers' seed-level test: two strategies drawn from one distribution, 5 seeds each,
    the better mean named the winner. The old test, one-sided in the direction the means happened to
    point, called them different twice as often as its level (about 10% here)."""
    rng = np.random.default_rng(7)
    draws, rates = 1000, {}
    for two_sided in (True, False):
        called = 0
        for _ in range(draws):
            first, second = sorted((list(rng.normal(100, 5, 5)) for _ in range(2)), key=np.mean, reverse=True)
            called += bool(stats.differs(first, second, REPORT_ALPHA, two_sided=two_sided)[0])
        rates[two_sided] = called / draws
    error = 3 * (REPORT_ALPHA * (1 - REPORT_ALPHA) / draws) ** 0.5
    assert rates[True] <= REPORT_ALPHA + error and rates[False] > 2 * REPORT_ALPHA - error, rates


def test_page_has_table_charts_and_provenance(page):
    assert 'id="results-table"' in page and 'id="answers"' in page
    for chart_id in CHART_IDS:
        assert f'id="chart-{chart_id}"' in page
    assert "abc1234" in page and "peft 0.21.2" in page and "name: smoke" in page
    assert "x86_64-2c-cpu" in page and "steps=60" in page


def test_failed_runs_and_missing_values_are_shown_not_hidden(page):
    problems = page[page.index('id="problems"') : page.index('id="charts"')]
    assert "planted out of memory" in problems and "failed" in problems
    assert "planted: not measured in this run" in page  # partial: 2 of 3 runs measured, reason on hover
    unmeasured = page[page.index("Not measured on any run") : page.index('id="problems"')]
    assert "memory.train.cuda_allocated_peak_mib" in unmeasured and "no CUDA device" in unmeasured


def test_missing_value_never_rendered_as_zero():
    records = make_set(labels=("lora",), values={"storage.bytes": None}) + make_set(labels=("full",))
    page = render(records)
    row = re.search(r"<b>lora</b>.*?</tr>", page, re.S).group(0)
    assert 'class="num missing"' in row and "planted: not measured" in row


def test_page_is_self_contained(page):
    assert not re.search(r'(src|href)=["\']?(https?:)?//', page)
    assert "<script" not in page and "@import" not in page


def test_pareto_front():
    points = [("a", 100.0, 0.9), ("b", 50.0, 0.5), ("c", 120.0, 0.6), ("d", 50.0, 0.4)]
    assert charts.pareto_front(points, x_lower_better=True, y_higher_better=True) == ["a", "b"]


def test_report_includes_comparison_section(records, tmp_path):
    candidate = make_set(scale={"train.tokens_per_s": 0.7})
    out = write_report(candidate, tmp_path / "c.html", comparison=compare_records(make_set(), candidate))
    page = out.read_text()
    section = page[page.index('id="comparison"') : page.index('id="environment"')]
    assert "train.tokens_per_s" in section and "worse" in section and "Regression" in section


def test_cli_report_from_results_folder(tmp_path):
    folder = store(make_set(), tmp_path / "results")
    out = tmp_path / "reports" / "smoke.html"
    run = subprocess.run(
        [sys.executable, "-m", "bench.cli", "report", str(folder.parent), "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert out.exists() and 'id="results-table"' in out.read_text()


def test_rendering_never_imports_torch(tmp_path):
    folder = store(make_set(), tmp_path / "results")
    code = (
        "import sys\n"
        "from bench.api import report, compare\n"
        f"report({str(folder)!r}, {str(tmp_path / 'r.html')!r})\n"
        f"compare({str(folder)!r}, {str(folder)!r}, html_out={str(tmp_path / 'c.html')!r})\n"
        "import bench.cli.main\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'peft', 'trl') if m in sys.modules)\n"
        "print('heavy:', heavy)\n"
        "raise SystemExit(1 if heavy else 0)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "heavy: []" in run.stdout and (tmp_path / "r.html").exists() and (tmp_path / "c.html").exists()


def test_number_format():
    assert [scales.fmt(v) for v in (355912.0, 2000.4, 650.5, 0.00379, -0.0, 2.5e6)] == [
        "356k",
        "2,000",
        "650",
        "0.00379",
        "0",
        "2.5M",
    ]
    assert scales.nice_ticks(0.5, 0.708)[-1] >= 0.708  # the axis covers every point


def test_bench_run_renders_the_report_at_the_end(tmp_path, monkeypatch):
    import types

    import bench.api
    import bench.cli.main
    import bench.cli.run
    from bench.execute import ExecutionReport

    suite_file = tmp_path / "tiny.yaml"
    suite_file.write_text("name: smoke  # the suite file is embedded in the report\n")
    monkeypatch.setattr(bench.cli.run, "load", lambda path: types.SimpleNamespace(name="smoke"))
    monkeypatch.setattr(bench.cli.run, "check_data", lambda suite, source: None)  # no data files in a stand-in suite
    monkeypatch.setattr(bench.api, "run_suite", lambda *a, **k: ExecutionReport(results=make_set(), executed=6))
    reports = tmp_path / "reports"  # by default beside the results folder
    args = ["run", str(suite_file), "--results", str(tmp_path / "results"), "--quiet"]
    assert bench.cli.main.main(args) == 0
    page = (reports / "smoke.html").read_text()
    assert 'id="results-table"' in page and "the suite file is embedded" in page
    (reports / "smoke.html").unlink()
    assert bench.cli.main.main([*args, "--no-report"]) == 0
    assert not (reports / "smoke.html").exists()


GPU_MEMORY = ROOT / "results" / "smollm2-gpu-memory"


def test_memory_section_stacks_the_components_and_shows_the_estimate_error():
    """The committed H200 records: one stacked bar per strategy, the estimate beside each, and the
    error the record holds (never recomputed differently by the report)."""
    from bench.records.store import load_records

    records = list(load_records(GPU_MEMORY))
    page = render(records)
    svg = re.search(r'<svg id="chart-memory-components"[^>]*>(.*?)</svg>', page, re.S).group(1)
    assert svg.count("<rect") >= 6 * 3 and svg.count("<path") == 6  # >= 3 parts per bar; 6 estimates
    table = re.search(r'<table class="metrics" id="memory-table">(.*?)</table>', page, re.S).group(1)
    for record in records:
        error = record.memory["estimate_error_percent"]
        assert f"{error:+.1f}%" in table
    assert "nvml process" in table and "cuda allocated peak" in table


def test_recommendation_section_answers_for_common_gpu_sizes():
    from bench.records.store import load_records

    page = render(list(load_records(GPU_MEMORY)))
    table = re.search(r'<table class="metrics" id="recommend-table">(.*?)</table>', page, re.S).group(1)
    rows = re.findall(r"<tr><td class=\"num\">(\d+) GiB</td>\s*<td>(.*?)</td>", table, re.S)
    assert [size for size, _ in rows] == ["8", "24", "80"]
    assert "none" in rows[0][1]  # nothing trains in 8 GiB at batch 32 x 457 tokens
    assert "prompt" in rows[1][1] and "<b>full</b>: needs 23.8 GiB &gt; 8 GiB" in table


def test_findings_are_shown_first_and_escaped(records):
    page = render(records, notes="LoRA <b>learned</b> less.\n\nSecond paragraph.")
    findings = re.search(r'<section id="findings">(.*?)</section>', page, re.S).group(1)
    assert findings.count("<p>") == 2 and "LoRA &lt;b&gt;learned&lt;/b&gt; less." in findings
    assert page.index('id="findings"') < page.index('id="answer"')


def test_answers_cut_off_at_max_new_tokens_are_said_above_the_answers():
    records = make_set()
    for record, after in zip(records, (12, 3, 0, 0, 0, 0)):
        record.model["tasks"] = {
            "gsm8k": {
                "eval_items": 16,
                "generation": {"max_new_tokens": 256, "reached_limit": {"before": 2, "after": after}},
            },
            TASK: {"eval_items": 100},
        }
    lines = html.unfinished_answers(records)
    assert lines == [
        "gsm8k: up to 12 of 16 answers of a run reached max_new_tokens (256) unfinished, and 2 of the base model's;"
        " they are scored as they stand (raise the task's generation.max_new_tokens)"
    ]
    assert 'id="unfinished-answers"' in html.render(records)
    for record in records:
        record.model["tasks"]["gsm8k"]["generation"]["reached_limit"] = {"before": 0, "after": 0}
    assert html.unfinished_answers(records) == [] and 'id="unfinished-answers"' not in html.render(records)


def test_a_planned_run_without_a_record_is_said_not_every_run_finished(tmp_path):
    """audit user19: the strategies report said "None: every run finished" while its suite's LoHa never ran
    (no record, so nothing to show as failed)."""
    from bench.api import report
    from bench.plan import plan
    from bench.suite import load_suite

    planned = plan(load_suite(Path("suites/smoke.yaml")))
    *kept, left = planned
    store([make_record(spec.label, spec.seed).model_copy(update={"run_id": spec.run_id}) for spec in kept], tmp_path)
    page = report("suites/smoke.yaml", tmp_path / "r.html", results_dir=tmp_path).read_text()
    said = re.search(r'<p class="warning" id="not-run">(.*?)</p>', page, re.S).group(1)
    assert said.startswith("⚠ 1 run of the suite's plan\n  has no record") and f"{left.label} seed {left.seed}." in said
    assert "every run finished" not in page
    store([make_record(left.label, left.seed).model_copy(update={"run_id": left.run_id})], tmp_path)
    whole = report("suites/smoke.yaml", tmp_path / "whole.html", results_dir=tmp_path).read_text()
    assert 'id="not-run"' not in whole and "None: every run finished." in whole
