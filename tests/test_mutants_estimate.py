"""What users read from bench.estimate and bench.measure that the other tests let change unnoticed (a
mutation audit: each test here fails on a mutant of the code that the estimate's, FLOPs' and memory's own
tests passed). The preference checks before a run at their exact boundaries; FLOPs of GPT-2's Conv1D layers,
of configs that state their head width, of TF32 and RLHF runs; the memory tracker's figures and reasons
without a GPU or behind NVML; the estimate's quantised weights, optimizer state and attention against what
bitsandbytes, torch and SDPA hold; and the batch table's cells. None trains."""

from __future__ import annotations

import json
import string
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bench.estimate.lengths import _verdict, too_long_pairs
from bench.suite import parse_suite
from bench.tasks.preference import PreferencePair, read_jsonl, split_pairs
from tests.conftest import fast_suite
from tests.test_alignment_seq_len import first_trainer

# 1. preference pairs against budget.seq_len (bench.estimate.lengths)


def _prompt(letters: int, start: int) -> str:
    """'code x y ... =': on the tiny preset's word-level tokenizer `letters` + 2 ids, distinct per `start`."""
    return "code " + " ".join(string.ascii_lowercase[(start + i) % 26] for i in range(letters)) + " ="


def _preference_suite(tmp_path: Path, pairs: list[tuple[str, str, str]], strategy: str, seeds: list[int]) -> Any:
    path = tmp_path / "pairs.jsonl"
    rows = [{"prompt": prompt, "chosen": chosen, "rejected": rejected} for prompt, chosen, rejected in pairs]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    preference = {"jsonl": str(path), "heldout_size": 2}
    return parse_suite(fast_suite("edge", [strategy], preference=preference, seeds=seeds))


@pytest.mark.parametrize(
    ("strategy", "letters", "dropped"),
    [
        ("dpo", 14, True),  # a prompt of exactly seq_len (16) ids leaves no answer token: DPOTrainer drops it
        ("dpo", 13, False),  # 15 ids: kept, its answers cut
        ("rlhf", 12, False),  # prompt + answer + end of sequence exactly 16 ids: RewardTrainer keeps it
        ("rlhf", 13, True),  # 17 ids: dropped
    ],
)
def test_the_check_before_a_run_drops_what_the_trainer_drops_at_exactly_seq_len(
    tmp_path: Path, strategy: str, letters: int, dropped: bool
):
    edge = [(_prompt(letters, start), " a", " t") for start in range(12)]
    short = [(_prompt(2, start), " a", " t") for start in range(6)]
    trainer, _ = first_trainer(strategy, tmp_path, [PreferencePair(*pair) for pair in edge[:6] + short])
    assert trainer.truncation["dropped"] == 6 * dropped  # the trainer's own rule, at seq_len 16
    problems, warnings = too_long_pairs(_preference_suite(tmp_path, edge, strategy, [0]))
    if dropped:
        (problem,) = problems
        assert "preference.jsonl: 10 of 10 training pairs (seed 0) too long for budget.seq_len 16" in problem
        assert warnings == []
    else:
        assert (problems, warnings) == ([], [])


def test_a_refusal_for_every_seed_is_said_once_for_the_first_seed(tmp_path: Path):
    pairs = [(_prompt(14, start), " a", " t") for start in range(12)]
    problems, _ = too_long_pairs(_preference_suite(tmp_path, pairs, "dpo", [0, 1]))
    assert len(problems) == 1 and "(seed 0)" in problems[0]


def test_the_pairs_lost_are_said_for_the_first_seed_that_loses_any(tmp_path: Path):
    """Two of 12 prompts fill seq_len: seed 1's split holds one of them out, seed 2's trains on both."""
    pairs = [(_prompt(2, start), " a", " t") for start in range(10)] + [
        (_prompt(14, start), " a", " t") for start in (0, 1)
    ]
    suite = _preference_suite(tmp_path, pairs, "dpo", [1, 2])
    long = {pair[0] for pair in pairs[10:]}
    file_pairs = read_jsonl(Path(suite.preference.jsonl))
    trained = {seed: sum(p.prompt in long for p in split_pairs(file_pairs, 2, "x", seed).train) for seed in (1, 2)}
    assert trained == {1: 1, 2: 2}
    problems, warnings = too_long_pairs(suite)
    assert problems == []
    assert warnings == [
        f"{suite.preference.jsonl}: 1 of 10 training pairs (seed 1) too long for budget.seq_len 16 would be dropped "
        "from dpo training (DPOTrainer drops a pair whose prompt alone fills seq_len)"
    ]


def _budget(batch: int = 4) -> Any:
    return SimpleNamespace(budget=SimpleNamespace(seq_len=16, batch_size=batch))


def test_pairs_dropped_and_pairs_alike_together_leave_too_few_that_differ():
    """3 dropped, 4 kept alike, 3 that differ < a batch of 4 (7 kept: enough were it not for the alike)."""
    fates = ["dropped"] * 3 + ["identical"] * 4 + [None] * 3
    problem, warnings = _verdict(_budget(), Path("p.jsonl"), "dpo", 0, fates)
    assert warnings == []
    assert problem == (
        "p.jsonl: preference.jsonl: 4 of 10 training pairs (seed 0) have chosen and rejected with the same token "
        "ids at budget.seq_len 16 (they differ only after seq_len tokens, or tokenize alike: words the tokenizer "
        "does not know); and 3 of 10 training pairs (seed 0) too long for budget.seq_len 16 (DPOTrainer drops a "
        "pair whose prompt alone fills seq_len), leaving 3 that differ < budget.batch_size 4: no preference for "
        "dpo to learn (DPO's loss stays at ln 2); make chosen and rejected differ in their first tokens or raise "
        "budget.seq_len"
    )


def test_a_single_pair_alike_at_seq_len_is_warned():
    problem, warnings = _verdict(_budget(), Path("p.jsonl"), "rlhf", 3, ["identical"] + [None] * 9)
    assert problem is None
    assert warnings == [
        "p.jsonl: 1 of 10 training pairs (seed 3) have chosen and rejected with the same token ids at budget.seq_len "
        "16 (they differ only after seq_len tokens, or tokenize alike: words the tokenizer does not know): rlhf "
        "learns nothing from them"
    ]


# 2. FLOPs per token (bench.measure.flops)


def test_gpt2_conv1d_layers_are_matmuls_counted_in_by_out():
    """GPT-2's Conv1D holds its weight (in, out): c_attn 64 -> 192, c_proj 64 -> 64, c_fc 64 -> 256 and
    c_proj 256 -> 64 per layer, and the tied head 64 -> 256."""
    import torch
    from transformers import AutoModelForCausalLM, GPT2Config

    from bench.measure.flops import matmul_weights

    config = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=64)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    per_layer = 64 * 192 + 64 * 64 + 64 * 256 + 256 * 64
    assert matmul_weights(model) == (2 * per_layer + 64 * 256, 0)


def test_attention_uses_the_head_width_a_config_states():
    from transformers import LlamaConfig

    from bench.measure.flops import attention_shape

    config = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=32)
    assert attention_shape(config) == (2, 4, 32)  # not hidden_size / heads = 16
    multimodal = SimpleNamespace(text_config=SimpleNamespace(num_hidden_layers=3, num_attention_heads=2, head_dim=8))
    assert attention_shape(multimodal) == (3, 2, 8)


def test_tf32_matmuls_are_held_against_the_tf32_peak_and_named_so(monkeypatch):
    """A float32 run with TF32 matmuls on an H100: MFU against 494.7 TFLOP/s, and the record says tfloat32."""
    import torch

    from bench.measure.flops import FlopsPerToken, mfu_metrics, record_flops

    flops = FlopsPerToken(trainable_weights=10**6, frozen_weights=0, layers=1, heads=1, head_dim=1, context=1)
    _, info = mfu_metrics(flops, 1000.0, "NVIDIA H100 80GB HBM3", "float32", tf32=True)
    assert (info["dtype"], info["peak_tflops_per_device"]) == ("tfloat32", 494.7)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "NVIDIA H100 80GB HBM3")
    monkeypatch.setattr(torch.backends.cuda, "matmul", SimpleNamespace(allow_tf32=True))
    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=2, head_dim=4)
    metrics, info = record_flops(model, "cuda", "float32", 1000.0, 640, 20, 1)
    assert (info["dtype"], info["peak_tflops_per_device"]) == ("tfloat32", 494.7)
    assert metrics["train.mfu"].value == pytest.approx(metrics["train.model_tflops_per_s"].value / 494.7)


def test_rlhf_steps_are_not_counted_as_6n_per_token():
    import torch

    from bench.measure.flops import record_flops

    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=2, head_dim=4)
    metrics, info = record_flops(model, "cpu", "float32", 1000.0, 640, 20, 1, objective="rlhf")
    assert metrics["train.flops_per_token"].value is None and "a rlhf step does other work" in info["reason"]


def test_a_model_whose_shape_cannot_be_read_records_flops_missing_not_a_failed_run():
    import torch

    from bench.measure.flops import record_flops

    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(hidden_size=8)  # no layer or head count under any name
    metrics, info = record_flops(model, "cpu", "float32", 1000.0, 640, 20, 1)
    assert all(metric.value is None for metric in metrics.values())
    assert info["reason"].startswith("FLOPs per token not countable for this model: ")


def test_no_samples_trained_means_no_context_tokens():
    import torch

    from bench.measure.flops import record_flops

    model = torch.nn.Linear(8, 8)
    model.config = SimpleNamespace(num_hidden_layers=1, num_attention_heads=2, head_dim=4)
    _, info = record_flops(model, "cpu", "float32", None, 0, 0, 1)
    assert (info["context"], info["attention_per_token"]) == (0.0, 0.0)


# 3. per-phase memory (bench.measure.memory)


def test_the_host_peak_is_vmhwm_in_mib(tmp_path: Path, monkeypatch):
    from bench.measure import memory

    status = tmp_path / "status"
    status.write_text("Name:\tpython\nVmHWM:\t  524288 kB\nVmRSS:\t  262144 kB\n")
    monkeypatch.setattr(memory, "_STATUS", status)
    monkeypatch.setattr(memory, "_CLEAR_REFS", tmp_path / "clear_refs")
    with memory.MemoryTracker("train") as phase:
        pass
    assert (phase.host_peak_mib, phase.host_reason) == (512.0, None)
    assert (tmp_path / "clear_refs").read_text() == "5"  # the high-water mark was reset at the phase's start


def test_a_machine_without_cuda_says_so_on_every_device_figure(monkeypatch):
    import torch

    from bench.measure.memory import MemoryTracker

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with MemoryTracker("train") as phase:
        pass
    metrics = phase.metrics()
    for name in ("cuda_allocated_peak_mib", "cuda_reserved_peak_mib", "nvml_process_mib", "nvml_device_used_mib"):
        metric = metrics[f"memory.train.{name}"]
        assert (metric.value, metric.reason) == (None, "no CUDA device on this machine"), name
    assert metrics["memory.train.host_peak_mib"].reason is None


class _Nvml:
    """pynvml's calls bench.measure.memory makes, over GPUs given as (used bytes, [(pid, bytes), ...])."""

    class NVMLError(Exception):
        pass

    def __init__(self, gpus: list[tuple[int, list[tuple[int, int]]]]) -> None:
        self.gpus = gpus

    def nvmlInit(self) -> None:
        pass

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in self.gpus[handle][1]]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        return SimpleNamespace(used=self.gpus[handle][0])


MIB = 2**20


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        # ours on GPU 1 only, another process on GPU 0: GPU 1's use, not both GPUs'
        ([(8 * MIB, [(1, 8 * MIB)]), (5 * MIB, [("me", 3 * MIB)])], (3.0, 5.0, None)),
        # ours on both GPUs: the sum of each
        ([(8 * MIB, [("me", 2 * MIB)]), (5 * MIB, [("me", 3 * MIB)])], (5.0, 13.0, None)),
        # one GPU that lists no process (a container hides pids): it must be ours, its use still tells
        ([(7 * MIB, [])], (None, 7.0, "NVML lists no memory for this process (a container may hide its pid)")),
        # two such GPUs: which one is ours is unknown
        (
            [(7 * MIB, []), (9 * MIB, [])],
            (None, None, "NVML lists no memory for this process (a container may hide its pid)"),
        ),
    ],
)
def test_nvml_figures_are_this_process_and_the_gpus_it_is_on(monkeypatch, gpus, expected):
    import os

    from bench.measure.memory import nvml_used_mib

    mine = os.getpid()
    gpus = [(used, [(mine if pid == "me" else pid, size) for pid, size in processes]) for used, processes in gpus]
    monkeypatch.setitem(sys.modules, "pynvml", _Nvml(gpus))
    assert nvml_used_mib() == expected


def test_a_figure_measured_carries_no_reason_and_one_missing_carries_its_own():
    from bench.measure.memory import PhaseMemory

    phase = PhaseMemory("train", cuda_allocated_peak_mib=3.0, cuda_reserved_peak_mib=4.0, nvml_device_used_mib=7.0)
    phase.nvml_reason = "NVML lists no memory for this process (a container may hide its pid)"
    metrics = phase.metrics()
    assert metrics["memory.train.nvml_device_used_mib"].reason is None
    assert metrics["memory.train.nvml_process_mib"].reason == phase.nvml_reason
    assert metrics["memory.train.cuda_allocated_peak_mib"].reason is None


# 4. the estimate from a config (bench.estimate.model)


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


# 5. the largest batch that fits (bench.estimate.batches)


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
