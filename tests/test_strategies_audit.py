"""Audit of the supervised strategies and the training path: an option that was silently dropped, a
strategy that crashed where it should be skipped with its reason, an artefact whose reproduce line
could not run. Each test failed on the code before its fix; tiny model, a few seconds each."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bench.models.load import load_model
from bench.run.artefacts import lm_eval_command
from bench.strategies import STRATEGIES, NotApplicable, PrepareContext
from bench.suite import Budget, ModelSpec, TaskSpec, Training
from bench.tasks import load_task
from bench.training.train import TrainRequest, train

BUDGET = Budget(steps=1, batch_size=8, seq_len=32)


@pytest.fixture(scope="module")
def task():
    return load_task(TaskSpec(name="cipher", train_size=16, eval_limit=4))


def fresh():
    torch.manual_seed(0)
    return load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)


def prepared(name: str, **options):
    loaded = fresh()
    strategy = STRATEGIES.get(name)
    chosen = strategy.Options(**options)
    context = PrepareContext(tokenizer=loaded.tokenizer, budget=BUDGET, seed=0, device="cpu")
    return loaded, strategy, chosen, strategy.prepare(loaded.model, chosen, context)


def test_a_bottleneck_adapter_artefact_gets_no_peft_lm_eval_line(task, tmp_path: Path) -> None:
    """The bottleneck adapter's options file is named adapter_config.json: reproduce.sh named it as
    lm-eval's `peft=`, and the line died in PEFT (KeyError: 'peft_type') instead of saying that this
    artefact has no lm-eval equivalent. A PEFT adapter keeps its line."""
    info = {"source": "preset", "folder": str(fresh().info["folder"])}
    for name, expected in (("adapter", None), ("lora", "peft=")):
        folder = tmp_path / name
        (folder / "model").mkdir(parents=True)
        loaded, strategy, _, model = prepared(name)
        strategy.save(model, folder / "model")
        command = lm_eval_command(folder, [task], info, 16, "float32")
        if expected is None:
            assert command is None, command
        else:
            assert command is not None and expected in command


def test_prefix_tuning_with_gradient_checkpointing_is_skipped_with_its_reason(task, tmp_path: Path) -> None:
    """Checkpointed layers drop the cache that holds the prefixes: the run crashed ("The size of tensor
    a (5) must match the size of tensor b (13)") where it should be skipped, saying why."""
    loaded, strategy, options, model = prepared("prefix")
    request = TrainRequest(
        model, loaded.tokenizer, "sft", task, BUDGET, Training(gradient_checkpointing=True), options, 0, "cpu", tmp_path
    )
    with pytest.raises(NotApplicable, match="gradient checkpointing"):
        train(request)


def test_gradient_checkpointing_still_trains_the_other_strategies(task, tmp_path: Path) -> None:
    loaded, strategy, options, model = prepared("lora")
    training = Training(gradient_checkpointing=True)
    outcome = train(TrainRequest(model, loaded.tokenizer, "sft", task, BUDGET, training, options, 0, "cpu", tmp_path))
    assert outcome.steps == BUDGET.steps


def test_ia3_feedforward_modules_the_suite_names_are_never_dropped() -> None:
    """`feedforward_modules` not spelled as one of the targets was silently left out: down_proj was
    scaled on its output (64 values) instead of its input (128), with nothing said."""
    with pytest.raises(ValueError, match="feedforward_modules"):
        prepared("ia3", target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["mlp.down_proj"])
    with pytest.raises(ValueError, match="feedforward_modules"):
        prepared("ia3", feedforward_modules=["up_proj"])  # targets from PEFT's table: k, v, down
    *_, model = prepared("ia3", target_modules=["k_proj", "v_proj", "down_proj"], feedforward_modules=["down_proj"])
    down = [p for n, p in model.named_parameters() if "down_proj.ia3_l" in n]
    assert down and all(p.shape == (1, 128) for p in down), [p.shape for p in down]  # on the input
    # the table's feed-forward module, left out of the suite's targets, is still dropped quietly
    *_, model = prepared("ia3", target_modules=["q_proj", "v_proj"])
    assert {n.split(".")[-3] for n, p in model.named_parameters() if p.requires_grad} == {"q_proj", "v_proj"}


def test_a_chained_runs_adapter_is_reproduced_on_the_parents_model(task, tmp_path: Path, monkeypatch) -> None:
    """A run chained after another (`start_from`, e.g. dpo-after-sft in suites/alignment.yaml) trains its
    adapter on the parent's merged model, kept in bench's artefact cache; reproduce.sh named the suite's
    base model instead, so lm-eval scored the adapter on a model it was never trained on."""
    from types import SimpleNamespace

    from bench.run.artefacts import keep_scoring_tasks

    monkeypatch.setenv("BENCH_CACHE_DIR", str(tmp_path / "cache"))
    loaded, strategy, _, model = prepared("lora")
    parent = tmp_path / "cache" / "artefacts" / "parent-run"
    fresh().model.save_pretrained(parent)  # stands in for the parent's merged model
    folder = tmp_path / "kept"
    strategy.save(model, folder / "model")
    spec = SimpleNamespace(
        parent={"run_id": "parent-run", "label": "sft-lora"},
        measure=SimpleNamespace(eval_batch_size=4),
        model=SimpleNamespace(dtype="float32"),
        run_id="child-run",
    )
    info = {"source": "preset", "folder": str(loaded.info["folder"])}
    keep_scoring_tasks(folder, [task], info, spec, loaded.tokenizer)
    script = (folder / "reproduce.sh").read_text()
    line = script.splitlines()[-1]
    assert f"BASE=${{BASE:-{parent}}}" in script and "pretrained=${BASE}," in line and ",peft=model," in line, script
    # the same adapter without a parent keeps the suite's base
    keep_scoring_tasks(folder, [task], info, SimpleNamespace(**{**vars(spec), "parent": None}), loaded.tokenizer)
    assert f"BASE=${{BASE:-{info['folder']}}}" in (folder / "reproduce.sh").read_text()
