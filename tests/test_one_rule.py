"""One rule each, said the same everywhere: which runs' timing counts (bench.analysis.timing.clean_timing_runs),
how many runs recorded no timing quality (timing_unrecorded), how a memory figure is named
(bench.recommend.formatting.memory_text), and that a memory difference within its figure's noise claims no "less
memory" in dominance (bench.recommend.constraints.memory_differs)."""

from __future__ import annotations

import re

import pytest

from bench.analysis.timing import clean_timing_runs, timing_counts, timing_unrecorded
from bench.recommend import candidates_from, dominance, recommend, render_text
from bench.recommend.figures import MEMORY_NAMES, MEMORY_SOURCES, TENSOR_SOURCES
from bench.recommend.formatting import memory_text, plan_text, record_notes
from bench.recommend.noise import _runs_of
from bench.records.results import Metric, RunResult
from bench.report import aggregate, terminal
from tests.synthetic_records import TASK, make_record, make_set

TOKENS = "train.tokens_per_s"
BUSY = "another process"
GIB, MIB = 2**30, 2**20
HOST_RSS = "memory.train.host_peak_mib"


def untimed(record: RunResult) -> RunResult:
    """The record as one that recorded no timing quality (as results/smollm2-cpu's)."""
    return record.model_copy(update={"timing_quality": None})


def mixed() -> list[RunResult]:
    """full: seed 0 contaminated; lora: seed 1 contaminated, seed 2 untimed, seed 3 untimed without tokens/s."""
    full = make_set(labels=("full",))
    full[0] = make_record("full", 0, contaminated=BUSY)
    lora = [make_record("lora", 0), make_record("lora", 1, contaminated=BUSY), untimed(make_record("lora", 2))]
    lora.append(untimed(make_record("lora", 3, values={TOKENS: None})))
    return full + lora


def by_label(records: list[RunResult], label: str) -> list[RunResult]:
    return [record for record in records if record.label == label]


def test_clean_timing_runs_drops_only_the_contaminated():
    records = mixed()
    assert [(r.label, r.seed) for r in clean_timing_runs(records)] == [
        ("full", 1),
        ("full", 2),
        ("lora", 0),
        ("lora", 2),  # no timing quality: counted, unchecked
        ("lora", 3),
    ]
    assert [timing_counts(r) for r in records] == [r in clean_timing_runs(records) for r in records]


def test_report_terminal_and_recommend_count_the_same_clean_runs():
    records = mixed()
    summary = aggregate.summarize(records, clean_timing=True).set_index(["strategy", "metric"])
    candidates = {c.name: c for c in candidates_from(records)}
    runs = {label: by_label(records, label) for label in ("full", "lora")}
    for label in ("full", "lora"):
        clean = [r for r in clean_timing_runs(runs[label]) if r.value(TOKENS) is not None]
        assert int(summary.loc[(label, TOKENS), "n"]) == len(clean)
        assert len(terminal.clean_timing(runs[label], TOKENS)[0]) == len(clean)
        assert candidates[label].throughput.n == len(clean)
        assert [r.seed for r in _runs_of(candidates[label], "throughput", runs)] == [
            r.seed for r in clean_timing_runs(runs[label])
        ]
    fastest = {a.question: a for a in aggregate.answers(records)}["Fastest to train"]
    assert "2 runs with contaminated timing left out" in fastest.note


def test_report_and_recommend_count_the_same_runs_without_timing_quality():
    """lora seed 2 measured tokens/s without timing quality: both say 1 run; lora seed 3 measured none, so only
    the report's Timing quality section (every ok run) counts it; a failed run counts nowhere."""
    failed = make_record("full", 3, status="failed", reason="boom")
    records = [*mixed(), failed]
    assert timing_unrecorded(records, TOKENS) == 1 and timing_unrecorded(records, None) == 2
    fastest = {a.question: a for a in aggregate.answers(records)}["Fastest to train"]
    assert "timing quality not recorded for 1 run: contamination unknown" in fastest.note
    assert {a.timing_unrecorded for a in aggregate.answers(records)} == {2}
    notes = record_notes(candidates_from(records))
    assert any(note.startswith("timing quality not recorded for 1 run (lora)") for note in notes), notes


def planted(label: str, seed: int, memory_mib: float, metric: str = HOST_RSS, accuracy: float = 0.8) -> RunResult:
    """A run of `label` whose figures are all lora's but for its accuracy and training memory."""
    base = make_record("lora", seed, values={f"accuracy.{TASK}": accuracy})
    metrics = {**base.metrics, metric: Metric(value=memory_mib, unit="MiB", higher_is_better=False)}
    spec = {**base.spec, "strategy": label, "label": label}
    update = {"run_id": f"{label}-{seed}", "strategy": label, "label": label, "spec": spec, "metrics": metrics}
    return base.model_copy(update=update)


def pair(light: float, heavy: float, metric: str = HOST_RSS, heavy_accuracy: float = 0.8):
    records = [planted("light", s, light, metric) for s in (0, 1)]
    records += [planted("heavy", s, heavy, metric, heavy_accuracy) for s in (0, 1)]
    return recommend(records, 24 * GIB)


def test_one_name_for_each_memory_figure_everywhere():
    assert MEMORY_NAMES == {metric: short for metric, short, _ in MEMORY_SOURCES}
    rec = recommend([planted("lora", s, 0.94, TENSOR_SOURCES[0]) for s in (0, 1)], 1 * MIB)
    lora = rec.candidate("lora")
    said = "0.94 MiB tensors + 2 GiB reserve"
    assert plan_text(lora) == said and memory_text(lora) == "0.94 MiB tensors"
    assert rec.rejected["lora"] == f"needs 2049 MiB > 1 MiB ({said})"
    assert rec.reason.endswith(f"(smallest: lora, {said})")
    row = next(line for line in render_text(rec).splitlines() if line.startswith("lora "))
    assert "0.94 MiB tensors " in row and "(tensors)" not in row
    host = pair(600, 650)
    row = next(line for line in render_text(host).splitlines() if line.startswith("light "))
    assert memory_text(host.candidate("light")) == "600 MiB host RSS" and "600 MiB host RSS " in row
    assert re.search(r"at 600 MiB host RSS\.$", host.reason)


def test_649_vs_651_mib_of_host_rss_is_not_less_memory():
    rec = pair(649, 651)
    assert dominance(rec.candidate("light"), rec.candidate("heavy")) is None
    assert sorted(rec.pareto) == ["heavy", "light"] and not rec.dominated


def test_600_vs_650_mib_of_host_rss_is_less_memory():
    rec = pair(600, 650)
    assert dominance(rec.candidate("light"), rec.candidate("heavy")) == ["less memory"]
    assert rec.dominated == {"heavy": "dominated by light (less memory)"}


def test_any_difference_of_a_tensor_count_is_less_memory():
    rec = pair(649, 651, TENSOR_SOURCES[0])
    assert dominance(rec.candidate("light"), rec.candidate("heavy")) == ["less memory"]


def test_memory_within_noise_neither_claims_nor_blocks():
    """651 MiB against 649 MiB of host RSS is no more memory: the more accurate one dominates on accuracy alone."""
    rec = pair(649, 651, heavy_accuracy=0.9)
    assert dominance(rec.candidate("heavy"), rec.candidate("light")) == ["higher accuracy"]


@pytest.mark.parametrize(("light", "chosen"), [(649, "heavy"), (600, "light")])
def test_a_lighter_choice_needs_memory_beyond_the_noise_of_its_figure(light: float, chosen: str):
    """The heavier one is 0.5 points more accurate, within the 2-point tolerance: 600 vs 651 MiB of host RSS
    is lighter, 649 vs 651 is not (the choice said "less memory than heavy" of it before)."""
    accuracies = {"light": (0.80, 0.81, 0.82, 0.83), "heavy": (0.806, 0.814, 0.826, 0.834)}
    memory = {"light": light, "heavy": 651}
    records = [
        planted(name, s, memory[name], accuracy=a) for name, acc in accuracies.items() for s, a in enumerate(acc)
    ]
    rec = recommend(records, 24 * GIB)
    assert rec.choice == chosen and ("less memory than heavy" in rec.reason) == (chosen == "light")
