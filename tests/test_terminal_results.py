"""`bench run` ends with its answer on screen (issue 25, item 7): per strategy the learned task's
accuracy, mean forgetting, tokens/s and training memory with their 95% intervals over seeds, then the
report's one-line answer."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from bench.execute import ExecutionReport
from bench.report.terminal import figure, interval, print_results, results_lines, truncation_notes
from tests.conftest import REPO
from tests.synthetic_records import make_record, make_set


def test_interval_is_the_t_interval_over_seeds():
    mean, half = interval([0.6, 0.7, 0.8])
    assert mean == pytest.approx(0.7) and half == pytest.approx(4.302653 * 0.1 / 3**0.5, rel=1e-6)
    assert interval([0.5]) == (0.5, None)
    assert figure([0.6, 0.7, 0.8], "acc") == "0.700 ± 0.248"
    assert figure([2000.0, 2100.0], "tokens/s") == "2050 ± 635 tokens/s"
    assert figure([0.5], "acc") == "0.500" and figure([], "MiB") == "-"


def test_an_interval_past_what_the_metric_can_reach_shows_its_reachable_part():
    """2 seeds: t = 12.7, so an accuracy of 0.5 and 0.625 read `0.562 ± 2.382` (from -1.8 to 2.9)."""
    assert figure([0.5, 0.625], "acc", "accuracy.sums") == "0.562 [0.000 to 1.000]"
    assert figure([10.0, 400.0], "tokens/s", "train.tokens_per_s") == "205 [0 to 2683] tokens/s"
    assert figure([-0.1, 0.05], "acc", "forgetting.mean") == "-0.025 ± 0.953"  # within [-1, 1]


def render(records: list) -> tuple[str, str]:
    table, answer = results_lines(records)
    out = Console(width=200, record=True)
    out.print(table)
    return out.export_text(), answer


def test_table_has_a_row_per_strategy_and_the_four_figures():
    seeds = (0, 1, 2)
    planted = {"full": [0.6, 0.7, 0.8], "lora": [0.5, 0.5, 0.5]}
    records = [
        make_record(label, seed, values={"accuracy.cipher": planted[label][seed]})
        for label in planted
        for seed in seeds
    ]
    text, answer = render(records)
    full = next(line for line in text.splitlines() if "│ full" in line)
    assert "0.700 ± 0.248" in full and "│     3 │" in full
    assert " MiB" in full and "tokens/s" in full  # memory (host peak: no CUDA) and throughput
    lora = next(line for line in text.splitlines() if "│ lora" in line)
    assert "0.500 ± 0.000" in lora
    assert "accuracy.cipher, forgetting.mean, train.tokens_per_s, memory.train.host_peak_mib" in text
    assert answer.startswith("Most accurate: full 0.7 vs lora 0.5")


def test_failed_runs_are_counted_and_a_missing_metric_is_a_dash():
    full = make_record("full", 0)
    lora = make_record("lora", 0, drop=("forgetting.mean",))
    text, _ = render([full, lora, make_record("lora", 1, status="failed", reason="boom")])
    row = next(line for line in text.splitlines() if "│ lora" in line).split("│")
    assert row[1].strip() == "lora (1 not ok)" and row[2].strip() == "1"
    assert row[4].strip() == "-" and row[3].strip() != "-"  # forgetting not measured; accuracy was


def test_bench_run_ends_with_the_table_and_the_answer(monkeypatch, capsys):
    import bench.api
    from bench.cli.main import main

    records = make_set()
    monkeypatch.setattr(bench.api, "run_suite", lambda *a, **k: ExecutionReport(records, executed=len(records)))
    code = main(["run", str(REPO / "suites" / "smoke.yaml"), "--no-report", "--results", str(Path("/nonexistent"))])
    out = capsys.readouterr().out
    assert code == 0
    assert out.index("results (mean ± 95% interval over seeds;") < out.index("answer: Most accurate: full")
    assert out.rstrip().splitlines()[-1].startswith("answer: Most accurate: full")


def test_rows_cut_at_seq_len_are_said_once_per_strategy():
    cut = {"seq_len": 6, "rows": 18, "truncated": 18, "dropped": 4, "longest": 7}
    runs = [make_record("full", seed) for seed in (0, 1)] + [make_record("lora", 0)]
    runs = [r.model_copy(update={"budget": {**r.budget, "truncation": cut}}) if r.label == "full" else r for r in runs]
    assert truncation_notes(runs) == [
        "full: 18 of 18 training rows longer than seq_len 6 (the longest 7 tokens) were truncated, "
        "4 dropped: nothing left to learn in them"
    ]


def test_a_share_of_any_unit_is_shown_without_its_unit():
    """An alignment rate (unit `rate`) read `0.550 [0.000 to 1.000] rate`: every share unit is bare, as accuracy."""
    assert figure([0.5, 0.6], "rate") == figure([0.5, 0.6], "acc") == "0.550 [0.000 to 1.000]"
    assert figure([2000.0, 2100.0], "tokens/s").endswith("tokens/s")


def test_the_answer_of_random_weights_says_its_accuracy_means_nothing():
    """`model: {config: ...}` ranked accuracy on the console with no word that the weights were random."""
    from bench.report.terminal import random_weights

    runs = [make_record(label, 0) for label in ("full", "lora")]
    assert not random_weights(runs)
    configured = [r.model_copy(update={"spec": {**r.spec, "model": {"config": "shapes/llama"}}}) for r in runs]
    assert random_weights(configured)
    console = Console(record=True, width=200)
    print_results(configured, console, Console(record=True))
    assert "random weights, model.config: accuracy here says nothing" in console.export_text()


def test_a_preference_trainers_rows_are_said_with_its_own_rule():
    """RLHF's reward model drops a pair whole (nothing cut): 'were truncated ... nothing left to learn' was false."""
    rule = "chosen or rejected longer than seq_len (RewardTrainer cuts nothing, it drops the pair)"
    cut = {"seq_len": 32, "rows": 60, "truncated": 28, "dropped": 28, "longest": 55, "rule": rule}
    run = make_record("lora", 0).model_copy(update={"label": "rlhf"})
    run = run.model_copy(update={"budget": {**run.budget, "truncation": cut}})
    assert truncation_notes([run]) == [
        f"rlhf: 28 of 60 training rows longer than seq_len 32 (the longest 55 tokens); 28 dropped: {rule}"
    ]
