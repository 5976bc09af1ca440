"""Models that ship their own code (`auto_map` in config.json, a model type transformers does not know):
refused naming `model.trust_remote_code` unless the suite sets it (transformers would ask on the terminal,
which a worker has not), and with it loaded, estimated, trained, re-quantised by QLoRA and reloaded with
the same trust. The model here is a Llama under a model type of its own, written into a folder."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bench.estimate.model import estimate_run
from bench.estimate.suite import suite_model_config
from bench.measure.components import Components, count_weights
from bench.models.load import load_model
from bench.run.artefacts import lm_eval_command
from bench.spec import Budget, ModelSpec
from bench.strategies import STRATEGIES, PrepareContext
from bench.strategies.base import remote_code

TOKENIZER = Path(__file__).resolve().parents[1] / "suites" / "model-configs" / "smollm2-135m"
CONFIGURATION = """from transformers import LlamaConfig


class TinyCustomConfig(LlamaConfig):
    model_type = "tiny_custom"
"""
MODELING = """from transformers import LlamaForCausalLM

from .configuration_tinycustom import TinyCustomConfig


class TinyCustomForCausalLM(LlamaForCausalLM):
    config_class = TinyCustomConfig
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    where = tmp_path / "tiny-custom"
    where.mkdir()
    (where / "configuration_tinycustom.py").write_text(CONFIGURATION)
    (where / "modeling_tinycustom.py").write_text(MODELING)
    config = {
        "model_type": "tiny_custom",
        "architectures": ["TinyCustomForCausalLM"],
        "auto_map": {
            "AutoConfig": "configuration_tinycustom.TinyCustomConfig",
            "AutoModelForCausalLM": "modeling_tinycustom.TinyCustomForCausalLM",
        },
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 49152,
    }
    (where / "config.json").write_text(json.dumps(config))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER / name, where)
    return where


def test_a_folder_with_its_own_code_is_refused_naming_the_field(folder: Path) -> None:
    spec = ModelSpec(config=str(folder))
    with pytest.raises(ValueError, match=r"model\.trust_remote_code: .* maps model type 'tiny_custom'"):
        load_model(spec, report=lambda message: None)
    with pytest.raises(ValueError, match=r"set model\.trust_remote_code: true"):
        suite_model_config(spec, lambda message: None)


def test_trusted_it_loads_estimates_and_qlora_requantises_with_the_same_trust(folder: Path) -> None:
    spec = ModelSpec(config=str(folder), trust_remote_code=True)
    loaded = load_model(spec, report=lambda message: None)
    assert type(loaded.model).__name__ == "TinyCustomForCausalLM"
    assert remote_code(loaded.model) == {"trust_remote_code": True}
    assert loaded.info["trust_remote_code"] is True
    config = suite_model_config(spec, lambda message: None)
    assert type(config).__name__ == "TinyCustomConfig"

    chosen = STRATEGIES.get("qlora")  # reloads the model quantised: the folder's code again
    context = PrepareContext(loaded.tokenizer, Budget(steps=1, batch_size=1, seq_len=8), 0, "cpu")
    model = chosen.prepare(loaded.model, chosen.Options(), context)
    assert type(model.get_base_model()).__name__ == "TinyCustomForCausalLM"
    real = Components()
    count_weights(model, real)
    estimate = estimate_run(config, dtype="float32", strategy="qlora", options={}, batch_size=1, tokens=8, device="cpu")
    assert estimate.components.weights_frozen == real.weights_frozen


def test_a_trained_full_model_reloads_with_its_code(folder: Path, tmp_path: Path) -> None:
    loaded = load_model(ModelSpec(config=str(folder), trust_remote_code=True), report=lambda message: None)
    chosen = STRATEGIES.get("full")
    context = PrepareContext(loaded.tokenizer, Budget(steps=1, batch_size=1, seq_len=8), 0, "cpu")
    model = chosen.prepare(loaded.model, chosen.Options(), context)
    chosen.save(model, tmp_path / "saved")
    again = chosen.load(model, tmp_path / "saved")
    ids = torch.randint(0, 512, (1, 8))
    assert torch.equal(again(input_ids=ids).logits, model(input_ids=ids).logits)


def test_a_native_model_is_never_loaded_with_remote_code() -> None:
    """A model of a type transformers knows runs transformers' code even where its config has an auto_map."""
    loaded = load_model(ModelSpec(preset="tiny-llama"), report=lambda message: None)
    assert remote_code(loaded.model) == {"trust_remote_code": False}
    assert "trust_remote_code" not in loaded.info


def test_the_lm_eval_line_of_a_trusted_model_says_so(folder: Path, tmp_path: Path) -> None:
    kept = tmp_path / "kept"
    (kept / "model").mkdir(parents=True)
    (kept / "model" / "config.json").write_text("{}")  # a whole model was kept
    info = {"source": "path", "folder": str(folder), "trust_remote_code": True}
    task = type("Task", (), {"name": "arc-easy", "generative": False})()
    command = lm_eval_command(kept, [task], info, 8, "float32")
    assert command is not None and "trust_remote_code=True" in command
    del info["trust_remote_code"]
    assert "trust_remote_code" not in (lm_eval_command(kept, [task], info, 8, "float32") or "")
