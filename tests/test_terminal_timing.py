"""The terminal table's timing columns rank as the report's answer does: over the runs whose timing was not
contaminated, saying what they left out (bench/report/terminal.py)."""

from __future__ import annotations

from rich.console import Console

from bench.report.terminal import results_lines
from tests.synthetic_records import make_record

BUSY = "others_cpu 1.20 > 0.25"
TOKENS = "train.tokens_per_s"


def _row(records: list, label: str) -> list[str]:
    out = Console(width=250, record=True)
    out.print(results_lines(records)[0])
    text = out.export_text()
    return [cell.strip() for cell in next(line for line in text.splitlines() if f"│ {label}" in line).split("│")]


def test_a_contaminated_run_is_left_out_of_tokens_per_s_and_said():
    lora = [make_record("lora", 0, values={TOKENS: 9000.0}, contaminated=BUSY)]
    lora += [make_record("lora", seed, values={TOKENS: value}) for seed, value in ((1, 1490.0), (2, 1510.0))]
    full = [make_record("full", seed, values={TOKENS: 2000.0 + seed}) for seed in range(3)]
    row = _row(lora + full, "lora")
    assert row[5].startswith("1500 ± 127 tokens/s") and "(1 of 3 contaminated, left out)" in row[5]
    assert row[2] == "3"  # three seeds ran; the cell says which of them it counts
    assert "(" not in _row(lora + full, "full")[5]


def test_a_strategy_without_a_clean_run_shows_a_dash_and_why():
    lora = [make_record("lora", seed, contaminated=BUSY) for seed in range(2)]
    full = [make_record("full", seed) for seed in range(2)]
    assert _row(lora + full, "lora")[5] == "- (all 2 runs contaminated)"
    assert "timing over the runs whose timing was not contaminated" in str(results_lines(lora + full)[0].caption)
