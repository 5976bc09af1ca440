"""The report's answers, table and charts hold hardware and timing apart as `bench compare` does (audit of
2026-12-07, user11): two CPU models behind one machine id were pooled; a GPU's speed was ranked against a
CPU's; the all-metrics table's star and the charts counted runs whose timing was contaminated; forgetting's
margin was given as a percentage of a value near 0; a folder that does not exist had "no records"."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.analysis.selection import comparable, keyed_records
from bench.cli.main import main
from bench.records.results import Hardware, RunResult
from bench.report import aggregate, html
from tests.synthetic_records import make_set, store

GPU = Hardware(cpu="AMD EPYC", cores=16, isa=["avx2"], gpus=["NVIDIA H200"], torch_threads=16)


def on(records: list[RunResult], machine: str | None = None, hardware: Hardware | None = None) -> list[RunResult]:
    """The records as run on another machine id and/or other hardware."""
    out = []
    for record in records:
        update = {"machine": machine or record.environment.machine}
        if hardware is not None:
            update |= {"hardware": hardware, "cpu": hardware.cpu}
        out.append(record.model_copy(update={"environment": record.environment.model_copy(update=update)}))
    return out


def test_two_cpu_models_behind_one_machine_id_pool_quality_and_split_timing() -> None:
    # CI runners of two CPU models under one machine id: seeds 0-1 on one, seed 2 on the other
    amd = [r for r in make_set(cpu="AMD EPYC") if r.seed < 2]
    intel = [r for r in make_set(cpu="Intel Xeon", scale={"train.tokens_per_s": 3.0}) if r.seed == 2]
    records = amd + intel
    assert sorted(keyed_records(records)) == ["full", "lora"]  # one strategy each: quality is one population
    assert len(comparable(records).records) == 6
    found = {item.question: item for item in aggregate.answers(records)}
    assert found["Most accurate"].winner == "full"
    fastest = sorted(q for q in found if q.startswith("Fastest to train"))
    assert fastest == [f"Fastest to train (on x86_64-2c-cpu ({r.environment.fingerprint}))" for r in (amd[0], intel[0])]
    on_intel = found[fastest[1]]
    assert on_intel.winner == "full" and on_intel.winner_mean > 5000  # seed 2's runs only, 3x faster
    page = html.render(records)
    assert "fingerprint <code>amd-epyc" in page and "fingerprint <code>intel-xeon" in page  # both named
    columns, _ = html.table_columns(aggregate.summarize(records, clean_timing=True), several_hardware=True)
    assert next(c for c in columns if c["name"] == "train.tokens_per_s")["best"] == []  # no star across hardware
    assert next(c for c in columns if c["name"] == "accuracy.cipher")["best"] == ["full"]


def test_a_failure_filed_by_the_driver_does_not_split_a_strategy_or_name_its_hardware() -> None:
    records = make_set(seeds=(0, 1))
    failed = records[0].model_copy(update={"seed": 2, "status": "failed", "reason": "timed out", "metrics": {}})
    driver = failed.environment.model_copy(update={"hardware": Hardware(cpu="Test CPU", cores=2, isa=["avx2"])})
    failed = failed.model_copy(update={"environment": driver})  # no torch threads: another fingerprint
    assert sorted(keyed_records([*records, failed])) == ["full", "lora"]
    assert html.render([*records, failed]).count("fingerprint <code>") == 1


def test_a_gpu_is_not_ranked_against_a_cpu_on_speed_or_measured_memory() -> None:
    cpu = make_set(labels=("full",))
    gpu = on(make_set(labels=("lora",), scale={"train.tokens_per_s": 50.0}), "x86_64-16c-1x-nvidia-h200", GPU)
    found = {item.question: item for item in aggregate.answers(cpu + gpu)}
    assert "Fastest to train" not in found
    on_gpu = found["Fastest to train (on x86_64-16c-1x-nvidia-h200)"]
    assert on_gpu.winner == "lora @ x86_64-16c-1x-nvidia-h200" and on_gpu.runner_up is None
    assert found["Fastest to train (on x86_64-2c-cpu)"].winner == "full @ x86_64-2c-cpu"
    assert {"Least memory (training peak) (on x86_64-2c-cpu)", "Lowest latency (on x86_64-2c-cpu)"} <= set(found)
    assert found["Most accurate"].runner_up is not None  # accuracy is still one question over both
    one_machine = {item.question for item in aggregate.answers(make_set())}
    assert "Fastest to train" in one_machine  # and one machine keeps the plain questions


def test_the_table_star_and_charts_leave_contaminated_timing_out() -> None:
    clean = make_set(labels=("full",), seeds=(0, 1))
    # lora's seed 0 looks fastest, but another process ran beside it: its timing is left out
    lora = make_set(labels=("lora",), seeds=(0, 1), scale={"train.tokens_per_s": 1.1})
    lora[0] = make_set(labels=("lora",), seeds=(0,), scale={"train.tokens_per_s": 4.0}, contaminated="another process")[
        0
    ]
    shown = aggregate.summarize(clean + lora, clean_timing=True)
    columns, _ = html.table_columns(shown)
    speed = next(c for c in columns if c["name"] == "train.tokens_per_s")
    assert speed["best"] == ["full"]  # lora's clean run (1.1 x 1,600) is slower than full's 2,000
    assert aggregate.cell(shown, "lora", "train.tokens_per_s")["n"] == 1
    assert "timing contaminated" in aggregate.cell(shown, "lora", "train.tokens_per_s")["reason"]
    raw = aggregate.summarize(clean + lora)
    assert html.table_columns(raw)[0][columns.index(speed)]["best"] == ["lora"]  # what the table said before
    assert aggregate.cell(shown, "lora", "accuracy.cipher")["n"] == 2  # quality keeps every run
    assert next(a for a in aggregate.answers(clean + lora) if a.question == "Fastest to train").winner == "full"


def test_forgetting_margins_are_points_not_a_share_of_a_value_near_zero() -> None:
    found = {a.question: a for a in aggregate.answers(make_set())}
    assert found["Least forgetting"].margin is not None and found["Least forgetting"].margin_relative is None
    assert found["Most accurate"].margin_relative is not None


@pytest.mark.parametrize("command", ["report", "recommend"])
def test_a_results_folder_that_does_not_exist_is_said_so(command: str, tmp_path: Path, capsys) -> None:
    store(make_set(), tmp_path / "results")
    missing = tmp_path / "typo"
    extra = ["--out", str(tmp_path / "r.html")] if command == "report" else ["--memory", "24GiB"]
    try:
        code = main([command, str(missing), *extra])
    except SystemExit as exit:  # recommend exits through argparse's error
        code = exit.code
    assert code == 2
    assert f"no result records under {missing}: no such folder" in " ".join(capsys.readouterr().err.split())


def test_timing_no_run_measured_cleanly_is_said_not_compared_never_unmeasured() -> None:
    records = make_set(seeds=(0, 1), contaminated="another process")
    columns, unmeasured = html.table_columns(aggregate.summarize(records, clean_timing=True))
    spoiled = {u["name"] for u in unmeasured if u["contaminated"]}
    assert "train.tokens_per_s" in spoiled and "accuracy.cipher" in {c["name"] for c in columns}
    page = html.render(records)
    assert 'id="timing-not-compared"' in page
    absent = page.split("Not measured on any run:")[1].split("</p>")[0] if "Not measured on any run:" in page else ""
    assert "train.tokens_per_s" not in absent


def test_the_latency_answer_says_where_a_merged_model_is_lower() -> None:
    """results/smollm2-forgetting: full-5x won lowest latency at 37.6 ms, while lora-5x merged ran at 37.0."""
    from bench.records.results import Metric

    def merged(record: RunResult, value: float) -> RunResult:
        metric = Metric(value=value, unit="ms", higher_is_better=False)
        return record.model_copy(update={"metrics": {**record.metrics, "latency.merged.ttft_ms.p50": metric}})

    records = [merged(r, 5.0) if r.label == "lora" else r for r in make_set()]  # full 9 ms, lora 13 unmerged
    found = next(a for a in aggregate.answers(records) if a.question == "Lowest latency")
    assert found.winner == "full" and "merged, lora is lower by means (untested): 5 ms (latency.merged" in found.note
    slower = [merged(r, 12.0) if r.label == "lora" else r for r in make_set()]
    assert "merged" not in next(a for a in aggregate.answers(slower) if a.question == "Lowest latency").note


def test_a_seed_whose_figure_is_not_finite_does_not_decide_a_per_hardware_answer() -> None:
    import math

    from bench.records.results import Metric

    cpu = make_set(labels=("full", "lora"))
    broken = cpu[-1]  # lora seed 2
    metric = Metric(value=math.nan, unit="MiB", higher_is_better=False)
    cpu[-1] = broken.model_copy(update={"metrics": {**broken.metrics, "memory.train.host_peak_mib": metric}})
    gpu = on(make_set(labels=("full",)), "x86_64-16c-1x-nvidia-h200", GPU)  # asked per hardware
    found = {a.question: a for a in aggregate.answers(cpu + gpu)}
    least = found["Least memory (training peak) (on x86_64-2c-cpu)"]
    assert least.winner == "lora @ x86_64-2c-cpu" and math.isfinite(least.winner_mean)  # 600 MiB, finite seeds
