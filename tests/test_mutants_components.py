"""What users read from `bench estimate`'s memory components that the other tests let change unnoticed (a mutation
audit: each test fails on a mutant that the estimate's and the measurements' own tests passed): the models DPO and
RLHF hold (bench.estimate.alignment), the suite's table (bench.estimate.suite) and TRL's fused head
(bench.estimate.fused_head). The audit's measurements (bench.measure.components, bench.measure.limits) are in
tests/test_mutants_memory_counts.py. None trains."""

from __future__ import annotations

from typing import Any

import pytest

# the models a preference method holds (bench.estimate.alignment)

HELD_NOTES = (
    "frozen 'ref' adapter: TRL copies the initial adapter as the reference",
    "reference: a frozen copy of the whole model",
    "reference log-probs precomputed before training: no reference copy is held",
    "reference: a frozen copy of the whole policy (beta > 0)",
    "policy phase holds the frozen reward model and, while generating, a key/value cache",
    "the reward phase is the larger: the estimate is its peak",
)


def _llama(width: int = 64, mlp: int = 128) -> Any:
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=width, intermediate_size=mlp, num_hidden_layers=2, num_attention_heads=4, vocab_size=256
    )


def _preference(strategy: str, options: dict, config: Any = None, device: str = "cpu") -> Any:
    from bench.estimate.model import estimate_run

    return estimate_run(
        config or _llama(), dtype="float32", strategy=strategy, options=options, batch_size=2, tokens=16, device=device
    )


# the tiny Llama's policy (tied embeddings, 115,008 float32 weights) and its one-output reward model (98,688)
POLICY_BYTES, REWARD_BYTES = 460_032, 394_752


@pytest.mark.parametrize(("beta", "held"), [(0.0, REWARD_BYTES), (0.05, REWARD_BYTES + POLICY_BYTES)])
def test_rlhf_in_full_holds_a_reference_copy_only_under_a_kl_penalty(beta: float, held: int):
    """TRL builds no reference model at beta 0 (the strategy's `beta: 0: no reference model`)."""
    estimate = _preference("rlhf", {"lora": None, "beta": beta})
    assert estimate.phases["policy"].other_models == held
    assert ("reference: a frozen copy of the whole policy (beta > 0)" in estimate.notes) == (beta > 0)


def test_the_reward_model_trains_every_weight_and_its_backward_frees_activations_as_gradients_appear():
    """Biases and norms train too; its loss is over one score a sequence (no logits' gradients), so its peak is
    fine-tuning's: the larger of the activations and every gradient, not both."""
    reward = _preference("rlhf", {"lora": None, "beta": 0.0}).phases["reward"]
    assert reward.gradients == reward.weights_trainable == REWARD_BYTES
    assert reward.loss_gradients == 0
    assert reward.activations > reward.gradients
    assert reward.peak() == reward.total() - reward.gradients


@pytest.mark.parametrize(
    ("strategy", "options", "said"),
    [
        ("dpo", {"lora": {"r": 4}}, [0]),
        ("dpo", {"lora": None}, [1]),
        ("dpo", {"lora": None, "precompute_ref_log_probs": True}, [2]),
        ("rlhf", {"lora": {"r": 4}}, [0, 4]),
        ("rlhf", {"lora": None}, [3, 4]),
    ],
)
def test_each_preference_estimate_says_which_models_it_holds_and_nothing_else(strategy, options, said):
    """The notes under `bench estimate`'s table explain its `other models` and `frozen w.` cells."""
    notes = _preference(strategy, options).notes
    assert [note for note in HELD_NOTES if note in notes] == [HELD_NOTES[index] for index in said]


def test_a_larger_reward_phase_is_the_estimate_and_the_policy_phase_stays_its_own():
    """Wide layers and a small vocabulary: the reward model's gradients and moments outweigh the policy's fused head.
    The estimate shows the reward phase (chosen and rejected: 4 sequences) and says so; the policy phase it keeps
    beside it still holds the reward model, not the reward phase's figures."""
    estimate = _preference("rlhf", {"lora": {"r": 4}}, _llama(256, 512), device="cuda")
    reward, policy = estimate.phases["reward"], estimate.phases["policy"]
    assert (estimate.components.phase, estimate.sequences) == ("reward", 4)
    assert estimate.components.peak() == reward.peak() > policy.peak()
    assert estimate.notes[-1] == "the reward phase is the larger: the estimate is its peak"
    assert policy.phase == "policy" and policy.other_models == reward.weights_trainable == 5_511_168


# the suite's table (bench.estimate.suite)

MIB = 2**20


def _estimate(label: str, strategy: str = "lora", device: str = "cuda", tokens: int = 16, notes=(), **parts) -> Any:
    """An estimate of 7 MiB in total: 1 trained, 1 of gradients, 2 of optimizer state, 3 of activations."""
    from bench.estimate.model import Estimate
    from bench.measure.components import Components

    values = {"weights_trainable": MIB, "weights_frozen": 0, "gradients": MIB, "optimizer": 2 * MIB}
    values |= {"activations": 3 * MIB, "other_models": 0, "generation_cache": 0, **parts}
    return Estimate(strategy, label, Components(**values), 4, tokens, list(notes), {}, device)


def test_a_run_fits_when_its_peak_and_the_reserve_are_exactly_the_device():
    """The peak, not the total: backward frees the activations (3 MiB) as the gradients (1 MiB) appear."""
    from bench.estimate.suite import fits, render

    estimate = _estimate("lora", loss_gradients=0)
    assert (estimate.components.total(), estimate.components.peak()) == (7 * MIB, 6 * MIB)
    assert fits(estimate, 8 * MIB, 2 * MIB) and not fits(estimate, 8 * MIB - 1, 2 * MIB)
    row = render([estimate], 8 * MIB - 1, 2 * MIB, "--tokens").splitlines()[3]
    assert row.split()[-2:] == ["6.0", "NO"]  # the reserve counts in the table's verdict too


def test_the_table_says_for_which_device_what_it_keeps_free_and_aligns_its_columns():
    from bench.estimate.suite import render

    on_gpu = render([_estimate("lora")], 8 * MIB, 1 * MIB, "--tokens", "execution.device cuda").splitlines()
    assert on_gpu[:2] == [
        "estimated for cuda (execution.device cuda)",
        "tokens per sequence: --tokens; sequences per step and process (MiB)",
    ]
    assert on_gpu[2].startswith("strategy  sequences  tokens  trained w.")
    assert on_gpu[3].split() == ["lora", "4", "16", "1.0", "0.0", "1.0", "2.0", "3.0", "0.0", "0.0", "-", "7.0", "yes"]
    assert on_gpu[3].startswith("lora      ")  # labels to the left, figures to the right
    assert on_gpu[4] == "fits: peak + 1.0 MiB reserve (CUDA context, allocator slack) <= 8.0 MiB"
    on_cpu = render([_estimate("lora", device="cpu")], 2**30, 2**30 - 1, "--tokens").splitlines()
    assert on_cpu[0] == "estimated for cpu"
    assert on_cpu[-1] == "fits: peak + 1024.0 MiB reserve (kept free) <= 1.0 GiB"


@pytest.mark.parametrize(("value", "said"), [(99.94, "99.9"), (100.0, "100"), (1234.4, "1,234"), (None, "-")])
def test_a_mib_cell_has_one_decimal_under_100_and_none_from_100(value, said):
    from bench.estimate.suite import _mib

    assert _mib(value) == said


@pytest.mark.parametrize(
    ("value", "said"), [(2**30, "1.0 GiB"), (2**30 - 2**20, "1023.0 MiB"), (2**20, "1.0 MiB"), (None, "-")]
)
def test_sizes_are_in_gib_from_one_gib(value, said):
    from bench.estimate.suite import size_text

    assert size_text(value) == said


@pytest.mark.parametrize(("tokens", "header"), [(32, True), (16, False)])
def test_the_header_says_seq_len_only_where_a_preference_row_is_planned_apart(tokens: int, header: bool):
    from bench.estimate.suite import render

    table = render([_estimate("lora"), _estimate("dpo", strategy="dpo", tokens=tokens)], None, 0, "longest")
    said = "tokens per sequence: longest (DPO and RLHF on a preference file: seq_len); sequences per step"
    assert (said in table) == header


def test_notes_held_by_every_row_come_first_as_all_then_each_once_with_its_rows():
    from bench.estimate.suite import note_lines

    estimates = [
        _estimate("a", notes=["x", "y", "x", "w"]),
        _estimate("b", notes=["y", "z", "w"]),
        _estimate("c", notes=["y"]),
    ]
    assert note_lines(estimates) == ["notes:", "  all: y", "  a: x", "  a, b: w", "  b: z"]
    assert note_lines([_estimate("a")]) == []


def _spec(strategy: str, jsonl: str | None = "pairs.jsonl") -> Any:
    """A run spec at seq_len 32 whose suite has a preference section (`jsonl`: its file, else pairs from the task)."""
    from types import SimpleNamespace

    preference = SimpleNamespace(jsonl=jsonl)
    return SimpleNamespace(strategy=strategy, preference=preference, budget=SimpleNamespace(seq_len=32))


@pytest.mark.parametrize(
    ("spec", "lengths", "tokens", "planned"),
    [
        (_spec("lora"), [5, 9], None, 9),  # the longest training sequence
        (_spec("lora"), [5, 40], None, 32),  # never past seq_len: the trainer truncates
        (_spec("lora"), [], None, 32),  # no data: seq_len
        (_spec("lora"), None, None, 32),
        (_spec("rlhf"), [5], None, 32),  # a preference file's rows: seq_len
        (_spec("dpo", jsonl=None), [5], None, 5),  # preference pairs made from the task: its lengths
        (_spec("dpo"), [5], 12, 12),  # --tokens wins
    ],
)
def test_planning_tokens(spec, lengths, tokens, planned):
    from bench.estimate.suite import planning_tokens

    assert planning_tokens(spec, None if lengths is None else (lambda: lengths), tokens) == planned


NO_GPU = "execution.device auto: no GPU on this machine; --device-memory plans for a GPU"


@pytest.mark.parametrize(
    ("device", "device_bytes", "gpu", "planned"),
    [
        ("cpu", 2**30, True, ("cpu", "execution.device cpu")),
        ("cuda:1", None, False, ("cuda", "execution.device cuda:1")),
        ("auto", None, True, ("cuda", "execution.device auto: a GPU on this machine")),
        ("auto", None, False, ("cpu", NO_GPU)),
        ("auto", 2**30, False, ("cuda", "execution.device auto, planned for a GPU as --device-memory asks")),
    ],
)
def test_planning_device(monkeypatch, device, device_bytes, gpu, planned):
    import torch

    from bench.estimate.suite import planning_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    assert planning_device(device, device_bytes) == planned


def test_an_entry_the_estimator_refuses_is_failed_not_skipped_and_the_rows_keep_the_suites_order(monkeypatch):
    """`bench run` would record such an entry as failed (exit 2); `not applicable` is for what a run skips."""
    from pathlib import Path

    from bench.estimate import suite as estimate_suite
    from bench.suite import load_suite

    suite = load_suite(Path(__file__).resolve().parents[1] / "suites" / "smoke.yaml")
    labels = [entry.label for entry in suite.strategies]
    assert list(estimate_suite.suite_specs(suite)) == labels

    def refuse(spec, *args, **kwargs):
        raise ValueError(f"{spec.label}: unknown optimizer")

    monkeypatch.setattr(estimate_suite, "estimate_spec", refuse)
    estimates, skipped, failed = estimate_suite.suite_estimates(suite, None, None, lambda _: None, 16)
    assert (estimates, skipped) == ([], {}) and failed == {label: f"{label}: unknown optimizer" for label in labels}


def test_the_tokenizer_that_measures_the_data_has_the_suites_chat_template():
    """`bench estimate` tokenises conversational rows as the run does: with model.chat_template, which the tiny Llama's
    own tokenizer lacks."""
    from pathlib import Path

    from bench.estimate.suite import model_tokenizer
    from bench.suite import load_suite

    suite = load_suite(Path(__file__).resolve().parents[1] / "suites" / "alignment-chat.yaml")
    tokenizer = model_tokenizer(suite.model, lambda message: None)
    turns = [{"role": "user", "content": "code d ="}, {"role": "assistant", "content": "x"}]
    assert tokenizer.apply_chat_template(turns, tokenize=False) == "code d = x<eos>"


# TRL's fused LM head (bench.estimate.fused_head)


def test_the_fused_head_keeps_a_copy_of_all_but_each_sequences_last_hidden_state_and_a_tile_a_scored_token():
    """Two sequences of 9 tokens, width 16, bfloat16: 16 positions scored (not 18). Kept for backward: the hidden
    states' copy (16 x 16 x 2 bytes, the slice is not contiguous) and float32 numbers a token; the workspace a
    float32 tile of 16 scored tokens x 16,384 vocabulary entries on CUDA (1 MiB), beside the hidden states' float32
    gradient and the tile's per-token sums. One more token a sequence: two more rows of the tile."""
    import torch

    from bench.estimate.fused_head import head_memory

    def memory(tokens: int) -> Any:
        return head_memory((2, tokens, 16), 64, torch.bfloat16, False, ("log_probs",), "cuda")

    assert memory(9).saved == 772 and memory(9).workspace == 16 * 16_384 * 4 + 1_608
    assert memory(10).workspace - memory(9).workspace == 2 * 16_384 * 4 + 200


def test_the_fused_heads_memory_follows_the_model_it_ran_on():
    """The backbone's hidden states give the shape and dtype, the head its vocabulary and whether it trains (full
    fine-tuning: the head's own float32 gradient in the workspace); DPO and RLHF keep the entropy too."""
    import torch
    from transformers import LlamaConfig

    from bench.estimate.fused_head import FusedHeadLoss, HeadMemory
    from bench.estimate.meta import meta_model, on_meta

    config = LlamaConfig(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=64,
        tie_word_embeddings=False,
    )  # fmt: skip
    model, loss = meta_model(config, "bfloat16"), FusedHeadLoss()
    with pytest.raises(RuntimeError, match="known after the backbone's forward"):
        loss.memory("dpo", "cuda")
    ids = torch.zeros(2, 9, dtype=torch.long, device="meta")
    with on_meta():
        loss(model, ids)
    assert (loss.shape, loss.dtype, loss.vocabulary, loss.head_trains) == ((2, 9, 16), torch.bfloat16, 64, True)
    assert loss.memory("dpo", "cuda") == loss.memory("rlhf", "cuda") == HeadMemory(836, 1_056_328)
    model.lm_head.weight.requires_grad_(False)
    with on_meta():
        loss(model, ids)
    assert loss.memory("dpo", "cuda") == HeadMemory(836, 1_050_184)


def test_the_cuda_model_needs_the_trl_it_was_written_for_and_leaves_the_module_as_it_was(monkeypatch):
    import importlib.util

    import torch
    import trl.kernels.chunked_logprob as kernel

    from bench.estimate.fused_head import head_memory

    head_memory((2, 9, 16), 64, torch.bfloat16, False, ("log_probs",), "cuda")
    # the stand-in for `triton` is gone where it is not installed (the module imports it where it is)
    assert hasattr(kernel, "triton") == (importlib.util.find_spec("triton") is not None)
    monkeypatch.delattr(kernel, "_backward_kernel")
    with pytest.raises(RuntimeError, match="chunked_logprob has no _backward_kernel: this TRL is not the one modelled"):
        head_memory((2, 9, 16), 64, torch.bfloat16, False, ("log_probs",), "cuda")
