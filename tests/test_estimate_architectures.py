"""The estimator's meta-device pass against real CPU runs of transformers' own modules, per
architecture family (issue 27 item 3): what autograd keeps is what the meta forward keeps (partial
rotary in Phi and GPT-NeoX, Gemma's one key-value head and scaled embeddings, Qwen2's attention
biases, composed activations), and QLoRA on a bfloat16 model is counted in float32, as PEFT's
prepare_model_for_kbit_training leaves it."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

from bench.estimate.model import _adapters_to_bfloat16, estimate_run
from bench.measure.components import Components, SavedTensorPeak, count_weights
from bench.strategies import STRATEGIES, PrepareContext
from bench.suite import Budget

SHAPE = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 4}
FAMILIES = {
    "llama": {},
    "phi": {"partial_rotary_factor": 0.5},  # gelu_new, LayerNorm, half the head dims rotated
    "gpt_neox": {"rotary_pct": 0.25},  # StableLM Alpha's architecture: parallel residual, fused qkv
    "gemma": {"num_key_value_heads": 1, "head_dim": 64},
    "qwen2": {"num_key_value_heads": 2},
    "mistral": {"num_key_value_heads": 2},
}
TOKENS = 128


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_meta_forward_keeps_what_the_real_forward_keeps_in_every_family(family: str, batch: int):
    """Measured 2026-12-03 (fp32, 128 tokens): 0.0% (Phi, GPT-NeoX), +3.4-3.5% (Llama, Qwen2,
    Mistral), +6.4-6.5% (Gemma) at batch 1 and 4: the same at every batch, so no per-sequence slope error."""
    config = AutoConfig.for_model(family, vocab_size=512, **SHAPE, **FAMILIES[family])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model.train()
    ids = torch.randint(0, 512, (batch, TOKENS))
    with SavedTensorPeak(list(model.parameters())) as real:
        model(input_ids=ids, labels=ids).loss.backward()
    estimate = estimate_run(config, dtype="float32", strategy="full", options={}, batch_size=batch, tokens=TOKENS)
    error = estimate.components.activations / real.peak - 1
    assert -0.02 <= error <= 0.10, f"{family} batch {batch}: {100 * error:+.1f}%"


def test_qlora_on_a_bfloat16_model_is_counted_in_float32():
    """bitsandbytes quantises on CPU, so the harness's own QLoRA (quantise, prepare_model_for_kbit_training,
    LoRA, adapters in bf16 as TRL casts them) runs here on a bf16 Llama. Before the estimator counted
    the unquantised weights and the activations in float32, it was 16% under on frozen weights and 43%
    under on activations (2,723,184 vs 3,252,080 and 11,610,116 vs 20,539,396 bytes); now both are exact."""
    config = AutoConfig.for_model(
        "llama", vocab_size=512, hidden_size=256, intermediate_size=1024, num_hidden_layers=4, num_attention_heads=4
    )
    options = {"r": 8, "alpha": 16, "target_modules": ["q_proj", "v_proj"], "compute_dtype": "bfloat16"}
    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16, attn_implementation="sdpa")
    qlora = STRATEGIES.get("qlora")
    context = PrepareContext(None, Budget(batch_size=4, seq_len=64), 0, "cpu")
    model = qlora.prepare(base, qlora.Options(**options), context)
    _adapters_to_bfloat16(model)  # what TRL's SFTTrainer does to a quantised model's trainable weights
    measured = Components()
    count_weights(model, measured)
    model.train()
    ids = torch.randint(0, 512, (4, 64))
    with SavedTensorPeak(list(model.parameters())) as real:
        model(input_ids=ids, labels=ids).loss.backward()
    estimate = estimate_run(config, dtype="bfloat16", strategy="qlora", options=options, batch_size=4, tokens=64)
    assert measured.weights_by_dtype.get("float32", 0) > 0  # embeddings, norms and head were upcast
    assert estimate.components.weights_by_dtype == measured.weights_by_dtype
    assert estimate.components.weights_frozen == measured.weights_frozen
    assert abs(estimate.components.activations / real.peak - 1) <= 0.05


@pytest.mark.parametrize("strategy", ["lora", "qlora", "full"])
def test_the_gpu_ground_truth_script_runs_here_on_a_tiny_phi(strategy: str):
    """scripts/published_shapes_gpu.py (issue 27 item 2) on CPU with a 2-layer phi-1.5 config: every
    field is there, CUDA's peak is missing with its reason, and the estimate is within 1% of the
    counted components (bf16, the published LoRA and QLoRA options)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / "published_shapes_gpu.py"
    spec = importlib.util.spec_from_file_location("published_shapes_gpu", path)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    options = next(o for name, s, o, _, _ in script.SHAPES if name == "phi-1.5" and s == strategy)
    row = script.measure_shape(script.load_config("phi-1.5", tiny=True), strategy, options, 2, 32, "cpu")
    assert row["cuda_allocated_peak_bytes"] is None and row["cuda_reason"]
    assert row["components"]["activations"] > 0 and row["estimate_bytes"] > 0
    assert abs(row["estimate_vs_components_percent"]) <= 1


def _script(name: str):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "scripts" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_published_table_covers_what_issue_27_asks():
    """>= 10 published rows that state batch and length, >= 4 families, micro-batch 1 to >= 4, full,
    LoRA and QLoRA, each naming its source and the implementation that was measured."""
    rows = _script("estimate_published").PUBLISHED
    families = {AutoConfig.from_pretrained(_configs() / row["config"]).model_type for row in rows}
    assert len(rows) >= 10 and len(families) >= 4, families
    assert {row["strategy"] for row in rows} == {"full", "lora", "qlora"}
    assert min(row["batch"] for row in rows) == 1 and max(row["batch"] for row in rows) >= 4
    assert all(row["source"] and row["implementation"] and row["tokens"] > 0 for row in rows)


def _configs():
    from pathlib import Path

    return Path(__file__).resolve().parents[1] / "suites" / "model-configs"


def test_phi_rows_miss_by_transformers_gelu_and_meet_with_the_publishers():
    """The published phi-1.5 LoRA row at micro-batch 4 (LitGPT, 10.68 GB): transformers' Phi, whose
    gelu_new keeps three more MLP-wide tensors per layer, is estimated over 20% above it; with the
    fused GELU LitGPT runs, within 2%. Stated in the table, not tuned into the estimator."""
    script = _script("estimate_published")
    case = next(r for r in script.PUBLISHED if r["config"] == "phi-1.5" and r["strategy"] == "lora" and r["batch"] == 4)
    row = script.estimate_row(case)
    assert row["error_percent"] > 20
    assert abs(row["publisher_error_percent"]) < 2
