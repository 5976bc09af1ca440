"""Training memory by component: counted exactly from the tensors, activations measured from what
autograd keeps, and `bench.estimate.model` (meta device, no weights) against those measurements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from bench.estimate.meta import meta_model
from bench.estimate.model import (
    config_from_file,
    estimate_run,
    expected_batch_tokens,
    parse_bytes,
    training_lengths,
)
from bench.measure.components import (
    Components,
    SavedTensorPeak,
    count_gradients,
    count_optimizer_state,
    count_weights,
)
from bench.models.load import load_model
from bench.strategies import STRATEGIES, PrepareContext
from bench.suite import Budget, ModelSpec, TaskSpec, Training
from bench.tasks import load_task
from bench.training.train import TrainRequest, train

ROOT = Path(__file__).resolve().parents[1]
STRATEGIES_SUITE = yaml.safe_load((ROOT / "suites" / "strategies.yaml").read_text())
TINY_PARAMETERS = 88_128  # tiny-llama: embeddings tied to the head, 2 blocks of width 32


def tiny():
    torch.manual_seed(0)
    return load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)


def one_adamw_step(model) -> torch.optim.Optimizer:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    ids = torch.randint(0, model.config.vocab_size, (2, 8))
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return optimizer


def test_full_fine_tuning_components_are_parameters_times_bytes():
    model = tiny().model
    components = Components()
    count_weights(model, components)
    optimizer = one_adamw_step(model)
    tensors = len([p for p in model.parameters() if p.requires_grad])

    assert sum(p.numel() for p in model.parameters()) == TINY_PARAMETERS
    assert components.weights_trainable == TINY_PARAMETERS * 4 and components.weights_frozen == 0
    assert components.weights_by_dtype == {"float32": TINY_PARAMETERS * 4}
    assert count_gradients(model) == TINY_PARAMETERS * 4
    # AdamW: two moments in fp32 per weight, and one fp32 step counter per parameter tensor
    assert count_optimizer_state(optimizer) == 2 * TINY_PARAMETERS * 4 + 4 * tensors


def test_lora_counts_only_the_adapter_weights_as_trainable():
    loaded = tiny()
    lora = STRATEGIES.get("lora")
    options = lora.Options(r=4, alpha=8, target_modules=["q_proj", "v_proj"])
    model = lora.prepare(loaded.model, options, PrepareContext(loaded.tokenizer, Budget(), 0, "cpu"))
    components = Components()
    count_weights(model, components)
    optimizer = one_adamw_step(model)

    # per targeted projection (32 -> 32 in tiny-llama): A is r x 32, B is 32 x r; two per block, two blocks
    config = loaded.model.config
    adapter = 2 * 2 * (4 * config.hidden_size + config.hidden_size * 4)
    assert components.weights_trainable == adapter * 4
    assert components.weights_frozen == TINY_PARAMETERS * 4
    assert count_gradients(model) == adapter * 4
    assert count_optimizer_state(optimizer) == 2 * adapter * 4 + 4 * 8  # 8 adapter tensors


def test_activation_peak_of_a_known_layer_stack():
    """Linear keeps its input, ReLU its output (which the next Linear keeps too: one storage), the
    square its input: three batch x width float32 tensors, and no weights."""
    batch, width = 64, 256
    stack = torch.nn.Sequential(torch.nn.Linear(width, width), torch.nn.ReLU(), torch.nn.Linear(width, width))
    hand_computed = 3 * batch * width * 4
    with SavedTensorPeak(list(stack.parameters())) as tracker:
        stack(torch.randn(batch, width)).pow(2).sum().backward()
    assert abs(tracker.peak - hand_computed) <= 0.15 * hand_computed
    assert tracker.peak == hand_computed  # exact, in fact


def test_activation_peak_follows_release_under_checkpointing():
    """An MLP block keeps its input, its 4x-wide hidden and the activation's output (9 widths);
    checkpointed, autograd keeps only the block inputs (1 width each)."""
    from torch.utils.checkpoint import checkpoint

    batch, width, depth = 32, 128, 6
    layers = [
        torch.nn.Sequential(torch.nn.Linear(width, 4 * width), torch.nn.GELU(), torch.nn.Linear(4 * width, width))
        for _ in range(depth)
    ]
    x = torch.randn(batch, width, requires_grad=True)

    def peak(checkpointed: bool) -> int:
        hidden = x
        with SavedTensorPeak([p for layer in layers for p in layer.parameters()]) as tracker:
            for layer in layers:
                hidden = checkpoint(layer, hidden, use_reentrant=False) if checkpointed else layer(hidden)
            hidden.sum().backward()
        return tracker.peak

    unit = batch * width * 4
    assert peak(False) == depth * 9 * unit
    assert peak(True) == depth * unit


def test_meta_forward_keeps_what_the_real_forward_keeps():
    loaded = tiny()
    ids = torch.randint(0, loaded.model.config.vocab_size, (4, 24))
    with SavedTensorPeak(list(loaded.model.parameters())) as real:
        loaded.model(input_ids=ids, labels=ids).loss.backward()
    estimate = estimate_run(loaded.model.config, dtype="float32", strategy="full", options={}, batch_size=4, tokens=24)
    assert abs(estimate.components.activations - real.peak) <= 0.15 * real.peak


@pytest.fixture(scope="module")
def cipher():
    return load_task(TaskSpec(name="cipher", train_size=256, eval_limit=8))


def _suite_entries() -> list[tuple[str, dict]]:
    entries = []
    for entry in STRATEGIES_SUITE["strategies"]:
        ((name, options),) = entry.items()
        entries.append((name, dict(options or {})))
    return entries


@pytest.mark.parametrize(("name", "options"), _suite_entries(), ids=[n for n, _ in _suite_entries()])
def test_estimate_is_within_15_percent_of_the_measured_components(name, options, cipher, tmp_path):
    """Every strategy of suites/strategies.yaml: one real training step counted by the tracker vs
    the estimate from the config alone."""
    budget = Budget(steps=1, batch_size=8, seq_len=32)
    loaded = tiny()
    strategy = STRATEGIES.get(name)
    if name == "qlora":
        pytest.importorskip("bitsandbytes")
    parsed = strategy.Options.model_validate(options)
    model = strategy.prepare(loaded.model, parsed, PrepareContext(loaded.tokenizer, budget, 0, "cpu"))
    outcome = train(
        TrainRequest(model, loaded.tokenizer, "sft", cipher, budget, Training(), parsed, 0, "cpu", tmp_path)
    )
    measured = outcome.components
    assert measured is not None and measured.total() is not None

    tokens = expected_batch_tokens(training_lengths(cipher, loaded.tokenizer), budget.batch_size, budget.seq_len)
    estimate = estimate_run(
        loaded.model.config, dtype="float32", strategy=name, options=options, batch_size=8, tokens=tokens
    )
    # the tensors the strategy adds are counted exactly, before and after quantisation
    assert estimate.components.weights_trainable == measured.weights_trainable
    assert estimate.components.weights_frozen == measured.weights_frozen
    assert estimate.components.optimizer == measured.optimizer
    error = abs(estimate.components.total() - measured.total()) / measured.total()
    assert error <= 0.15, (estimate.components.mib(), measured.mib())


def test_large_configs_are_estimated_without_weights():
    """Llama-2-70B's shape on meta: parameters x 2 bytes in bf16, LoRA a sliver of that."""
    config = config_from_file(ROOT / "suites" / "model-configs" / "llama-2-70b")
    parameters = sum(p.numel() for p in meta_model(config, "bfloat16").parameters())
    assert parameters == 68_976_648_192
    full = estimate_run(config, dtype="bfloat16", strategy="full", options={}, batch_size=1, tokens=512)
    assert full.components.weights_trainable == 2 * parameters
    assert full.components.gradients == 2 * parameters
    assert full.components.optimizer == 2 * 2 * parameters + 4 * len(list(meta_model(config, "bfloat16").parameters()))
    qlora = estimate_run(
        config, dtype="bfloat16", strategy="qlora", options={"r": 16, "alpha": 32}, batch_size=1, tokens=512
    )
    assert qlora.components.total() < 0.15 * full.components.total()
    # PEFT's prepare_model_for_kbit_training leaves the unquantised weights in float32, so QLoRA's
    # activations are float32: more than full fine-tuning's bf16 ones at the same shape
    assert qlora.components.activations > full.components.activations
    # 4-bit storage with double-quantised constants: about 0.52 bytes per quantised weight
    assert 0.5 * parameters < qlora.components.weights_frozen < 0.6 * parameters


def test_expected_batch_length_is_the_longest_of_a_batch():
    lengths = list(range(1, 101))
    assert expected_batch_tokens(lengths, 1, 512) == 50  # one draw: the median
    assert expected_batch_tokens(lengths, 9, 512) == 90  # the 9/10 quantile
    assert expected_batch_tokens(lengths, 9, 64) == 64  # truncated at seq_len
    assert expected_batch_tokens([], 8, 32) == 32


@pytest.mark.parametrize(
    ("text", "value"), [("24GiB", 24 * 2**30), ("80 GB", 80 * 10**9), ("512MiB", 512 * 2**20), ("1e9", 10**9)]
)
def test_memory_sizes_parse(text, value):
    assert parse_bytes(text) == value


@pytest.mark.parametrize("text", ["", "24 parsecs", "-1GiB", "nanGiB", "infGB", "GiB"])
def test_bad_memory_sizes_are_refused_naming_the_text(text):
    with pytest.raises(ValueError, match="not a memory size"):
        parse_bytes(text)


def test_unknown_optimizer_is_refused_naming_the_field(tmp_path):
    config = config_from_file(ROOT / "suites" / "model-configs" / "llama-2-7b")
    with pytest.raises(ValueError, match="training.optimizer.*'lion'"):
        estimate_run(config, dtype="bfloat16", strategy="full", options={}, batch_size=1, tokens=8, optimizer="lion")
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(ValueError, match="model_type"):
        config_from_file(bad)


def test_cli_estimate_says_what_fits_and_writes_json(tmp_path, capsys):
    from bench.cli.main import main

    out = tmp_path / "estimate.json"
    code = main(
        [
            "estimate",
            str(ROOT / "suites" / "strategies.yaml"),
            "--model-config",
            str(ROOT / "suites" / "model-configs" / "llama-2-7b"),
            "--device-memory",
            "24GiB",
            "--tokens",
            "256",
            "--json",
            str(out),
            "--quiet",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0
    payload = json.loads(out.read_text())
    by_label = {row["label"]: row for row in payload["estimates"]}
    labels = {next(iter(entry)) for entry in STRATEGIES_SUITE["strategies"]}
    assert set(by_label) == labels - {"bitfit"} and set(payload["not_applicable"]) == {"bitfit"}  # no biases
    # fp32 Llama-2-7B: full fine-tuning needs 16 bytes per weight before activations; QLoRA stores ~0.5
    assert by_label["full"]["total_bytes"] > 16 * 6.7e9
    assert by_label["qlora"]["bytes"]["weights_frozen"] < 0.2 * by_label["lora"]["bytes"]["weights_frozen"]
    assert by_label["full"]["tokens"] == 256 and by_label["full"]["sequences"] == 8
    assert "will not fit in 24GiB" in printed and "full" in printed.split("will not fit in 24GiB")[1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--device-memory", "lots"], "--device-memory: 'lots' is not a memory size"),
        (["--tokens", "0"], "--tokens must be a count from 1 to 1048576, got 0"),
        (["--model-config", "/nonexistent/config.json"], "--model-config: '/nonexistent/config.json' does not exist"),
    ],
)
def test_cli_estimate_refuses_bad_input_naming_the_option(args, message, capsys):
    from bench.cli.main import main

    assert main(["estimate", str(ROOT / "suites" / "smoke.yaml"), *args]) == 2
    assert message in capsys.readouterr().err


def test_estimating_leaves_the_real_model_untouched():
    """The estimate runs inside every run, after training and before evaluation and latency: it must
    not change the real model's config (its attention implementation) or outputs."""
    loaded = tiny()
    ids = torch.randint(0, loaded.model.config.vocab_size, (2, 12))
    before_config = loaded.model.config.to_dict()
    attention = loaded.model.config._attn_implementation
    with torch.no_grad():
        before = loaded.model(input_ids=ids).logits
    for strategy in ("full", "lora", "prompt"):
        estimate_run(loaded.model.config, dtype="float32", strategy=strategy, options={}, batch_size=2, tokens=12)
    assert loaded.model.config._attn_implementation == attention
    assert loaded.model.config.to_dict() == before_config
    with torch.no_grad():
        torch.testing.assert_close(loaded.model(input_ids=ids).logits, before, rtol=0, atol=0)


def test_eight_bit_optimizer_state_counts_its_shared_quantisation_maps_once():
    """bitsandbytes' AdamW8bit gives every 8-bit state the same two 256-entry maps: counted once, the
    count equals the estimator's to the byte (before: 2 KiB more per 8-bit tensor than memory held)."""
    import bitsandbytes as bnb

    from bench.estimate.meta import optimizer_bytes

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(128, 128), torch.nn.Linear(128, 128))
    optimizer = bnb.optim.AdamW8bit(model.parameters(), lr=1e-3)
    model(torch.randn(2, 128)).sum().backward()
    optimizer.step()
    weights = 2 * (2 * 128 * 128 + 2 * 64 * 4)  # two uint8 moments and their absmax per block of 256
    biases = 2 * (2 * 128 * 4)  # under 4,096 elements: float32 moments
    maps = 2 * 256 * 4  # qmap1 and qmap2, shared
    assert count_optimizer_state(optimizer) == weights + biases + maps
    assert optimizer_bytes(model, "adamw_bnb_8bit")[0] == weights + biases + maps
