"""DPO and RLHF through the worker, in-process, on the tiny preset (about a minute in all): DPO
lifts held-out preference accuracy above the base's; the reward model ranks held-out pairs better
than chance; RLHF raises the reward of greedy answers on held-out prompts; both RLHF phases are
measured and the records validate; a chained run trains its sft parent once, then reuses it."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.plan import plan
from bench.records.results import RunResult
from bench.suite import parse_suite
from tests.conftest import fast_suite

LORA = {"r": 8, "alpha": 16}
STRATEGIES = [
    {"lora": {"label": "sft", "learning_rate": 1e-2, **LORA}},
    {"dpo": {"lora": LORA, "learning_rate": 1e-2, "beta": 0.1}},
    {"dpo": {"label": "dpo-after-sft", "start_from": "sft", "lora": LORA, "learning_rate": 1e-2}},
    {
        "rlhf": {
            "lora": LORA,
            "learning_rate": 3e-3,
            "reward_learning_rate": 1e-3,
            "max_new_tokens": 2,
            "num_generations": 4,
            "beta": 0.05,
        }
    },
]


@pytest.fixture(scope="module")
def specs():
    suite = fast_suite(
        "align-test",
        STRATEGIES,
        task={"name": "cipher", "train_size": 400, "eval_limit": 20},
        preference={"from_task": True, "train_size": 400, "heldout_size": 60},
        budget={"steps": 40, "batch_size": 8, "seq_len": 16},
        execution={"threads": 1},
    )
    return {spec.label: spec for spec in plan(parse_suite(suite))}


def _run(spec, tmp_path: Path) -> RunResult:
    from bench.run.worker import run

    result = run(spec, "test-machine", tmp_path)
    assert result.status == "ok", result.reason
    return RunResult.model_validate_json(result.model_dump_json())  # the record round-trips


def value(record: RunResult, name: str) -> float:
    metric = record.metrics[name]
    assert metric.value is not None, metric.reason
    assert metric.higher_is_better or not name.startswith("align."), name
    return metric.value


@pytest.fixture(scope="module")
def rlhf(specs, tmp_path_factory) -> RunResult:
    return _run(specs["rlhf"], tmp_path_factory.mktemp("rlhf"))


def test_dpo_raises_heldout_preference_accuracy_above_the_base(specs, tmp_path: Path):
    record = _run(specs["dpo"], tmp_path)
    assert value(record, "align.preference_accuracy") > value(record, "align.preference_accuracy_before") + 0.1
    assert value(record, "align.reward_margin") > 0
    missing = record.metrics["align.mean_reward"]
    assert missing.value is None and "no reward model" in missing.reason
    assert record.budget["steps_done"] == 40 and "phases" not in record.budget
    # the record's estimate counts what DPO holds (here TRL's frozen copy of the adapter), within 15%
    assert abs(record.memory["estimate_error_percent"]) <= 15
    assert record.metrics["memory.train.other_models_mib"].value == 0  # the reference is the disabled adapter


def test_reward_model_ranks_heldout_pairs_better_than_chance(rlhf: RunResult):
    assert value(rlhf, "align.reward_model_accuracy") > 0.6


def test_rlhf_raises_the_mean_reward_on_heldout_prompts(rlhf: RunResult):
    assert value(rlhf, "align.mean_reward") > value(rlhf, "align.mean_reward_before")


def test_both_rlhf_phases_are_measured_and_recorded(rlhf: RunResult):
    phases = rlhf.budget["phases"]
    assert list(phases) == ["reward", "policy"]
    assert phases["reward"]["steps_done"] == phases["policy"]["steps_done"] == 40
    assert phases["policy"]["generated_tokens"] > 0 and rlhf.budget["generated_tokens"] > 0
    assert rlhf.budget["steps_done"] == 80 and "meaning" in rlhf.budget
    for phase in ("reward", "policy"):
        assert value(rlhf, f"train.{phase}.seconds") > 0
        assert value(rlhf, f"memory.{phase}_train.host_peak_mib") > 0
        assert f"train.{phase}.step_seconds" in rlhf.timings
    total = value(rlhf, "train.seconds")
    assert total == pytest.approx(value(rlhf, "train.reward.seconds") + value(rlhf, "train.policy.seconds"))
    peaks = [value(rlhf, f"memory.{p}_train.host_peak_mib") for p in ("reward", "policy")]
    assert value(rlhf, "memory.train.host_peak_mib") >= max(peaks)
    # the components are the larger phase's, against that phase's estimate; the other models are counted
    assert rlhf.memory["measured"]["phase"] in phases and abs(rlhf.memory["estimate_error_percent"]) <= 15
    assert value(rlhf, "memory.train.other_models_mib") > 0


def test_a_chained_run_trains_its_parent_once_then_reuses_it(specs, tmp_path: Path, monkeypatch):

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    spec = specs["dpo-after-sft"]
    assert spec.parent["run_id"] == specs["sft"].run_id
    first = _run(spec, tmp_path / "first")
    assert first.budget["parent"]["cached"] is False and value(first, "train.parent.seconds") > 0
    (cached,) = (tmp_path / "cache" / "artefacts").iterdir()  # the parent's run id and what it read
    assert cached.name.startswith(specs["sft"].run_id + "-") and (cached / "config.json").exists()
    assert first.budget["parent"]["folder"] == str(cached)
    second = _run(spec, tmp_path / "second")
    assert second.budget["parent"]["cached"] is True
    assert second.metrics["train.parent.seconds"].value is None
    # the same run whether its parent was trained here or loaded (training it drew from the random state)
    assert second.loss_curve == first.loss_curve and len(first.loss_curve) > 1
    # starting from the sft result: the tuned model prefers chosen answers more than DPO from base would need
    assert value(second, "align.preference_accuracy") > value(second, "align.preference_accuracy_before")


def test_full_dpo_and_grpo_train_through_the_same_path(tmp_path: Path):
    """Without LoRA the reference is rebuilt from the model's folder; GRPO is the other RL option."""
    import transformers

    from bench.models.load import load_model
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.suite import Budget, ModelSpec, TaskSpec, Training
    from bench.tasks import load_task
    from bench.tasks.preference import build_preference
    from bench.training.train import TrainRequest, train

    budget = Budget(steps=3, batch_size=4, seq_len=16)
    task = load_task(TaskSpec(name="cipher", train_size=16, eval_limit=4))
    preference = build_preference("cipher", 32, 8)
    for name, options in (("dpo", {"learning_rate": 1e-3}), ("rlhf", {"algorithm": "grpo", "num_generations": 2})):
        transformers.set_seed(0)
        loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", report=lambda message: None)
        strategy = STRATEGIES.get(name)
        validated = strategy.Options(**options)
        model = strategy.prepare(loaded.model, validated, PrepareContext(loaded.tokenizer, budget, 0, "cpu"))
        outcome = train(
            TrainRequest(
                model, loaded.tokenizer, strategy.objective, task, budget, Training(), validated, 0,
                "cpu", tmp_path / name, preference=preference,
            )
        )  # fmt: skip
        assert outcome.steps == (3 if name == "dpo" else 6), name
        assert all(phase.memory is not None for phase in outcome.phases)


def test_a_parent_is_cached_by_what_it_read_not_only_its_spec(tmp_path: Path, monkeypatch):
    """audit user17: the cache was keyed on the parent's run id (its spec: a file's path, not its contents), so a
    parent trained on data since edited was reused. The key now holds the base weights' sha256 and the digests
    of the parent's task files; the preference and retained files it does not train on leave it alone."""
    from bench.run.alignment import artefact_folder

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    info = {"sha256": "aa", "data_sha256": {"task:sums": "11", "retain:copy": "22", "preference": "33"}}
    edited = {**info, "data_sha256": {**info["data_sha256"], "task:sums": "12"}}
    other_pairs = {**info, "data_sha256": {**info["data_sha256"], "preference": "34", "retain:copy": "23"}}
    folder = artefact_folder("run", info)
    assert folder.parent == tmp_path / "artefacts" and folder.name.startswith("run-")
    assert artefact_folder("run", edited) != folder
    assert artefact_folder("run", {**info, "sha256": "ab"}) != folder
    assert artefact_folder("run", other_pairs) == folder
    assert artefact_folder("run") == tmp_path / "artefacts" / "run"  # nothing known of what it read


def test_a_parent_of_a_plugin_strategy_is_cached_by_its_code(tmp_path: Path, monkeypatch):
    """A parent whose strategy a plugin defines, its code edited since, was loaded from the cache trained by
    the old code: the key now holds the digest of the strategy's module; a built-in parent's key is as before."""
    import sys

    from bench.run.alignment import artefact_folder
    from bench.strategies import STRATEGIES as REGISTRY

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(REGISTRY, "_targets", dict(REGISTRY._targets))  # the plugin's name goes with the test
    monkeypatch.setattr(REGISTRY, "_loaded", dict(REGISTRY._loaded))
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "u_parent_sft", raising=False)
    plugin = tmp_path / "u_parent_sft.py"
    text = "from bench.strategies import STRATEGIES\nfrom bench.strategies.lora import LoRA\n\n\nclass MySFT(LoRA):\n"
    plugin.write_text(text + "    scale = 1\n\n\nSTRATEGIES.add('my-sft', MySFT())\n")
    __import__("u_parent_sft")
    info = {"sha256": "aa", "data_sha256": {"task:sums": "11"}}
    folder = artefact_folder("run", info, "my-sft")
    assert folder.name.startswith("run-") and folder != artefact_folder("run", info)
    assert artefact_folder("run", info, "my-sft") == folder  # the same code: the same cached parent
    plugin.write_text(text + "    scale = 2\n\n\nSTRATEGIES.add('my-sft', MySFT())\n")  # the user edits the plugin
    assert artefact_folder("run", info, "my-sft") != folder
    assert artefact_folder("run", info, "lora") == artefact_folder("run", info)  # bench's own: the key as before
    assert artefact_folder("run", None, "lora") == tmp_path / "artefacts" / "run"
