"""Mutation audit of the decisions `bench recommend` and `bench compare` show: each test here fails on a mutant of
bench/recommend/ (choice, constraints, noise, figures; bench/analysis compare, timing and selection in
tests/test_mutants_compare.py) that the rest of the suite let through (boundaries of a limit, which strategy of
several is picked, what a clause claims, which runs a number is made of). 135 mutants: 74 killed before, 8
equivalent, 53 closed by the two files."""

from __future__ import annotations

from bench.recommend import Figure, candidates_from, dominance, recommend, seed_noise
from bench.recommend.choice import _level
from bench.recommend.constraints import memory_differs
from bench.recommend.figures import TENSOR_SOURCES, ModelEstimate
from bench.recommend.noise import Difference, _said
from bench.records.results import RunResult
from tests.synthetic_records import TASK, make_record, make_set
from tests.test_one_rule import pair
from tests.test_one_rule import planted as host_planted
from tests.test_paired import _with_items
from tests.test_recommend import planted, planted_set

GIB = 2**30
GAIN = f"gain.{TASK}"


def _runs(label: str, memory_mib: float, accuracies: tuple[float | None, ...], forgetting: float = -0.05) -> list:
    """One run of `label` per accuracy (seeds 0, 1, ...), at this tensor count of training memory."""
    return [planted(label, seed, memory_mib, a, forgetting, 2000.0) for seed, a in enumerate(accuracies)]


def _set(record: RunResult, metric: str, value: float | None) -> RunResult:
    metrics = dict(record.metrics)
    metrics[metric] = metrics[metric].model_copy(update={"value": value})
    return record.model_copy(update={"metrics": metrics})


# ---- bench/recommend/choice.py ----------------------------------------------------------------------------------


def test_a_tie_at_equal_memory_does_not_claim_the_least_memory():
    """choice._tie: "the least memory of them" only where the named one needs strictly less than every tied one."""
    rec = recommend(_runs("a", 6 * 1024, (0.80, 0.82, 0.84)) + _runs("b", 6 * 1024, (0.80, 0.82, 0.84)), 24 * GIB)
    assert rec.choice == "a"
    assert rec.reason.startswith("a: tied with b as the most accurate of the 2 strategies that fit 24 GiB (0.82 each")
    assert rec.reason.endswith(", with no more memory than they do, at 6 GiB tensors + 2 GiB reserve.")
    assert "the least memory" not in rec.reason


def test_accuracy_is_ranked_across_hardware():
    """choice._one_hardware: only tokens/s are kept to one hardware; accuracy of a CPU model and another compare."""
    records = make_set(labels=("full",)) + make_set(labels=("lora",), cpu="Other CPU")
    rec = recommend(records, 24 * GIB)
    assert len({c.hardware for c in rec.candidates}) == 2
    assert rec.choice == "full"
    assert rec.reason.startswith("full: the most accurate of the 2 strategies that fit 24 GiB (0.70 vs lora 0.56,")
    assert "not ranked against" not in rec.reason and "among those timed on" not in rec.reason


def test_the_only_one_that_measured_the_objective_says_so():
    """choice.choose: one feasible strategy of two measured accuracy: "the only one of ... that measured accuracy"."""
    rec = recommend(_runs("a", 6 * 1024, (0.80, 0.82, 0.84)) + _runs("b", 5 * 1024, (None, None, None)), 24 * GIB)
    assert rec.feasible == ["a", "b"] and rec.choice == "a"
    assert rec.reason == (
        "a: the only one of the 2 strategies that fit 24 GiB that measured accuracy (accuracy 0.82),"
        " at 6 GiB tensors + 2 GiB reserve."
    )


def test_a_single_strategy_scope_is_said_in_the_singular():
    rec = recommend(_runs("a", 6 * 1024, (0.80, 0.82, 0.84)), 24 * GIB, min_accuracy=0.5, max_forgetting=0.3)
    assert rec.reason == (
        "a: the only strategy that fits 24 GiB, reaches accuracy 0.50 and forgets at most 0.30 (accuracy 0.82),"
        " at 6 GiB tensors + 2 GiB reserve."
    )


def test_of_several_lighter_strategies_within_the_tolerance_the_lightest_is_picked():
    """Both mid (6 GiB) and light (5 GiB) stay within 2 points of heavy (7 GiB), held for the two: light."""
    rec = recommend(
        _runs("heavy", 7 * 1024, (0.81, 0.83, 0.85, 0.87))
        + _runs("mid", 6 * 1024, (0.808, 0.829, 0.848, 0.867))
        + _runs("light", 5 * 1024, (0.809, 0.827, 0.849, 0.866)),
        24 * GIB,
    )
    assert rec.choice == "light"
    assert rec.reason.startswith("light: less memory than heavy, the most accurate of the 3 strategies that fit 24 GiB")
    assert "held for the 2 lighter strategies tested at once" in rec.reason


def test_the_bonferroni_count_holds_only_lighter_strategies_with_an_interval():
    """choice._level: a lighter strategy without an interval (one seed, no spread) is no test, so no share of 2.5%."""
    found = {"a": Difference(-0.005, -0.016, 0.007, 0.02, se=0.005, df=12.0), "b": None, "c": None}
    assert _level(found) == (0.025, 1)  # type: ignore[arg-type]
    found["c"] = Difference(-0.001, -0.01, 0.008, 0.02, se=0.004, df=12.0)
    assert _level(found) == (0.0125, 2)  # type: ignore[arg-type]


def test_the_chosen_strategys_marginal_constraint_is_a_note():
    """dora meets --min-accuracy 0.825 by its mean (0.83) while a seed scored 0.81: said among the notes."""
    rec = recommend(planted_set(), 24 * GIB, min_accuracy=0.825)
    assert rec.choice == "dora"
    assert rec.notes[-1] == "dora: accuracy 0.83 >= 0.825 (marginal: seeds 0.81 to 0.85)"


def test_measured_parameters_are_the_largest_measured_model():
    records = planted_set(("lora",), parameters=88_128) + planted_set(("ia3",), parameters=135_000)
    assert recommend(records, 24 * GIB).measured_parameters == 135_000


# ---- bench/recommend/constraints.py -----------------------------------------------------------------------------


def test_a_strategy_that_needs_exactly_the_memory_fits():
    rec = recommend(_runs("a", 22 * 1024, (0.8, 0.8)), 24 * GIB)
    assert rec.feasible == ["a"] and rec.choice == "a"
    assert rec.candidate("a").checks[0].text == "needs 24 GiB <= 24 GiB (22 GiB tensors + 2 GiB reserve)"


def test_accuracy_and_forgetting_exactly_at_their_limits_are_met():
    rec = recommend(_runs("a", 1024, (0.75, 0.75), forgetting=-0.25), 24 * GIB, min_accuracy=0.75, max_forgetting=0.25)
    assert rec.feasible == ["a"] and not rec.rejected
    texts = [check.text for check in rec.candidate("a").checks]
    assert texts[2:] == ["accuracy 0.75 >= 0.75", "forgetting 0.25 <= 0.25"]
    assert not rec.candidate("a").marginal


def test_forgetting_whose_seeds_straddle_the_limit_is_marginal():
    records = [planted("a", seed, 1024, 0.8, forgetting, 2000.0) for seed, forgetting in enumerate((-0.04, -0.06))]
    rec = recommend(records, 24 * GIB, max_forgetting=0.055)
    assert rec.choice == "a"
    assert [check.constraint for check in rec.candidate("a").marginal] == ["forgetting"]
    assert rec.notes[-1] == "a: forgetting 0.05 <= 0.055 (marginal: seeds forget 0.04 to 0.06)"


def test_a_mean_gain_of_exactly_zero_did_not_learn():
    """constraints._learning_check: learning is a mean gain above 0; a strategy that changed nothing is rejected."""
    unchanged = [_set(record, GAIN, 0.0) for record in _runs("a", 1024, (0.8, 0.8))]
    rec = recommend(unchanged + _runs("b", 2048, (0.7, 0.7)), 24 * GIB)
    assert rec.choice == "b"
    assert rec.rejected == {"a": "did not learn cipher: mean gain +0.0 points over the base model"}


def test_max_forgetting_zero_is_a_constraint():
    """--max-forgetting 0 (forget nothing) is a limit, not "no limit"."""
    rec = recommend(planted_set(("lora", "ia3")), 24 * GIB, max_forgetting=0.0)
    assert rec.choice is None and not rec.feasible
    assert rec.rejected == {"ia3": "forgetting 0.02 > 0.00", "lora": "forgetting 0.05 > 0.00"}


def test_min_accuracy_zero_still_needs_a_measured_accuracy():
    rec = recommend(planted_set(("lora",)) + _runs("b", 5 * 1024, (None, None, None)), 24 * GIB, min_accuracy=0.0)
    assert rec.feasible == ["lora"]
    assert rec.rejected == {"b": "accuracy not measured (planted: not measured in this run)"}


def test_memory_noise_is_a_share_of_the_smaller_figure():
    """600 vs 631 MiB of host RSS: 31 MiB is beyond 5% of 600 (30), though within 5% of 631 (31.55)."""
    rec = pair(600, 631)
    assert dominance(rec.candidate("light"), rec.candidate("heavy")) == ["less memory"]
    assert pair(600, 630).dominated == {}


def test_an_exact_figure_against_a_noisy_one_is_held_to_the_noise():
    """A tensor count (exact) against host RSS (noisy): 600 vs 610 MiB is within the noise of the host figure."""
    records = [host_planted("light", s, 600, TENSOR_SOURCES[0]) for s in (0, 1)]
    records += [host_planted("heavy", s, 610) for s in (0, 1)]
    found = {c.name: c for c in candidates_from(records)}
    assert memory_differs(found["light"], found["heavy"]) is False


def test_estimates_for_the_users_model_are_exact():
    """Estimates (bench estimate on the user's model) carry no seed noise: 1000 vs 1010 MiB differs."""
    records = [host_planted(label, s, 600) for label in ("light", "heavy") for s in (0, 1)]
    found = {c.name: c for c in candidates_from(records)}
    assert memory_differs(found["light"], found["heavy"]) is False  # host RSS both: equal
    found["light"].estimate, found["heavy"].estimate = ModelEstimate(1000.0, True), ModelEstimate(1010.0, True)
    assert memory_differs(found["light"], found["heavy"]) is True


# ---- bench/recommend/noise.py -----------------------------------------------------------------------------------


def test_values_without_seeds_are_never_paired():
    """noise.seed_noise: figures that do not say their seeds get distinct stand-in seeds (a two-sample test)."""
    first = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    second = [value + 0.5 for value in first]
    assert seed_noise(Figure.of(first), Figure.of(second)).within is True
    paired = seed_noise(Figure.of(first, seeds=list(range(6))), Figure.of(second, seeds=list(range(6))))
    assert paired.within is False and paired.words.startswith("p = 0.031 for this pair alone")


def test_p_at_alpha_is_not_within_noise():
    assert _said(0.05, "").within is False
    assert _said(0.0500001, "").within is True


def test_a_held_bound_never_passes_the_floor():
    """A 90-point drop with a wide interval: its one-sided bound stops at -100 points, the lowest a share can move."""
    assert Difference(-0.9, -1.0, -0.5, 0.3, se=0.2, df=3.0, floor=-1.0).low_at(0.025) == -1.0


def test_undecided_lighter_strategy_says_the_detectable_effect_at_95_percent():
    """Seed-paired (no items): 4 seeds a side; detectable >= 4.3 points (two-sided 95%, 80% power)."""
    rec = recommend(
        _runs("heavy", 7 * 1024, (0.80, 0.84, 0.88, 0.82)) + _runs("light", 5 * 1024, (0.79, 0.80, 0.86, 0.83)),
        24 * GIB,
    )
    assert rec.choice == "heavy"
    assert rec.reason.endswith(
        "light needs less memory (5 GiB) but the data cannot tell whether it is within the 2-point tolerance of it:"
        " -1.5 points (95% interval -4.8 to +1.8, detectable >= 4.3 points)."
    )


def _scored(label: str, after: str) -> RunResult:
    """One seed of `label` whose 30 cipher items came out `after` (the accuracy metric agrees)."""
    return _set(_with_items(label, 0, after, "0" * 30), f"accuracy.{TASK}", after.count("1") / len(after))


def test_one_seed_a_side_by_item_cannot_tell_and_never_picks_the_lighter():
    """noise: an item-paired difference of one seed a side holds no seed noise: "cannot tell", and no interval."""
    rec = recommend([_scored("full", "1" * 30), _scored("lora", "1" * 29 + "0")], 24 * GIB)
    assert rec.choice == "full"
    assert rec.reason == (
        "full: the most accurate of the 2 strategies that fit 24 GiB (1.00 vs lora 0.97, cannot tell: one seed on a"
        " side: the seed-to-seed variance is unknown), at 655 MiB host RSS."
    )


# ---- bench/recommend/figures.py ---------------------------------------------------------------------------------


def test_throughput_says_the_contaminated_runs_it_left_out():
    records = make_set(labels=("lora",))
    records[0] = make_record("lora", 0, contaminated="another process")
    (lora,) = candidates_from(records)
    assert (lora.throughput.n, lora.throughput.seeds) == (2, [1, 2])
    assert lora.throughput.reason == "1 of 3 runs left out: timing contaminated"


def test_an_estimate_is_what_a_candidate_plans_and_fits_with():
    (lora,) = candidates_from(make_set(labels=("lora",)))
    lora.estimate = ModelEstimate(1000.0, True, reserve_mib=2048.0)
    assert (lora.planning_mib, lora.needed_mib) == (1000.0, 3048.0)


def test_a_candidate_is_made_of_its_ok_runs_and_their_largest_model():
    """A failed run is no seed of its strategy; a strategy whose runs all failed is no candidate."""
    failed = [make_record(label, 2, status="failed", reason="boom") for label in ("lora", "full")]
    records = make_set(seeds=(0, 1), labels=("lora",)) + failed
    records[1] = records[1].model_copy(update={"model": {**records[1].model, "parameters": 90_000}})
    records[0] = records[0].model_copy(update={"model": {**records[0].model, "parameters": 88_128}})
    (lora,) = candidates_from(records)
    assert (lora.name, lora.seeds, lora.model_parameters) == ("lora", [0, 1], 90_000)


def test_one_run_on_a_gpu_marks_the_candidate_as_run_on_gpu():
    on_gpu = make_record("lora", 1)
    on_gpu = on_gpu.model_copy(update={"environment": on_gpu.environment.model_copy(update={"gpus": ["NVIDIA H200"]})})
    assert candidates_from([make_record("lora", 0), on_gpu])[0].ran_on_gpu is True


def test_runs_on_two_hardware_of_one_machine_have_no_fingerprint():
    """Their timing belongs to neither hardware: the candidate is timed by its machine name."""
    (lora,) = candidates_from([make_record("lora", 0), make_record("lora", 1, cpu="Other CPU")])
    assert lora.fingerprint is None and lora.hardware == "machine x86_64-2c-cpu"


def test_json_states_the_memory_needed_with_the_reserve():
    data = recommend(_runs("a", 6 * 1024, (0.8, 0.8)), 24 * GIB).to_json()
    assert (data["candidates"][0]["planning_mib"], data["candidates"][0]["needed_mib"]) == (6144.0, 8192.0)
