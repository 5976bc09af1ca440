"""What users read from bench.estimate that the other tests let change unnoticed (a mutation audit: each test fails
on a mutant that the estimate's own tests passed): the estimate's quantised weights, optimizer state and attention
against what bitsandbytes, torch and SDPA hold, and the batch table's cells. None trains. The audit's preference
checks are in tests/test_mutants_lengths.py, its measurements in tests/test_mutants_measure.py."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

# the estimate from a config (bench.estimate.model)


def _tiny() -> Any:
    from bench.models.load import load_model
    from bench.suite import ModelSpec

    return load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)


def test_training_lengths_are_the_sft_trainers_sequences_end_of_sequence_included(tmp_path: Path):
    """`bench estimate` plans at the longest training sequence: each the length of the SFT trainer's ids."""
    from bench.estimate.model import training_lengths
    from bench.suite import Budget, TaskSpec, Training
    from bench.tasks import load_task
    from bench.training.sft import sft_trainer
    from bench.training.train import trainer_arguments

    loaded = _tiny()
    task = load_task(TaskSpec(name="cipher", train_size=16, eval_limit=4))
    budget = Budget(steps=1, batch_size=2, seq_len=64)
    arguments = trainer_arguments(budget, Training(), 1e-3, 0, "cpu", tmp_path)
    trainer = sft_trainer(loaded.model, loaded.tokenizer, task, arguments, budget)
    trained = [len(ids) for ids in trainer.train_dataset["input_ids"]]
    assert training_lengths(task, loaded.tokenizer) == trained == [5] * 16


@pytest.mark.parametrize(
    ("options", "tolerance"),
    [
        ({"r": 4, "double_quant": False}, 0.0),  # 4-bit, one float32 absmax per 64 weights: to the byte
        ({"r": 4, "bits": 8}, 0.01),  # int8 and a float32 scale per row (estimated as per square row)
    ],
)
def test_quantised_frozen_weights_are_what_bitsandbytes_stores(options: dict, tolerance: float):
    pytest.importorskip("bitsandbytes")
    from bench.estimate.model import estimate_run
    from bench.measure.components import Components, count_weights
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.suite import Budget

    loaded = _tiny()
    config = loaded.model.config
    qlora = STRATEGIES.get("qlora")
    context = PrepareContext(loaded.tokenizer, Budget(), 0, "cpu")
    model = qlora.prepare(loaded.model, qlora.Options.model_validate(options), context)
    measured = Components()
    count_weights(model, measured)
    # an 8-bit weight's per-row float32 scales (SCB) are held beside it, and counted (audit: they were not)
    scales = sum(
        p.SCB.numel() * p.SCB.element_size() for p in model.parameters() if getattr(p, "SCB", None) is not None
    )
    int8 = sum(p.numel() for p in model.parameters() if str(p.dtype) == "torch.int8")
    assert measured.weights_by_dtype.get("int8", 0) == int8 + scales
    estimate = estimate_run(config, dtype="float32", strategy="qlora", options=options, batch_size=1, tokens=8)
    held = measured.weights_frozen
    assert abs(estimate.components.weights_frozen - held) <= tolerance * held


def _llama(layers: int = 4) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=layers, num_attention_heads=4, vocab_size=256
    )


def test_dpo_under_checkpointing_keeps_the_fused_heads_tensors_at_the_loss():
    """What TRL's fused head keeps for backward is held at the loss's moment as without checkpointing: the
    recomputed layer (the peak's excess over the kept tensors) is (unchecked - kept) / layers of the backbone."""
    from bench.estimate.model import estimate_run

    estimate = estimate_run(
        _llama(), dtype="float32", strategy="dpo", options={"lora": {"r": 4}}, batch_size=2, tokens=32,
        gradient_checkpointing=True, device="cpu",
    )  # fmt: skip
    parts = estimate.components
    assert parts.activations_at_loss < parts.activations < parts.activations_without_checkpointing
    layer = parts.activations - parts.activations_at_loss
    assert layer == (parts.activations_without_checkpointing - parts.activations_at_loss) // 4


def test_a_run_sharded_by_fsdp_says_its_figures_are_a_whole_replicas():
    from bench.estimate.model import estimate_spec

    spec = {
        "strategy": "lora", "label": "lora", "options": {}, "model": {"dtype": "float32"},
        "budget": {"batch_size": 8}, "processes": 2, "device": "cpu",
    }  # fmt: skip
    fsdp = estimate_spec({**spec, "parallel": "fsdp"}, _llama(2), 16).notes
    ddp = estimate_spec({**spec, "parallel": "ddp"}, _llama(2), 16).notes
    shards = "fsdp shards weights, gradients and optimizer state: these are a whole replica's"
    assert "per process: 2 processes share the global batch of 8" in fsdp and shards in fsdp
    assert shards not in ddp


def test_a_spec_on_a_numbered_gpu_is_estimated_for_cuda(monkeypatch):
    import torch

    from bench.estimate.model import estimate_spec, spec_device

    spec = {
        "strategy": "lora",
        "label": "lora",
        "options": {},
        "model": {"dtype": "float32"},
        "budget": {"batch_size": 2},
    }
    assert estimate_spec({**spec, "device": "cuda:1"}, _llama(2), 16).as_dict()["device"] == "cuda"
    assert estimate_spec(spec, _llama(2), 16).device == "cpu"  # a record made before specs named their device
    assert [spec_device(device) for device in ("cuda", "cuda:0", "cpu", None)] == ["cuda", "cuda", "cpu", "cpu"]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert spec_device("auto") == "cpu"


def test_the_json_and_recommend_read_the_steps_peak_not_the_counted_total():
    """The peak holds the loss's float32 gradients over the logits beside the activations; the total (what a
    run's counted components compare with) does not. `bench estimate --json` and `bench recommend` hold the
    peak against the device."""
    from bench.estimate.model import estimate_run
    from bench.measure.components import MIB

    estimate = estimate_run(_llama(2), dtype="float32", strategy="lora", options={}, batch_size=2, tokens=32)
    peak, total = estimate.components.peak(), estimate.components.total()
    assert peak > total
    assert (estimate.as_dict()["peak_bytes"], estimate.as_dict()["total_bytes"]) == (peak, total)
    assert estimate.total_mib() == peak / MIB


@pytest.mark.parametrize(("name", "maker"), [("adamw_bnb_8bit", "AdamW8bit"), ("paged_adamw_8bit", "PagedAdamW8bit")])
def test_eight_bit_adam_counts_an_absmax_for_a_last_partial_block(name: str, maker: str):
    """4,225 weights (65 x 65): 17 blocks of 256, the last one partial, each with a float32 absmax; paged or not,
    two moments."""
    import warnings

    bitsandbytes = pytest.importorskip("bitsandbytes")
    import torch

    from bench.estimate.meta import optimizer_bytes
    from bench.measure.components import count_optimizer_state

    torch.manual_seed(0)
    model = torch.nn.Linear(65, 65, bias=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # paged optimizers fall back to plain ones on CPU, and say so
        optimizer = getattr(bitsandbytes.optim, maker)(model.parameters(), lr=1e-3)
        model(torch.randn(2, 65)).sum().backward()
        optimizer.step()
    held = count_optimizer_state(optimizer)
    assert held == 2 * (4225 + 4 * 17) + 2 * 256 * 4  # two uint8 moments, their absmax, two shared maps
    assert optimizer_bytes(model, name)[0] == held


def test_plain_sgd_keeps_no_state():
    import torch

    from bench.estimate.meta import optimizer_bytes
    from bench.measure.components import count_optimizer_state

    model = torch.nn.Linear(8, 8)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)  # the trainer's "sgd": no momentum
    model(torch.randn(2, 8)).sum().backward()
    optimizer.step()
    assert count_optimizer_state(optimizer) == 0
    assert optimizer_bytes(model, "sgd") == (0, "no state (no momentum)")


def test_eight_bit_adam_on_small_tensors_only_keeps_no_quantisation_maps():
    """Under 4,096 elements bitsandbytes keeps float32 moments and never builds the shared 8-bit maps."""
    bitsandbytes = pytest.importorskip("bitsandbytes")
    import torch

    from bench.estimate.meta import optimizer_bytes
    from bench.measure.components import count_optimizer_state

    torch.manual_seed(0)
    model = torch.nn.Linear(32, 32)
    optimizer = bitsandbytes.optim.AdamW8bit(model.parameters(), lr=1e-3)
    model(torch.randn(2, 32)).sum().backward()
    optimizer.step()
    held = count_optimizer_state(optimizer)
    assert held == 2 * 4 * (32 * 32 + 32)
    assert optimizer_bytes(model, "adamw_bnb_8bit")[0] == held


def test_adafactor_factors_a_stack_of_matrices_per_matrix():
    """A mixture of experts' fused weights (experts, rows, columns): a row moment per expert's row and a
    column moment per expert's column (transformers' Adafactor), not one column moment for them all."""
    import torch
    from transformers.optimization import Adafactor

    from bench.estimate.meta import optimizer_bytes
    from bench.measure.components import count_optimizer_state

    model = torch.nn.Module()
    model.experts = torch.nn.Parameter(torch.randn(3, 8, 16))
    optimizer = Adafactor(model.parameters(), lr=1e-3, scale_parameter=False, relative_step=False)
    (model.experts**2).sum().backward()
    optimizer.step()
    held = count_optimizer_state(optimizer)
    assert held == 4 * (3 * 8 + 3 * 16) + 4  # and its RMS
    assert optimizer_bytes(model, "adafactor")[0] == held


@pytest.mark.parametrize("mask_dtype", ["bool", "float32", None])
def test_the_estimators_attention_keeps_what_sdpa_keeps_with_a_mask(mask_dtype: str | None):
    """On CPU SDPA keeps q, k, v, its output, the row logsumexp and the mask (a boolean one converted to the
    query's dtype); the estimate's attention keeps the same bytes."""
    import torch

    from bench.estimate import meta
    from bench.measure.components import SavedTensorPeak

    meta.register_attention()
    torch.manual_seed(0)
    batch, heads, tokens, width = 1, 2, 64, 8
    query = torch.randn(batch, tokens, heads, width, requires_grad=True).transpose(1, 2)
    key, value = (torch.randn(batch, heads, tokens, width, requires_grad=True) for _ in range(2))
    mask = torch.ones(tokens, tokens, dtype=torch.bool).tril()[None, None]
    if mask_dtype == "float32":
        mask = torch.zeros(mask.shape).masked_fill(~mask, float("-inf"))
    elif mask_dtype is None:
        mask = None
    with SavedTensorPeak() as sdpa:
        torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=mask).sum().backward()
    with SavedTensorPeak() as estimated:
        meta._efficient_attention(torch.nn.Module(), query, key, value, mask)
    kept = 4 * batch * heads * tokens * width * 4 + batch * heads * tokens * 4
    assert estimated.peak == sdpa.peak == kept + (0 if mask is None else tokens * tokens * 4)


def test_a_config_that_asks_for_eager_attention_is_estimated_with_its_weights_kept():
    """Eager attention keeps its tokens x tokens weights for backward, SDPA's kernels do not."""
    from transformers import LlamaForCausalLM

    from bench.estimate.meta import ATTENTION, attention_for
    from bench.estimate.model import estimate_run

    sdpa, eager = _llama(2), _llama(2)
    eager._attn_implementation = "eager"
    assert (attention_for(LlamaForCausalLM, sdpa), attention_for(LlamaForCausalLM, eager)) == (ATTENTION, "eager")
    kept = {
        name: estimate_run(
            config, dtype="float32", strategy="full", options={}, batch_size=1, tokens=64
        ).components.activations
        for name, config in (("sdpa", sdpa), ("eager", eager))
    }
    # 2 layers x 4 heads: eager keeps 64 x 64 float32 weights where SDPA keeps a float32 logsumexp per row
    assert kept["eager"] - kept["sdpa"] == 2 * 4 * (64 * 64 * 4 - 64 * 4)


# the largest batch that fits (bench.estimate.batches)


def test_a_batch_the_processes_cannot_split_evenly_is_one_the_suite_cannot_run():
    from bench.estimate.batches import cannot_run

    spec = SimpleNamespace(strategy="lora", processes=2, options={})
    assert cannot_run(spec, 3) == "execution.processes (2) must divide the batch evenly"
    assert cannot_run(spec, 4) is None
    assert cannot_run(SimpleNamespace(strategy="lora", processes=1, options={}), 3) is None


def test_sizes_left_out_for_one_reason_say_it_once(monkeypatch):
    """Two processes: batches 1, 3 and 5 cannot be split; the sizes between are estimated, the answer is the
    largest that fits."""
    from bench.estimate import batches

    spec = SimpleNamespace(strategy="lora", processes=2, options={}, budget=SimpleNamespace(seq_len=16))
    monkeypatch.setattr(batches, "suite_specs", lambda suite: {"lora": spec})
    peaks = {2: 200, 4: 400}

    def estimate(spec, config, tokens, size, checkpointing, device):
        return SimpleNamespace(components=SimpleNamespace(peak=lambda: peaks[size]))

    monkeypatch.setattr(batches, "estimate_spec", estimate)
    answers = batches.largest_batches(None, None, [1, 2, 3, 4, 5], 1000, 0, None, 16)
    for answer in answers:
        assert (answer.largest, answer.largest_bytes, answer.first_too_big, answer.left_out) == (
            4,
            400,
            None,
            [1, 3, 5],
        )
        assert answer.left_out_reason == "execution.processes (2) must divide the batch evenly"
    table = batches.render_batches(answers, 1000, 0, [1, 2, 3, 4, 5])
    assert table.endswith(
        "lora: batch 1, 3, 5 left out, the suite could not run it (execution.processes (2) must divide the batch "
        "evenly)"
    )


def test_a_strategy_not_applicable_only_with_checkpointing_says_so():
    from bench.estimate.batches import Answer, render_batches

    why = "prefix tuning cannot run with gradient checkpointing"
    answers = [
        Answer("prefix", False, 16, 4, 3 * 2**20, 8, 5 * 2**20),
        Answer("prefix", True, 16, None, None, None, None, reason=why),
    ]
    lines = render_batches(answers, 2**30, 0, [1, 2, 4, 8]).splitlines()
    assert lines[2].split() == ["prefix", "4", "(3.0", "MiB),", "not", "8", "(5.0", "MiB)", "not", "applicable"]
    assert lines[-1] == f"prefix with gradient checkpointing: not applicable ({why})"


def test_a_strategy_no_size_of_which_can_run_says_so():
    from bench.estimate.batches import Answer, render_batches

    answers = [Answer("rlhf", flag, 16, None, None, None, None, left_out=[1, 2, 3]) for flag in (False, True)]
    (row,) = [line for line in render_batches(answers, 2**30, 0, [1, 2, 3]).splitlines() if line.startswith("rlhf ")]
    cells = [cell.strip() for cell in row.split("  ") if cell.strip()]
    assert cells == ["rlhf", "none of these sizes can run", "none of these sizes can run"]
