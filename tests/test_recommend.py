"""`bench recommend` on synthetic records: constraints, Pareto set, the choice and its reason, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli.main import main
from bench.recommend import Figure, dominance, recommend, record_memory, render_text, within_noise
from bench.recommend.formatting import _against, _sizes
from bench.records.results import Metric, RunResult
from tests.synthetic_records import TASK, make_record, store

GIB = 2**30
ACCURACY = f"accuracy.{TASK}"

# label -> (training memory MiB, accuracy per seed, forgetting.mean, tokens/s)
STRATEGIES: dict[str, tuple[float, tuple[float, ...], float, float]] = {
    "full": (30 * 1024, (0.86, 0.88, 0.90), -0.30, 3000.0),  # over 24 GiB
    "dora": (7 * 1024, (0.81, 0.83, 0.85), -0.06, 1800.0),  # the most accurate that fits
    "lora": (6 * 1024, (0.80, 0.82, 0.84), -0.05, 2000.0),  # 3 vs 3 seeds: cannot tell from dora
    "ia3": (2 * 1024, (0.60, 0.62, 0.64), -0.02, 4000.0),  # the fastest; under --min-accuracy 0.7
    "prompt": (3 * 1024, (0.40, 0.41, 0.42), -0.10, 1500.0),  # dominated by ia3 on every dimension
}


def planted(
    label: str,
    seed: int,
    memory_mib: float,
    accuracy: float,
    forgetting: float,
    tokens: float | None,
    *,
    memory_metric: str = "memory.train.components_mib",
    parameters: int | None = None,
) -> RunResult:
    """A record of strategy `label` with these figures (the rest as tests/synthetic_records makes them)."""
    base = make_record(
        "lora",
        seed,
        values={ACCURACY: accuracy, "forgetting.mean": forgetting, "train.tokens_per_s": tokens},
    )
    metrics = dict(base.metrics)
    metrics[memory_metric] = Metric(value=memory_mib, unit="MiB", higher_is_better=False)
    spec = {**base.spec, "strategy": label, "label": label, "options": {"learning_rate": 3e-3}}
    model = {**base.model, **({"parameters": parameters} if parameters else {})}
    return base.model_copy(
        update={
            "run_id": f"{label}-{seed}",
            "strategy": label,
            "label": label,
            "spec": spec,
            "metrics": metrics,
            "model": model,
        }
    )


def planted_set(labels: tuple[str, ...] = tuple(STRATEGIES), parameters: int | None = None) -> list[RunResult]:
    records = []
    for label in labels:
        memory, accuracies, forgetting, tokens = STRATEGIES[label]
        for seed, accuracy in enumerate(accuracies):
            speed = tokens * (1 + 0.01 * (seed - 1))
            records.append(planted(label, seed, memory, accuracy, forgetting, speed, parameters=parameters))
    return records


@pytest.fixture(scope="module")
def records() -> list[RunResult]:
    return planted_set()


def test_accuracy_three_seeds_a_side_cannot_tell(records: list[RunResult]) -> None:
    rec = recommend(records, 24 * GIB)
    assert rec.feasible == ["dora", "ia3", "lora", "prompt"]
    assert rec.rejected == {"full": "needs 32 GiB > 24 GiB (30 GiB tensors + 2 GiB reserve)"}
    # dora is the most accurate that fits; 3 vs 3 seeds cannot reach two-sided p <= 0.05, so lora is not
    # "within seed noise" of it either (tests/test_recommend_audit.py: the lighter one is preferred at 4 seeds)
    assert rec.choice == "dora"
    assert "(0.83 vs lora 0.82, cannot tell: 3 vs 3 seeds" in rec.reason
    assert rec.reason.count(".") <= 6 and rec.reason.endswith(".")  # one sentence (decimals aside)


def test_accuracy_clear_winner_beyond_noise(records: list[RunResult]) -> None:
    rec = recommend(records, 40 * GIB)
    assert rec.choice == "full" and not rec.rejected
    assert rec.reason == (
        "full: the most accurate of the 5 strategies that fit 40 GiB (0.88 vs dora 0.83, cannot tell: 3 vs 3 seeds:"
        " too few to tell at two-sided p<=0.05), at 30 GiB tensors + 2 GiB reserve."
    )


def test_throughput_objective(records: list[RunResult]) -> None:
    assert recommend(records, 24 * GIB, objective="throughput").choice == "ia3"
    rec = recommend(records, 24 * GIB, min_accuracy=0.7, objective="throughput")
    assert rec.choice == "lora"
    assert "the fastest to train of the 2 strategies that fit 24 GiB and reach accuracy 0.70" in rec.reason
    assert "vs dora 1,800 tokens/s, cannot tell: 3 vs 3 seeds" in rec.reason


def test_rejections_name_the_number_and_the_limit(records: list[RunResult]) -> None:
    rec = recommend(records, 24 * GIB, min_accuracy=0.7, max_forgetting=0.055)
    assert rec.rejected == {
        "full": "needs 32 GiB > 24 GiB (30 GiB tensors + 2 GiB reserve); forgetting 0.30 > 0.055",
        "dora": "forgetting 0.06 > 0.055",
        "ia3": "accuracy 0.62 < 0.70",
        "prompt": "accuracy 0.41 < 0.70; forgetting 0.10 > 0.055",
    }
    assert rec.choice == "lora"
    text = render_text(rec)
    for name, why in rec.rejected.items():
        assert f"{name}: {why}" in text


def test_numbers_keep_their_order_visible() -> None:
    assert _against(0.8204, 0.82) == ("0.8204", "0.82")  # not "0.82 < 0.82"
    assert _against(0.8196, 0.82) == ("0.8196", "0.82")
    assert _against(0.3, 0.055) == ("0.30", "0.055")
    assert _sizes(24.04 * 1024, 24 * 1024) == ("24.04 GiB", "24 GiB")
    assert _sizes(600, 512) == ("600 MiB", "512 MiB")
    assert _sizes(1.73, 1) == ("1.7 MiB", "1 MiB")  # a few MiB keep a decimal (before: "2 MiB > 1 MiB")


def test_marginal_when_seeds_straddle_the_limit(records: list[RunResult]) -> None:
    rec = recommend(records, 24 * GIB, min_accuracy=0.81)
    lora = rec.candidate("lora")
    assert lora.accuracy.mean == pytest.approx(0.82) and (lora.accuracy.low, lora.accuracy.high) == (0.80, 0.84)
    assert [check.constraint for check in lora.marginal] == ["accuracy"]
    assert "accuracy 0.82 >= 0.81 (marginal: seeds 0.80 to 0.84)" in [check.text for check in lora.checks]


def test_pareto_excludes_the_dominated(records: list[RunResult]) -> None:
    rec = recommend(records, 24 * GIB)
    assert rec.pareto == ["dora", "ia3", "lora"]
    assert rec.dominated == {  # 3 vs 3 seeds cannot tell the scores apart: by means only
        "prompt": "dominated by ia3 (less memory; by means only, not beyond seed noise: higher accuracy,"
        " less forgetting, faster training)"
    }


def test_missing_metric_is_left_out_of_dominance() -> None:
    slow = planted_set(("ia3",))
    unmeasured = [planted("prompt", seed, 3 * 1024, 0.41, -0.10, None) for seed in range(3)]
    rec = recommend(slow + unmeasured, 24 * GIB)
    assert rec.candidate("prompt").throughput.mean is None
    assert dominance(rec.candidate("ia3"), rec.candidate("prompt")) == [
        "less memory",
        "higher accuracy",
        "less forgetting",
    ]
    assert rec.pareto == ["ia3"]


def test_within_noise() -> None:
    assert within_noise(Figure.of([0.80, 0.82, 0.84, 0.86]), Figure.of([0.81, 0.83, 0.85, 0.87])) is True
    assert within_noise(Figure.of([0.80, 0.81, 0.82, 0.83]), Figure.of([0.86, 0.87, 0.88, 0.89])) is False
    assert within_noise(Figure.of([0.80, 0.81, 0.82]), Figure.of([0.86, 0.88, 0.90])) is None  # 3 vs 3: p >= 0.1
    assert within_noise(Figure.of([0.8, 0.9]), Figure.of([0.85, 0.95])) is None  # 2 seeds: cannot tell
    assert within_noise(Figure.of([0.8]), Figure.of([0.9])) is None  # one seed: unknown


def test_memory_source_order_and_note() -> None:
    record = make_record("lora", 0)  # host RSS only (CUDA metrics missing on CPU)
    assert record_memory(record)[1] == "memory.train.host_peak_mib"
    metrics = dict(record.metrics)
    for metric, value in (("memory.train.components_mib", 5.0), ("memory.train.cuda_reserved_peak_mib", 9.0)):
        metrics[metric] = Metric(value=value, unit="MiB", higher_is_better=False)
        assert record_memory(record.model_copy(update={"metrics": metrics})) == (value, metric)
    rec = recommend([make_record("lora", seed) for seed in range(3)], 24 * GIB)
    assert any("~450 MiB of interpreter and libraries" in note for note in rec.notes)
    assert any("memory figures are those of the measured model (tiny-llama)" in note for note in rec.notes)


def test_worst_seed_memory(records: list[RunResult]) -> None:
    heavier = planted("lora", 3, 8 * 1024, 0.82, -0.05, 2000.0)
    rec = recommend([*records, heavier], 24 * GIB)
    assert rec.candidate("lora").memory_mib == 8 * 1024
    assert rec.choice == "dora"  # lora's worst seed now needs more than dora


def test_cli_recommends_and_writes_json(records: list[RunResult], tmp_path: Path, capsys) -> None:
    folder = store(records, tmp_path / "results")
    out = tmp_path / "rec.json"
    assert main(["recommend", str(folder.parent), "--memory", "24GiB", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "recommendation: dora:" in printed and "Pareto set: dora, ia3, lora" in printed
    data = json.loads(out.read_text())
    assert data["choice"] == "dora" and data["rejected"] == {
        "full": "needs 32 GiB > 24 GiB (30 GiB tensors + 2 GiB reserve)"
    }
    assert {row["name"] for row in data["candidates"]} == set(STRATEGIES)


def test_cli_exits_1_when_nothing_fits(records: list[RunResult], tmp_path: Path, capsys) -> None:
    folder = store(records, tmp_path / "results")
    assert main(["recommend", str(folder), "--memory", "1GiB"]) == 1
    error = capsys.readouterr().err.strip()
    assert error == (
        "no recommendation: no strategy meets the constraints: 5 of 5 need more than 1 GiB"
        " (smallest: ia3, 2 GiB tensors + 2 GiB reserve)"
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--memory", "24XB"], "--memory: '24XB'"),
        (["--memory=-3GiB"], "--memory: '-3GiB'"),
        (["--memory", "24GiB", "--min-accuracy", "nan"], "--min-accuracy must be between 0 and 1, got nan"),
        (["--memory", "24GiB", "--max-forgetting", "-0.1"], "--max-forgetting must be between 0 and 1, got -0.1"),
        (["--memory", "24GiB", "--model-config", "missing.json"], "--model-config: 'missing.json' does not exist"),
    ],
)
def test_cli_bad_input_exits_2(records: list[RunResult], tmp_path: Path, capsys, args: list[str], named: str) -> None:
    folder = store(records, tmp_path / "results")
    assert main(["recommend", str(folder), *args]) == 2
    assert named in capsys.readouterr().err


def test_cli_missing_results_exits_2(tmp_path: Path, capsys) -> None:
    assert main(["recommend", str(tmp_path / "nowhere"), "--memory", "24GiB"]) == 2
    assert "no result records under" in capsys.readouterr().err


def test_model_config_larger_model_gets_estimates(tmp_path: Path) -> None:
    from transformers import LlamaConfig

    config = tmp_path / "config.json"
    LlamaConfig(
        hidden_size=2048,
        intermediate_size=5632,
        num_hidden_layers=4,
        num_attention_heads=16,
        num_key_value_heads=4,
        vocab_size=32000,
    ).to_json_file(config)
    small = planted_set(("full", "lora"), parameters=88_128)
    rec = recommend(small, 4 * GIB, model_config=config)
    assert rec.measured_parameters == 88_128 and rec.user_parameters > 300_000_000
    assert any("measured on a 88.1K-parameter model (tiny-llama); yours has 311.4M" in note for note in rec.notes)
    full, lora = rec.candidate("full"), rec.candidate("lora")
    assert full.estimate.total_mib > 4 * 1024 and full.estimate.fits is False  # weights+grads+AdamW of 311M in fp32
    assert lora.estimate.total_mib < 4 * 1024 and lora.estimate.fits is True
    assert rec.rejected["full"].startswith("needs ~") and "on your model (estimate) > 4 GiB" in rec.rejected["full"]
    assert rec.choice == "lora" and "your model (311.4M)" in render_text(rec)


def test_cli_model_config_that_is_no_causal_lm_exits_2(records: list[RunResult], tmp_path: Path, capsys) -> None:
    from transformers import T5Config

    config = tmp_path / "t5.json"
    T5Config(d_model=64, num_layers=1, num_heads=2, d_ff=64, vocab_size=128).to_json_file(config)
    folder = store(records, tmp_path / "results")
    assert main(["recommend", str(folder), "--memory", "24GiB", "--model-config", str(config)]) == 2
    assert "--model-config: cannot build a causal language model" in capsys.readouterr().err


def test_scaling_compares_the_budget_seed_by_seed():
    """Seeds differ in the tokens they see (their data order pads differently): three 1-process seeds
    against one 2-process seed were called NO before, comparing the sets across all seeds."""
    from bench.recommend.scaling import render, scaling

    def run(seed: int, world: int, tokens: int):
        record = make_record("full", seed)
        return record.model_copy(
            update={"budget": {**record.budget, "world_size": world, "steps_done": 60, "tokens_seen": tokens}}
        )

    one = [run(0, 1, 1000), run(1, 1, 1040), run(2, 1, 990)]
    (row,) = scaling(one, [run(0, 2, 1000)])
    assert row.same_budget is True and row.processes == 2
    (row,) = scaling(one, [run(0, 2, 1010)])
    assert row.same_budget is False
    (row,) = scaling(one, [run(5, 2, 1000)])
    assert row.same_budget is None and "no common seed" in render([row])
    (row,) = scaling(one, one)  # the same set twice: nothing to scale, and no budget was compared
    assert row.efficiency is None and "1-process too" in row.note and not row.compared
    assert "yes" not in render([row]) and "no common seed" not in render([row])
    (row,) = scaling([run(0, 2, 1000)], one)  # swapped: ONE holds the 2-process runs
    assert not row.compared and row.note == "ONE holds no 1-process runs of this strategy"


def test_scaling_with_its_sets_swapped_exits_2_and_says_so(tmp_path: Path, capsys):
    """ONE and MANY given the wrong way round printed a table of '-' and exited 0."""

    def run(seed: int, world: int):
        record = make_record("full", seed)
        budget = {**record.budget, "world_size": world, "steps_done": 60, "tokens_seen": 1000}
        return record.model_copy(update={"budget": budget, "run_id": f"full-{seed}-{world}"})

    single = store([run(0, 1), run(1, 1)], tmp_path / "one")
    double = store([run(0, 2), run(1, 2)], tmp_path / "many")
    assert main(["scaling", str(single), str(double)]) == 0
    capsys.readouterr()
    assert main(["scaling", str(double), str(single)]) == 2
    assert "are ONE and MANY swapped?" in capsys.readouterr().err
