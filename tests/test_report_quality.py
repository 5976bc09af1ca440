"""The report decides "beyond noise" over all its quality differences at once (Benjamini-Hochberg; the
difference table's and the answer table's, bench/report/family.py), as bench compare decides its gating
tests: one interval that excludes 0 among several is not enough, and the answer line and the table agree."""

from __future__ import annotations

import numpy as np
import pytest

from bench.analysis.items import item_record, metric_difference, metric_interval
from bench.analysis.variance import Interval
from bench.report import aggregate
from bench.report.family import REPORT_ALPHA, judge
from bench.report.front import one_line_answer
from bench.report.html import render
from bench.report.quality import quality_section
from tests.synthetic_records import make_record
from tests.test_paired import _with_items


def test_one_difference_decides_alone_as_its_interval_does():
    """One test: q = p, so the column says what the 95% interval says."""
    for mean in (0.02, 0.05):
        estimate = Interval(mean, 0.02, items=100, seeds=3, df=10)
        [verdict] = judge([estimate.p_value])
        assert verdict.beyond == estimate.beyond_noise and verdict.why is None


def test_a_difference_beyond_noise_alone_is_not_among_six():
    """The sized SmolLM2 comparison's case: DoRA - full on SST-2 at p = 0.025, five others far from it."""
    verdicts = judge([0.025, 0.3, 0.5, 0.6, 0.8, 0.9])
    assert not any(verdict.beyond for verdict in verdicts)
    assert verdicts[0].why == "p=0.025 alone, but q=0.150 after Benjamini-Hochberg over 6"
    assert all(verdict.why is None for verdict in verdicts[1:])  # not beyond alone either: nothing to explain


def test_strong_differences_stand_together():
    verdicts = judge([1e-6, 0.01, 0.04, 0.7])  # q: 4e-6, 0.02, 0.053, 0.7
    assert [verdict.beyond for verdict in verdicts] == [True, True, False, False]
    assert verdicts[2].why.startswith("p=0.040 alone, but q=0.053")  # 0.0533 > REPORT_ALPHA
    assert REPORT_ALPHA == aggregate.REPORT_ALPHA == 0.05


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
    [verdict] = judge([p])
    assert verdict.beyond is (p <= REPORT_ALPHA)


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
    before = "0000011111" * 3
    runs = [_with_items("full", 0, "1111111111" * 3, before), _with_items("lora", 0, "0000111111" * 3, before)]
    most = next(a for a in aggregate.answers(runs, aggregate.summarize(runs)) if a.metric == "accuracy.cipher")
    assert most.winner == "full" and most.beyond_noise is None
    assert "seed-to-seed variance is unknown" in most.note


def _run(label: str, seed: int, accuracy: float, rng: np.random.Generator, n: int = 60):
    """A run that learned cipher to `accuracy` (its metric agrees) and kept 90% of what it knew of next-letter."""
    before = "01" * (n // 2)
    after = "".join("1" if x else "0" for x in rng.random(n) < accuracy)
    kept = "".join(b if rng.random() < 0.9 else "0" for b in before)
    record = make_record(label, seed)
    metrics = dict(record.metrics)
    metrics["accuracy.cipher"] = metrics["accuracy.cipher"].model_copy(update={"value": after.count("1") / n})
    items = {
        "cipher": item_record([f"cipher/{i}" for i in range(n)], "0" * n, after),
        "next-letter": item_record([f"next-letter/{i}" for i in range(n)], before, kept),
    }
    return record.model_copy(update={"items": items, "metrics": metrics})


def _full_and_lora(data_seed: int) -> list:
    rng = np.random.default_rng(data_seed)
    return [*(_run("full", k, 0.8, rng) for k in (0, 1, 2)), *(_run("lora", k, 0.7, rng) for k in (0, 1, 2))]


def test_the_answer_line_and_the_table_decide_one_family():
    """The quickstart's case: LoRA 17 points under full at p = 0.038 alone, forgetting alike (p = 0.53). Alone
    the answer said "beyond noise" while the table, over its two differences, said no (q = 0.075); one family
    now, so both say no, and both say why."""
    runs = _full_and_lora(2)
    alone = metric_difference(runs[3:], runs[:3], "accuracy.cipher")
    assert alone.p_value <= REPORT_ALPHA < 2 * alone.p_value  # the case: beyond alone, not over two
    most = next(a for a in aggregate.answers(runs) if a.metric == "accuracy.cipher")
    assert (most.winner, most.runner_up) == ("full", "lora")
    assert most.beyond_noise is False and "over the report's 2 quality differences" in most.note
    [lora] = quality_section(runs)["comparisons"]
    cell = lora["cells"]["accuracy.cipher"]
    assert cell["beyond"] is False and cell["why"].startswith(f"p={alone.p_value:.3f} alone, but q=")
    assert one_line_answer(runs).endswith("within noise")


def test_costs_are_a_family_apart_from_quality():
    """Six seeds a side: the costs are tested (paired by seed) and sure, and they are not in the quality
    family, where Benjamini-Hochberg would let them lower the bar for the accuracy difference."""
    rng = np.random.default_rng(2)
    runs = [*(_run("full", k, 0.8, rng) for k in range(6)), *(_run("lora", k, 0.75, rng) for k in range(6))]
    found, family = aggregate.answers_and_family(runs)
    costs = [a for a in found if a.p_value is not None and not a.metric.startswith(("accuracy", "forgetting"))]
    assert {a.question for a in costs} >= {"Fastest to train", "Lowest latency"}
    assert all("over the report's" in a.note and "cost differences" in a.note for a in costs)
    assert family.tests == 2  # the table's two quality differences, which the answers share


@pytest.mark.parametrize("data_seed", range(6))
def test_every_answer_tested_by_item_agrees_with_the_table(data_seed):
    runs = _full_and_lora(data_seed)
    section = quality_section(runs)
    table = {metric: cell["beyond"] for metric, cell in section["comparisons"][0]["cells"].items()}
    tested = [a for a in aggregate.answers(runs) if a.by_item and a.margin]
    assert {a.metric for a in tested} == {"accuracy.cipher", "forgetting.mean"}
    for item in tested:
        assert item.beyond_noise is table[item.metric], (item.metric, item.note)


def test_intervals_stay_within_what_the_metric_can_be():
    """The instruct-pc report's case: DPO 92 points under LoRA on 12 items printed [-103.6, -79.7]; an
    accuracy difference cannot pass -100 points, nor an accuracy 100%."""
    before = "0" * 12
    lora = [_with_items("lora", 0, "1" * 12, before)]
    worse = [_with_items("full", 0, "1" + "0" * 11, before)]  # 92 points under lora
    drop = metric_difference(worse, lora, "accuracy.cipher")
    assert drop.mean == pytest.approx(-11 / 12)
    assert drop.mean - 2 * drop.se < -1  # the t interval passes the limit...
    assert drop.low == -1.0 and drop.high < 0 and drop.beyond_noise  # ...the stated one stops there
    nearly_all = metric_interval([_with_items("lora", 0, "1" * 11 + "0", before)], "accuracy.cipher")
    assert nearly_all.high == 1.0 and nearly_all.low < nearly_all.mean < 1.0
    [row] = [c for c in quality_section([*lora, *worse])["comparisons"]]
    assert row["cells"]["accuracy.cipher"]["interval"].startswith("-100.0 to ")


def test_the_family_reads_a_difference_in_either_order():
    """The table's cells are the intervals the family decided on: strategy - reference, whichever order the
    pair was first tested in."""
    runs = _full_and_lora(2)
    family = aggregate.answers_and_family(runs)[1]
    lora_minus_full = metric_difference(runs[3:], runs[:3], "accuracy.cipher")
    for strategy, against, sign in (("lora", "full", 1), ("full", "lora", -1)):
        found = family.difference(strategy, against, "accuracy.cipher")
        assert found.mean == pytest.approx(sign * lora_minus_full.mean)
        assert (found.low, found.high) == pytest.approx(
            (lora_minus_full.low, lora_minus_full.high) if sign == 1 else (-lora_minus_full.high, -lora_minus_full.low)
        )
    assert family.difference("lora", "nobody", "accuracy.cipher") is None
