"""`bench estimate`'s inputs as a user gives them: a config.json that leaves out a field transformers would
fill with a default of its own, sizes no model can have, sequences past a learned position table, a suite
whose device is `auto` asked about a GPU, and the notes that explain the table's rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from transformers import AutoConfig

from bench.cli.main import main
from bench.estimate.model import ConfigProblem, config_from_file, estimate_run

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "suites" / "smoke.yaml"
LLAMA = {"vocab_size": 256, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2}
LLAMA_70B = {"vocab_size": 32000, "hidden_size": 8192, "num_hidden_layers": 80, "num_attention_heads": 64}


def _config_file(tmp_path: Path, model_type: str, leave_out: tuple[str, ...] = (), **fields) -> Path:
    """A config.json as transformers writes it for `model_type` with `fields`, less the `leave_out` keys."""
    written = AutoConfig.for_model(model_type, **fields).to_dict()
    for name in leave_out:
        written.pop(name)
    path = tmp_path / f"{model_type}-config.json"
    path.write_text(json.dumps(written), encoding="utf-8")
    return path


def _suite(tmp_path: Path, edit) -> Path:
    """smoke.yaml (execution.device auto) edited in place by `edit(data)`."""
    data = yaml.safe_load(SMOKE.read_text())
    edit(data)
    path = tmp_path / "suite.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _one_error_line(capsys) -> str:
    (line,) = capsys.readouterr().err.strip().splitlines()
    return line


@pytest.mark.parametrize(
    ("model_type", "fields", "leave_out", "said"),
    [
        # Llama-2-70B's shape without its MLP width was estimated with Llama-2-7B's 11008: half its weights
        ("llama", {**LLAMA_70B, "num_key_value_heads": 8}, ("intermediate_size",), "leaves out intermediate_size"),
        (
            "mistral",
            {**LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2},
            ("intermediate_size",),
            "default mistral shape",
        ),
        (
            "qwen3",
            {**LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16},
            ("head_dim",),
            "leaves out head_dim",
        ),
        (
            "opt",
            {**LLAMA, "num_attention_heads": 4, "ffn_dim": 128, "word_embed_proj_dim": 64},
            ("ffn_dim",),
            "leaves out ffn_dim",
        ),
        (
            "mixtral",
            {**LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4},
            ("num_local_experts", "num_experts_per_tok"),
            "leaves out num_local_experts, num_experts_per_tok",
        ),
        (
            "qwen2_moe",
            {**LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2, "moe_intermediate_size": 32},
            ("moe_intermediate_size", "num_experts"),
            "leaves out moe_intermediate_size, num_experts",
        ),
    ],
)
def test_a_shape_field_left_to_transformers_fixed_default_is_refused(
    tmp_path: Path, model_type: str, fields: dict, leave_out: tuple[str, ...], said: str
):
    """A config without intermediate_size (or head_dim, ffn_dim, a mixture's expert counts) was estimated at
    transformers' own default for it, with no word: refused, naming the fields, as a missing vocab_size is."""
    path = _config_file(tmp_path, model_type, leave_out, **fields)
    with pytest.raises(ConfigProblem) as refused:
        config_from_file(path)
    message = str(refused.value)
    assert all(name in message for name in leave_out) and said in message and str(path) in message


def test_the_cli_refuses_a_missing_mlp_width_in_one_line(tmp_path: Path, capsys):
    """The audit's case: 65,323 MiB of weights for a 70B shape whose weights are 131,563."""
    path = _config_file(tmp_path, "llama", ("intermediate_size",), **LLAMA_70B, num_key_value_heads=8)
    assert main(["estimate", str(SMOKE), "--model-config", str(path), "--tokens", "16"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith("bench estimate: --model-config: ") and "leaves out intermediate_size" in line


@pytest.mark.parametrize(
    ("model_type", "fields", "leave_out"),
    [
        ("gpt2", {"n_embd": 64, "n_layer": 2, "n_head": 4, "vocab_size": 256}, ("n_inner",)),  # 4 x n_embd
        ("llama", {**LLAMA, "num_attention_heads": 4}, ("head_dim", "num_key_value_heads")),  # derived
        ("falcon", {**LLAMA, "num_attention_heads": 4}, ("ffn_hidden_size", "num_kv_heads")),  # derived
    ],
)
def test_a_field_whose_default_follows_the_config_is_not_required(
    tmp_path: Path, model_type: str, fields: dict, leave_out: tuple[str, ...]
):
    """GPT-2's n_inner=None means 4 x n_embd and Llama's head_dim is hidden_size / heads: left out, they
    are the model's own, so such a config is estimated as before."""
    path = _config_file(tmp_path, model_type, leave_out, **fields)
    assert config_from_file(path).model_type == model_type


def test_an_alias_states_the_field(tmp_path: Path):
    """Mixtral's num_experts is transformers' alias of num_local_experts: either states it."""
    fields = {**LLAMA, "num_attention_heads": 4, "num_key_value_heads": 2, "num_local_experts": 4}
    written = AutoConfig.for_model("mixtral", **fields).to_dict()
    written["num_experts"] = written.pop("num_local_experts")
    path = tmp_path / "config.json"
    path.write_text(json.dumps(written), encoding="utf-8")
    assert config_from_file(path).num_local_experts == 4


@pytest.mark.parametrize("folder", sorted((ROOT / "suites" / "model-configs").iterdir()), ids=lambda p: p.name)
def test_every_committed_model_config_is_still_read(folder: Path):
    assert config_from_file(folder).num_hidden_layers > 0


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"hidden_size": -64}, "hidden_size is -64: it must be at least 1"),  # was RuntimeError: negative dimension
        ({"vocab_size": 0}, "vocab_size is 0: it must be at least 1"),  # was: cannot reshape tensor of 0 elements
        ({"num_hidden_layers": 0}, "num_hidden_layers is 0: it must be at least 1"),  # was a 6.8 MiB answer
        ({"intermediate_size": 0}, "intermediate_size is 0: it must be at least 1"),
        (
            {"hidden_size": 256, "num_attention_heads": 8, "num_key_value_heads": 3},
            "num_attention_heads 8 is not a multiple of num_key_value_heads 3",
        ),
    ],
)
def test_sizes_no_model_can_have_are_refused_in_one_line(tmp_path: Path, capsys, fields: dict, said: str):
    """They ended in a traceback (exit 1), a 6.8 MiB estimate of a model without layers, or PEFT's 'no
    target_modules'; now one line naming the field and its value, exit 2."""
    shape = {**LLAMA, "num_attention_heads": 4, **fields}
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_type": "llama", **shape}), encoding="utf-8")
    assert main(["estimate", str(SMOKE), "--model-config", str(path), "--tokens", "16"]) == 2
    line = _one_error_line(capsys)
    assert said in line and str(path) in line


def test_a_suite_model_without_layers_is_refused(tmp_path: Path, capsys):
    """The suite's own model (a config folder) is held to the same sizes."""
    folder = tmp_path / "model"
    folder.mkdir()
    fields = {**LLAMA, "num_attention_heads": 4, "num_hidden_layers": 0}
    (folder / "config.json").write_text(json.dumps({"model_type": "llama", **fields}), encoding="utf-8")
    suite = _suite(tmp_path, lambda data: data.update(model={"config": str(folder)}, retain=[]))
    assert main(["estimate", str(suite), "--tokens", "16"]) == 2
    assert "num_hidden_layers is 0: it must be at least 1" in capsys.readouterr().err


def test_tokens_past_a_learned_position_table_are_refused(tmp_path: Path, capsys):
    """GPT-2 learns one embedding per position (n_positions): on meta a lookup past it is not checked, so
    128 tokens were estimated on a 64-position model that would fail to run."""
    path = _config_file(tmp_path, "gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=64)
    assert main(["estimate", str(SMOKE), "--model-config", str(path), "--tokens", "128"]) == 2
    line = _one_error_line(capsys)
    assert "128 tokens per sequence is more than the model's n_positions (64)" in line
    assert main(["estimate", str(SMOKE), "--model-config", str(path), "--tokens", "64"]) == 0


@pytest.mark.parametrize(
    ("model_type", "fields", "learned"),
    [
        ("opt", {"ffn_dim": 128, "max_position_embeddings": 64}, True),  # two more rows than positions
        ("llama", {"max_position_embeddings": 64}, False),  # rotary: no table, as before
    ],
)
def test_only_learned_positions_limit_the_tokens(model_type: str, fields: dict, learned: bool):
    config = AutoConfig.for_model(model_type, **LLAMA, num_attention_heads=4, **fields)

    def estimate():
        return estimate_run(config, dtype="float32", strategy="full", options={}, batch_size=1, tokens=65)

    if learned:
        with pytest.raises(
            ValueError, match=r"65 tokens per sequence is more than the model's max_position_embeddings \(64\)"
        ):
            estimate()
    else:
        assert estimate().tokens == 65


def test_device_memory_plans_an_auto_suite_for_a_gpu_and_the_table_says_which(tmp_path: Path, capsys, monkeypatch):
    """On a machine without a GPU an `auto` suite was estimated for the CPU even under --device-memory, where
    attention with dropout keeps its T x T weights (GPT-2: 10,092 MiB of activations for CUDA's 2,966), and
    the table did not say for which device it was."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    path = _config_file(tmp_path, "gpt2", n_embd=64, n_layer=2, n_head=4, vocab_size=256, n_positions=64)
    config = config_from_file(path)
    by_device = {
        device: estimate_run(
            config, dtype="float32", strategy="full", options={}, batch_size=8, tokens=64, device=device
        )
        for device in ("cpu", "cuda")
    }
    assert by_device["cpu"].components.activations > by_device["cuda"].components.activations  # dropout's weights
    args = ["estimate", str(SMOKE), "--model-config", str(path), "--tokens", "64"]
    for extra, device, said in [
        ([], "cpu", "estimated for cpu (execution.device auto: no GPU on this machine"),
        (["--device-memory", "24GiB"], "cuda", "estimated for cuda (execution.device auto, planned for a GPU"),
    ]:
        out = tmp_path / f"{device}.json"
        assert main([*args, *extra, "--json", str(out)]) == 0
        assert said in capsys.readouterr().out
        full = next(row for row in json.loads(out.read_text())["estimates"] if row["strategy"] == "full")
        assert full["device"] == device
        assert full["bytes"]["activations"] == by_device[device].components.activations


def test_the_table_prints_each_note_once_under_it(tmp_path: Path, capsys):
    """The notes that explain a surprising row (QLoRA's float32 activations above LoRA's) were in --json
    only; now under the table, one line each, with the rows they hold for."""
    path = _config_file(tmp_path, "llama", **LLAMA, num_attention_heads=4)
    suite = _suite(tmp_path, lambda data: data.update(strategies=["full", "lora", "qlora"]))
    assert main(["estimate", str(suite), "--model-config", str(path), "--tokens", "16"]) == 0
    printed = capsys.readouterr().out
    notes = printed.split("\nnotes:\n", 1)[1].splitlines()
    assert "  qlora: unquantised weights and activations in float32 (prepare_model_for_kbit_training)" in notes
    assert "  all: optimizer adamw_torch: two moments in the parameter's dtype" in notes
    assert printed.count("optimizer adamw_torch") == 1


def test_the_table_ends_in_a_blank_line(tmp_path: Path):
    """Its last line ran into the stderr note after it when both went to one terminal or file."""
    from bench.estimate.suite import render

    config = AutoConfig.for_model("llama", **LLAMA, num_attention_heads=4)
    estimate = estimate_run(config, dtype="float32", strategy="lora", options={}, batch_size=1, tokens=8)
    assert render([estimate], 2**30, 0, "--tokens").endswith("\n")


def test_a_shape_torch_cannot_build_is_one_entry_s_error(monkeypatch):
    """suite_estimates caught ValueError only: torch's RuntimeError on meta ended in a traceback."""
    from bench.estimate import suite as estimate_suite
    from bench.suite import load_suite

    def refuse(*args, **kwargs):
        raise RuntimeError("Trying to create tensor with negative dimension -64: [100, -64]\nmore")

    monkeypatch.setattr(estimate_suite, "estimate_spec", refuse)
    estimates, skipped, failed = estimate_suite.suite_estimates(load_suite(SMOKE), None, None, lambda _: None, 16)
    assert not estimates and not skipped
    assert set(failed.values()) == {"RuntimeError: Trying to create tensor with negative dimension -64: [100, -64]"}


def test_the_header_says_which_rows_are_planned_at_seq_len(capsys):
    """audit user17: "tokens per sequence: longest training example" headed a table whose DPO and RLHF rows are
    planned at budget.seq_len whatever their pairs' lengths (docs/memory.md)."""
    assert main(["estimate", "suites/alignment.yaml"]) == 0
    said = capsys.readouterr().out
    assert "tokens per sequence: longest training example; dpo, dpo-after-sft, rlhf-rloo: seq_len;" in said
    assert main(["estimate", "suites/smoke.yaml"]) == 0  # no preference strategy: the header as it was
    assert "tokens per sequence: longest training example; sequences per step" in capsys.readouterr().out
