"""Every model DPO and RLHF hold, estimated (bench.estimate.alignment) and counted in real runs
(bench.measure.component_probe), on the alignment suite's model, batch and strategy options
(suites/alignment.yaml, two steps instead of sixty): the held models' weights are equal to the
byte, totals within 1% (the issue asked 15% for DPO; 0.0% since 2026-12-06, +0.8% to +2.9% before), and
each RLHF phase against its own estimate."""

from __future__ import annotations

from pathlib import Path

import pytest
import transformers
import yaml

from bench.estimate.model import estimate_run
from bench.models.load import load_model
from bench.plan import plan
from bench.strategies import STRATEGIES, PrepareContext
from bench.suite import parse_suite
from bench.tasks import load_task
from bench.tasks.preference import load_preference
from bench.training.train import TrainRequest, train

ROOT = Path(__file__).resolve().parents[1]
SUITE = yaml.safe_load((ROOT / "suites" / "alignment.yaml").read_text())
STEPS = 2


def _suite_entries() -> dict[str, tuple[str, dict]]:
    """The alignment suite's dpo and rlhf entries, plus their full fine-tuning variants."""
    entries = {}
    for entry in SUITE["strategies"]:
        ((name, options),) = entry.items()
        if name in ("dpo", "rlhf") and "start_from" not in options:
            entries[options["label"]] = (name, options)
    entries["dpo-full"] = ("dpo", {**entries["dpo"][1], "label": "dpo-full", "lora": None, "learning_rate": 1e-4})
    entries["dpo-full-precomputed"] = ("dpo", {**entries["dpo-full"][1], "label": "dpo-full-precomputed",
                                                "precompute_ref_log_probs": True})  # fmt: skip
    entries["rlhf-full"] = ("rlhf", {**entries["rlhf-rloo"][1], "label": "rlhf-full", "lora": None})
    return entries


ENTRIES = _suite_entries()


@pytest.fixture(scope="module")
def specs():
    suite = {**SUITE, "strategies": [{name: options} for name, options in ENTRIES.values()]}
    suite["budget"] = {**SUITE["budget"], "steps": STEPS}
    suite["preference"] = {**SUITE["preference"], "train_size": 64}  # precomputing log-probs walks every pair
    return {spec.label: spec for spec in plan(parse_suite(suite))}


def measure_and_estimate(spec, workdir: Path):
    """One short run through bench.training.train, and the estimate at the shape of the step it counted."""
    transformers.set_seed(0)
    loaded = load_model(spec.model, "cpu", report=lambda message: None)
    strategy = STRATEGIES.get(spec.strategy)
    options = strategy.Options.model_validate(spec.options)
    model = strategy.prepare(loaded.model, options, PrepareContext(loaded.tokenizer, spec.budget, 0, "cpu"))
    outcome = train(
        TrainRequest(
            model, loaded.tokenizer, strategy.objective, load_task(spec.task), spec.budget, spec.training,
            options, 0, "cpu", workdir, preference=load_preference(spec.preference, spec.task.name),
        )
    )  # fmt: skip
    measured = outcome.components
    estimate = estimate_run(
        loaded.model.config, dtype=spec.model.dtype, strategy=spec.strategy, options=spec.options,
        batch_size=spec.budget.batch_size, tokens=measured.batch_shape[1],
    )  # fmt: skip
    return outcome, estimate


def error(estimated, measured) -> float:
    return abs(estimated.total() - measured.total()) / measured.total()


@pytest.mark.parametrize("label", ["dpo", "dpo-full", "dpo-full-precomputed"])
def test_dpo_estimate_counts_the_reference_and_is_within_15_percent(specs, label, tmp_path):
    outcome, estimate = measure_and_estimate(specs[label], tmp_path)
    measured, predicted = outcome.components, estimate.components
    assert measured.batch_shape[0] == 2 * specs[label].budget.batch_size  # chosen and rejected in one batch
    assert predicted.weights_frozen == measured.weights_frozen  # LoRA: base + TRL's frozen "ref" adapter copy
    assert predicted.other_models == measured.other_models
    if label == "dpo-full":  # the reference is a whole frozen copy of the model
        assert measured.other_models == measured.weights_trainable > 0
    else:  # the disabled adapter (plus its copy), or log-probs computed before training
        assert measured.other_models == 0
    assert error(predicted, measured) <= 0.01, (predicted.total(), measured.total())


@pytest.mark.parametrize("label", ["rlhf-rloo", "rlhf-full"])
def test_rlhf_estimate_counts_reward_model_reference_and_generation_cache(specs, label, tmp_path):
    outcome, estimate = measure_and_estimate(specs[label], tmp_path)
    phases = {phase.phase: phase.components for phase in outcome.phases}
    assert set(phases) == set(estimate.phases) == {"reward", "policy"}
    reward, policy = phases["reward"], phases["policy"]
    # reward phase: the policy waits; policy phase: the reward model (+ a full reference copy) is held
    assert reward.other_models == estimate.phases["reward"].other_models > 0
    assert policy.other_models == estimate.phases["policy"].other_models
    reference = policy.weights_trainable if label == "rlhf-full" else 0
    assert policy.other_models == reward.weights_trainable + reference
    # generation: a key/value cache of every sequence; the estimate takes the whole length (one more position)
    assert 0 < policy.generation_cache <= estimate.phases["policy"].generation_cache <= 1.5 * policy.generation_cache
    for name, counted in phases.items():
        assert error(estimate.phases[name], counted) <= 0.01, name
    # the run's components are the phase that held more, named; the estimate shows the phase whose peak
    # is the larger (what a device must hold: the policy's, with its fused head's tile buffer)
    larger = max(phases, key=lambda name: phases[name].total())
    assert outcome.components.phase == larger and estimate.components.peak() == max(
        phase.peak() for phase in estimate.phases.values()
    )


def test_sft_holds_no_other_model_and_no_cache():
    from bench.suite import ModelSpec

    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda message: None)
    estimate = estimate_run(loaded.model.config, dtype="float32", strategy="lora", options={}, batch_size=2, tokens=8)
    assert estimate.components.other_models == 0 and estimate.components.generation_cache == 0
    assert estimate.phases == {}


def test_bench_estimate_names_the_rlhf_phase_it_shows():
    from bench.estimate.suite import render
    from bench.suite import ModelSpec

    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda message: None)
    options = {"lora": {"r": 8, "alpha": 16}, "num_generations": 4}
    estimate = estimate_run(
        loaded.model.config, dtype="float32", strategy="rlhf", options=options, batch_size=8, tokens=6
    )
    larger = max(estimate.phases, key=lambda name: estimate.phases[name].peak())
    assert f"rlhf ({larger} phase)" in render([estimate], None, 0, "--tokens")
