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
    """Full fine-tuning, fp32, 128 tokens, batch 1 and 4: 0.00% in every family. Until 2026-12-06 Llama,
    Qwen2 and Mistral were +3.4-3.5% and Gemma +6.4-6.5%: the meta attention's output was contiguous where
    SDPA's flash kernel lays it out as the query is (transposed for these families), so the output
    projection's saved input was a copy on meta and a view of the attention's saved output for real.
    GPT-NeoX's fused query-key-value: 0.00% since 2026-12-07 (a view counts its base's storage); this test
    ran the real forward with the model's cache, where GPT-NeoX copies keys and values into it and the
    two errors cancelled; the harness trains without one."""
    config = AutoConfig.for_model(family, vocab_size=512, **SHAPE, **FAMILIES[family])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, attn_implementation="sdpa")
    model.train()
    ids = torch.randint(0, 512, (batch, TOKENS))
    with SavedTensorPeak(list(model.parameters())) as real:  # no cache, as the harness trains
        model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    estimate = estimate_run(config, dtype="float32", strategy="full", options={}, batch_size=batch, tokens=TOKENS)
    error = estimate.components.activations / real.peak - 1
    assert abs(error) <= 0.005, f"{family} batch {batch}: {100 * error:+.2f}%"


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
def test_the_ground_truth_script_runs_here_on_a_tiny_phi(strategy: str):
    """scripts/published_shapes_gpu.py (issue 27 item 2) on CPU with a 2-layer phi-1.5 config: the peak
    is the host's resident one and says so, and the estimate is within 1% of the counted components
    (bf16, the published LoRA and QLoRA options)."""
    script = _script("published_shapes_gpu")
    options = next(o for name, s, o, _, _ in script.SHAPES if name == "phi-1.5" and s == strategy)
    row = script.measure_shape(script.load_config("phi-1.5", tiny=True), strategy, options, 2, 32, "cpu")
    assert row["peak_source"].startswith("host resident") and row["peak_bytes"] > 0
    assert row["peak_without_leftover_bytes"] == row["peak_bytes"] - row["resident_leftover_bytes"]
    assert row["components"]["activations"] > 0 and row["estimate_bytes"] > 0
    assert abs(row["estimate_vs_components_percent"]) <= 1


def test_a_shape_too_large_for_this_machine_is_skipped_with_the_reason(tmp_path, monkeypatch):
    """At full size on a CPU the script measures only what its estimate says fits (80% of the memory
    available): the rest are rows that say why, written as they come, and nothing is trained."""
    import json
    from types import SimpleNamespace

    import psutil

    script = _script("published_shapes_gpu")
    monkeypatch.setattr(psutil, "virtual_memory", lambda: SimpleNamespace(available=2**30))
    monkeypatch.setattr(script, "measure_shape", lambda *args: pytest.fail("a shape that cannot fit was trained"))
    monkeypatch.setattr(script, "map_large_allocations", lambda: None)  # glibc's setting is process-wide
    rows = script.run(
        tmp_path, "phi-1.5", tiny=False, strategies=["lora"], overrides={"hidden_act": "gelu_pytorch_tanh"}
    )
    assert [row["batch"] for row in rows] == [1, 2, 4]
    assert all(row["status"].startswith("skipped: estimate") and "1.0 GiB available" in row["status"] for row in rows)
    assert json.loads((tmp_path / "published-shapes.json").read_text()) == rows
    assert rows[0]["overrides"] == {"hidden_act": "gelu_pytorch_tanh"} and rows[0]["tokens"] == 1044


def test_the_resident_peak_follows_freed_tensors_once_large_allocations_are_mapped():
    """What makes the CPU peak comparable with CUDA's allocated peak: after map_large_allocations, a
    freed 256 MiB tensor leaves the resident memory, and the resident peak still counts it. In a
    process of its own: glibc's setting is process-wide."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    program = """
import gc, sys, torch
sys.path.insert(0, "scripts")
import published_shapes_gpu as script
from bench.measure.memory import MemoryTracker
if script.map_large_allocations() is not None:
    print("not glibc"); raise SystemExit
gc.collect()
before = script.in_use_bytes(cuda=False)
with MemoryTracker("steps") as phase:
    held = torch.ones(64 * 2**20)
    during = script.in_use_bytes(cuda=False) - before
    del held
    after = script.in_use_bytes(cuda=False) - before
print(during, after, script.step_peak_bytes(phase, False, before))
"""
    done = subprocess.run([sys.executable, "-c", program], cwd=root, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    if done.stdout.strip() == "not glibc":
        pytest.skip("this C library has no mallopt")
    during, after, peak = map(int, done.stdout.split())
    assert during >= 250 * 2**20 and peak >= 250 * 2**20  # 256 MiB of float32 ones
    assert after < 64 * 2**20


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
    assert script.GELU in script.render([row]).splitlines()[2]  # the row says why it misses
    within = script.estimate_row(next(r for r in script.PUBLISHED if r["config"] == "stablelm-base-alpha-3b"))
    assert abs(within["error_percent"]) < 10 and script.render([within]).splitlines()[2].endswith("| - |")


def test_the_published_table_puts_transformers_measurement_beside_the_published_figure(tmp_path):
    """A measurement of transformers at a row's exact shape and options stands beside it with the
    estimate's error against it (and the publisher-like variant's, phi-1.5's fused GELU); one with
    other options, or of a tiny config, does not."""
    import json

    script = _script("estimate_published")
    case = next(r for r in script.PUBLISHED if r["config"] == "phi-1.5" and r["strategy"] == "lora" and r["batch"] == 4)
    shape = {key: case[key] for key in ("config", "strategy", "batch", "tokens", "options")}
    measured = [
        {**shape, "options": {**case["options"], "r": 16}, "peak_without_leftover_bytes": 1},
        {**shape, "tiny": True, "peak_without_leftover_bytes": 2},
        {**shape, "overrides": {}, "peak_without_leftover_bytes": 16 * 2**30},
        {
            **shape,
            "overrides": case["publisher_config"],
            "peak_without_leftover_bytes": 11 * 2**30,
        },
    ]
    (tmp_path / "this-cpu").mkdir()
    (tmp_path / "this-cpu" / "published-shapes.json").write_text(json.dumps(measured))
    row = script.estimate_row(case, script.measurements(tmp_path))
    assert (row["measured_bytes"], row["measured_on"], row["publisher_measured_bytes"]) == (
        16 * 2**30,
        "this-cpu",
        11 * 2**30,
    )
    assert row["estimate_vs_measured_percent"] == pytest.approx(100 * (row["estimate_bytes"] / 2**34 - 1))
    table = script.render([row])
    assert "16.00 (this-cpu); 11.00 with hidden_act=gelu_pytorch_tanh" in table
    assert "Against transformers measured (1 rows, this-cpu)" in table
    assert "not measured" in script.render([script.estimate_row(case, [])])


def test_a_shape_too_large_to_measure_whole_stands_beside_its_measurement_with_fewer_layers(tmp_path):
    """Llama 2 13B LoRA (over a 24 GiB machine): a measurement of the same shape with fewer layers stands
    beside the row as such, against the estimate at those layers, and in its own summary line; the most
    layers measured wins, and a whole-shape measurement wins over any."""
    import json

    script = _script("estimate_published")
    case = next(r for r in script.PUBLISHED if r["config"] == "llama-2-13b" and r["strategy"] == "lora")
    shape = {key: case[key] for key in ("config", "strategy", "batch", "tokens", "options")}
    (tmp_path / "this-cpu").mkdir()
    path = tmp_path / "this-cpu" / "published-shapes.json"
    measured = [
        {**shape, "overrides": {"num_hidden_layers": 2}, "peak_without_leftover_bytes": 2**30},
        {**shape, "overrides": {"num_hidden_layers": 20}, "peak_without_leftover_bytes": 19 * 2**30},
        {**shape, "overrides": {"num_hidden_layers": 30, "hidden_act": "gelu"}, "peak_without_leftover_bytes": 1},
    ]
    path.write_text(json.dumps(measured))
    row = script.estimate_row(case, script.measurements(tmp_path))
    at_20 = script._estimate(case, {"num_hidden_layers": 20}).components.peak()
    assert (row["measured_bytes"], row["measured_layers"], row["layers"]) == (19 * 2**30, 20, 40)
    assert row["estimate_vs_measured_percent"] == pytest.approx(100 * (at_20 / (19 * 2**30) - 1))
    assert at_20 < row["estimate_bytes"] / 1.5  # the whole shape's estimate is not what was measured
    table = script.render([row])
    assert "19.00 at 20 of 40 layers (this-cpu)" in table
    assert "Against transformers measured with fewer layers (1 rows, this-cpu)" in table
    path.write_text(json.dumps([*measured, {**shape, "overrides": {}, "peak_without_leftover_bytes": 37 * 2**30}]))
    whole = script.estimate_row(case, script.measurements(tmp_path))
    assert (whole["measured_bytes"], whole["measured_layers"]) == (37 * 2**30, None)
