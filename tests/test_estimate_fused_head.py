"""DPO's step through TRL's fused LM head (bench.estimate.fused_head): the estimated peak against the live
peak of real DPO training steps, at SmolLM2's vocabulary (49,152) where the head's workspace is most of
the step. Before the head was modelled, the estimate counted logits TRL never makes and none of its
workspace: beyond the weights 101 MiB against a live peak of 399 (LoRA), 363 against 699 (full); now
398 and 700 (docs/memory.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from bench.estimate.fused_head import head_memory
from bench.estimate.model import config_from_file, estimate_run
from bench.measure.components import Components, count_weights
from bench.spec import Budget, Training
from bench.strategies import STRATEGIES, PrepareContext
from bench.tasks.preference import PreferenceData, PreferencePair
from bench.training.train import TrainRequest, train
from tests.test_estimate_batches import live_peak

SMOLLM2 = Path(__file__).resolve().parents[1] / "suites" / "model-configs" / "smollm2-135m"
BATCH, TOKENS = 2, 96


def dpo_training_peak(options: dict, workdir: Path) -> tuple[int, int]:
    """(the live peak of two DPO steps through bench.training.train, from torch's profiler; the bytes
    of the weights, made before it) on a 2-layer SmolLM2 with random weights. The pairs are
    prompt and completions of one token a word, so every sequence is TOKENS long."""
    from torch.profiler import ProfilerActivity, profile

    config = config_from_file(SMOLLM2)
    config.num_hidden_layers = 2
    tokenizer = AutoTokenizer.from_pretrained(SMOLLM2)
    half = TOKENS // 2
    pairs = [PreferencePair(" the" * (half - 1), " the" * half, " a" * half) for _ in range(2 * BATCH)]
    assert len(tokenizer(pairs[0].prompt + pairs[0].chosen).input_ids) == TOKENS - 1  # and TRL's end of sequence
    strategy = STRATEGIES.get("dpo")
    parsed = strategy.Options.model_validate(options)
    budget = Budget(steps=2, batch_size=BATCH, seq_len=TOKENS)
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    model = strategy.prepare(base, parsed, PrepareContext(tokenizer, budget, 0, "cpu"))
    weights = Components()
    count_weights(model, weights)
    request = TrainRequest(
        model, tokenizer, "dpo", None, budget, Training(), parsed, 0, "cpu", workdir,
        preference=PreferenceData(pairs, pairs[:1], "synthetic"),
    )  # fmt: skip
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        outcome = train(request)
    assert outcome.step_tokens == [2 * BATCH * TOKENS] * 2  # chosen and rejected, every token real
    return live_peak(prof), weights.weights_trainable + weights.weights_frozen


@pytest.mark.parametrize(
    "options", [{"lora": {"r": 8, "alpha": 16}}, {}], ids=["dpo-lora", "dpo-full-with-reference-copy"]
)
def test_the_estimated_dpo_peak_is_the_live_peak_of_its_steps(options, tmp_path):
    options = {**options, "learning_rate": 1e-5}
    peak, weights = dpo_training_peak(options, tmp_path)
    config = config_from_file(SMOLLM2)
    config.num_hidden_layers = 2
    estimate = estimate_run(
        config, dtype="bfloat16", strategy="dpo", options=options, batch_size=BATCH, tokens=TOKENS, device="cpu"
    ).components
    beyond_weights = estimate.peak() - estimate.weights_trainable - estimate.weights_frozen
    assert abs(weights - estimate.weights_trainable - estimate.weights_frozen) < 0.01 * weights
    # the reference copy (full) is made inside the training, as the profiler sees it
    assert -0.05 * peak <= beyond_weights - peak <= 0.10 * peak, (beyond_weights, peak)


def test_the_fused_head_holds_a_tile_workspace_on_cuda_and_float32_tile_copies_on_a_cpu():
    import trl.kernels.chunked_logprob as kernel

    choose = kernel._use_triton
    shape, vocabulary = (4, 512, 576), 49_152
    on = {
        device: head_memory(shape, vocabulary, torch.bfloat16, False, ("log_probs",), device)
        for device in ("cpu", "cuda")
    }
    scored = 4 * 511
    tile = min(scored, kernel.TOKEN_CHUNK_SIZE) * 32_768  # the projection buffer, one per pass
    assert on["cuda"].saved == on["cpu"].saved >= scored * 576 * 2  # the hidden states, kept for backward
    assert 2 * tile <= on["cuda"].workspace < 2 * tile + scored * 576 * 12  # + the hidden states' fp32 gradient
    assert on["cpu"].workspace > 3 * 4 * tile  # several float32 copies of a tile at once
    assert kernel._use_triton is choose  # the module is left as it was


def test_the_preference_shapes_script_measures_the_dpo_peak_the_estimate_predicts(tmp_path):
    """scripts/preference_shapes.py, which will run on a GPU as it runs here, on one-layer SmolLM2 shapes of 64
    tokens (LoRA at 2 and 4 pairs, full with its reference copy): every row measured, every sequence 64
    tokens long, the estimated peak within 10% of the resident peak (0.0-0.8% when written). In a process
    of its own: the script sets glibc's allocation threshold, which is process-wide."""
    import json
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    script = "scripts/preference_shapes.py"
    command = [sys.executable, script, "--out", str(tmp_path), "--objective", "dpo", "--only", "smollm2-135m", "--tiny"]
    environment = {**os.environ, "PYTHONPATH": str(root)}  # this tree's bench, not an installed one
    done = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = json.loads((tmp_path / "dpo-shapes.json").read_text())
    assert [(row["batch"], "lora" in row["options"]) for row in rows] == [(2, True), (4, True), (2, False)]
    for row in rows:
        assert row["tokens_per_step"] == [2 * row["batch"] * 64] * 2
        assert row["components"]["other_models"] == (
            0 if "lora" in row["options"] else row["components"]["weights_trainable"]
        )
        assert abs(row["estimate_vs_peak_percent"]) <= 10, row
