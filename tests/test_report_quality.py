"""The report's table of strategy differences decides "beyond noise" over the whole table at once
(Benjamini-Hochberg), as bench compare decides its gating tests: one interval that excludes 0 among
several is not enough."""

from __future__ import annotations

import pytest

from bench.analysis.items import Interval
from bench.report.aggregate import REPORT_ALPHA
from bench.report.html import render
from bench.report.quality import decide_together, quality_section
from tests.test_paired import _with_items


def _cell() -> dict:
    return {"beyond": None}


def test_one_difference_decides_alone_as_its_interval_does():
    """One test: q = p, so the column says what the 95% interval says."""
    for mean in (0.02, 0.05):
        estimate = Interval(mean, 0.02, items=100, seeds=3, df=10)
        cell = _cell()
        decide_together([(cell, estimate.p_value)])
        assert cell["beyond"] == estimate.beyond_noise and "why" not in cell


def test_a_difference_beyond_noise_alone_is_not_among_six():
    """The sized SmolLM2 comparison's case: DoRA - full on SST-2 at p = 0.025, five others far from it."""
    cells = [_cell() for _ in range(6)]
    decide_together(list(zip(cells, [0.025, 0.3, 0.5, 0.6, 0.8, 0.9])))
    assert not any(cell["beyond"] for cell in cells)
    assert cells[0]["why"] == "p=0.025 alone, but q=0.150 after Benjamini-Hochberg over 6"
    assert all("why" not in cell for cell in cells[1:])  # not beyond alone either: nothing to explain


def test_strong_differences_stand_together():
    cells = [_cell() for _ in range(4)]
    decide_together(list(zip(cells, [1e-6, 0.01, 0.04, 0.7])))  # q: 4e-6, 0.02, 0.053, 0.7
    assert [cell["beyond"] for cell in cells] == [True, True, False, False]
    assert cells[2]["why"].startswith("p=0.040 alone, but q=0.053")  # 0.0533 > REPORT_ALPHA
    assert REPORT_ALPHA == 0.05


def test_the_report_table_counts_its_tests_and_says_how_it_decides():
    """full, lora 40 points worse, ia3 equal: two differences in the table; lora's stands after BH."""
    before = "0000011111" * 3
    runs = [
        *(_with_items("full", s, "1111111111" * 3, before) for s in (0, 1, 2)),
        *(_with_items("lora", s, "0000111111" * 3, before) for s in (0, 1, 2)),
    ]
    runs += [r.model_copy(update={"label": "ia3", "strategy": "ia3", "run_id": f"ia3-{r.seed}"}) for r in runs[:3]]
    section = quality_section(runs)
    assert section is not None and section["tests"] == 2
    verdicts = {c["strategy"]: c["cells"]["accuracy.cipher"] for c in section["comparisons"]}
    assert verdicts["lora"]["beyond"] is True and verdicts["lora"]["text"] == "-40.0"
    assert verdicts[next(s for s in verdicts if s != "lora")]["beyond"] is False
    html = render(runs)
    assert "2 differences at once (Benjamini-Hochberg" in html


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_extreme_p_values_decide(p):
    cell = _cell()
    decide_together([(cell, p)])
    assert cell["beyond"] is (p <= REPORT_ALPHA)


def test_one_seed_on_a_side_cannot_tell_as_bench_compare_says():
    """40 points apart on 30 items is far beyond item noise, but one seed says nothing of seed noise."""
    before = "0000011111" * 3
    runs = [_with_items("full", 0, "1111111111" * 3, before), _with_items("lora", 0, "0000111111" * 3, before)]
    section = quality_section(runs)
    [lora] = section["comparisons"]
    cell = lora["cells"]["accuracy.cipher"]
    assert cell["beyond"] is None and "seed-to-seed variance is unknown" in cell["why"]
    assert section["tests"] == 0
    assert "cannot tell" in render(runs) and "With one seed on a side, none of them can be called" in render(runs)


def test_the_answer_line_with_one_seed_says_noise_unknown_too():
    """The report's one-line answer holds the same rule as its table and bench compare."""
    from bench.report import aggregate

    before = "0000011111" * 3
    runs = [_with_items("full", 0, "1111111111" * 3, before), _with_items("lora", 0, "0000111111" * 3, before)]
    most = next(a for a in aggregate.answers(runs, aggregate.summarize(runs)) if a.metric == "accuracy.cipher")
    assert most.winner == "full" and most.beyond_noise is None
    assert "seed-to-seed variance is unknown" in most.note
