"""A model folder a user brings, as bench checks and identifies it (audit of 2026-12-07, user7):

1. base scores cached under an earlier config.json were reused after the config changed (the key held the
   weights' sha256 only), also for `model: {config: ...}`, which has no weights to hash;
2. a stored run was reused after the model's weights changed (only data files were compared);
3. BLOOM and ALiBi Falcon failed every base evaluation: the packed choices' 4D mask reached ALiBi;
4. a tokenizer larger than the model's embedding passed validate and failed every run (IndexError);
5. a folder without a tokenizer passed validate; 6. so did one whose code it is not trusted to run;
7. a path that does not exist was said to have no config.json.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bench.cli.suites import name_problems
from bench.evaluate.base_cache import base_scores_key
from bench.evaluate.scorer import ContinuationScorer, _packable
from bench.execute import _kept
from bench.models.load import load_model, resolve_folder
from bench.models.tiny import SHIPPED
from bench.plan import plan
from bench.records.store import ResultStore
from bench.spec import ModelSpec
from bench.suite import parse_suite
from tests.conftest import fast_suite
from tests.synthetic_records import make_record

TOKENIZER = SHIPPED / "tiny-llama"  # a word-level tokenizer.json of 37 tokens
SHAPES = {
    "llama": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64},
    "bloom": {"hidden_size": 32, "n_layer": 1, "n_head": 2},
    "falcon": {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2},
}


def _folder(folder: Path, model_type: str = "llama", weights: bool = True, **config) -> Path:
    """A tiny random model of `model_type` saved with the tiny preset's tokenizer (`weights`: False, the
    config and tokenizer alone, as `model: {config: ...}` takes them)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    made = AutoConfig.for_model(model_type, **{"vocab_size": 37, "pad_token_id": 0, **SHAPES[model_type], **config})
    if weights:
        torch.manual_seed(0)
        AutoModelForCausalLM.from_config(made).save_pretrained(folder)
    else:
        made.save_pretrained(folder)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(TOKENIZER / name, folder / name)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def _key(spec: ModelSpec) -> str:
    loaded = load_model(spec, "cpu", lambda message: None)
    return base_scores_key(loaded.info, [], 8, "cpu", loaded.tokenizer)


# 1. the base scores' key covers the config, tokenizer, chat template and code beside the weights


@pytest.mark.parametrize("source", ["path", "config"])
def test_an_edited_config_json_is_a_new_base_scores_key(source: str, tmp_path: Path):
    folder = _folder(tmp_path / "m", weights=source == "path")
    spec = ModelSpec(**{source: str(folder)})
    before = _key(spec)
    assert _key(spec) == before  # the same folder, the same key
    _edit_config(folder, rms_norm_eps=0.5, hidden_act="relu")
    assert _key(spec) != before


def test_the_files_digest_follows_tokenizer_template_and_code_but_not_a_readme(tmp_path: Path):
    from bench.models.load import FILES_KEY, current_identity

    folder = _folder(tmp_path / "m", weights=False)
    spec = ModelSpec(config=str(folder))
    seen = [current_identity(spec, {})[FILES_KEY]]
    (folder / "README.md").write_text("notes")
    assert current_identity(spec, {})[FILES_KEY] == seen[0]
    for name, text in [("chat_template.jinja", "{{ messages }}"), ("modeling_mine.py", "x = 1")]:
        (folder / name).write_text(text)
        seen.append(current_identity(spec, {})[FILES_KEY])
    tokenizer = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer, "model_max_length": 7}))
    seen.append(current_identity(spec, {})[FILES_KEY])
    seen.append(current_identity(ModelSpec(config=str(folder), chat_template="{{ x }}"), {})[FILES_KEY])
    assert len(set(seen)) == len(seen)


# 2. a stored run of a model that has changed since runs again


def _stored_run(tmp_path: Path, folder: Path) -> tuple[ResultStore, object]:
    spec = plan(parse_suite(fast_suite("mine", ["full"], model={"path": str(folder)})))[0]
    store = ResultStore(tmp_path / "results")
    loaded = load_model(spec.model, "cpu", lambda message: None)
    store.write(make_record("full", 0).model_copy(update={**spec.record_header(), "model": loaded.info}))
    return store, spec


def test_a_stored_run_runs_again_once_its_weights_change(tmp_path: Path, capsys):
    folder = _folder(tmp_path / "m")
    store, spec = _stored_run(tmp_path, folder)
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is not None
    _folder(tmp_path / "other", initializer_range=0.5)  # other weights, the same shape
    shutil.copy(tmp_path / "other" / "model.safetensors", folder / "model.safetensors")
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is None
    said = capsys.readouterr().err
    assert "full seed=0: model changed since its stored run: weights (sha256 " in said and "running it again" in said


def test_a_stored_run_runs_again_once_its_config_changes(tmp_path: Path, capsys):
    folder = _folder(tmp_path / "m")
    store, spec = _stored_run(tmp_path, folder)
    _edit_config(folder, rms_norm_eps=0.5)
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is None
    assert (
        "model changed since its stored run: config, tokenizer, chat template or code files" in capsys.readouterr().err
    )


def test_a_record_from_before_the_files_digest_is_reused_as_before(tmp_path: Path):
    folder = _folder(tmp_path / "m")
    spec = plan(parse_suite(fast_suite("mine", ["full"], model={"path": str(folder)})))[0]
    store = ResultStore(tmp_path / "results")
    store.write(make_record("full", 0).model_copy(update={**spec.record_header(), "model": {"source": "path"}}))
    _edit_config(folder, rms_norm_eps=0.5)
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}) is not None


def _hub_snapshot(cache: Path, source: Path, revision: str) -> Path:
    """`source`'s files as the Hugging Face cache holds revision `revision` of `me/tiny`, refs/main on it."""
    repo = cache / "models--me--tiny"
    snapshot = repo / "snapshots" / revision
    shutil.copytree(source, snapshot)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(revision)
    return snapshot


def test_a_stored_hub_run_runs_again_once_the_cache_holds_another_revision(tmp_path: Path, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # the cache only, as tox runs every test
    _hub_snapshot(tmp_path / "hub", _folder(tmp_path / "m"), "a" * 40)
    spec = plan(parse_suite(fast_suite("mine", ["full"], model={"hub": "me/tiny"})))[0]
    store = ResultStore(tmp_path / "results")
    loaded = load_model(spec.model, "cpu", lambda message: None)
    assert loaded.info["sha256"] and loaded.info["files_sha256"]
    store.write(make_record("full", 0).model_copy(update={**spec.record_header(), "model": loaded.info}))
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is not None
    _hub_snapshot(tmp_path / "hub", _folder(tmp_path / "other", initializer_range=0.5), "b" * 40)  # a newer revision
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}, tell=True) is None
    assert "full seed=0: model changed since its stored run: weights (sha256 " in capsys.readouterr().err
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))  # not cached: nothing to hold it against
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}) is not None


def test_a_stored_preset_run_runs_again_once_the_preset_weights_change(tmp_path: Path, monkeypatch):
    import bench.models.tiny as tiny

    monkeypatch.setattr(tiny, "SHIPPED", tmp_path / "presets")
    shutil.copytree(SHIPPED, tmp_path / "presets")
    spec = plan(parse_suite(fast_suite("mine", ["full"])))[0]
    assert spec.model.preset == "tiny-llama"
    store = ResultStore(tmp_path / "results")
    loaded = load_model(spec.model, "cpu", lambda message: None)
    store.write(make_record("full", 0).model_copy(update={**spec.record_header(), "model": loaded.info}))
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}) is not None
    other = _folder(tmp_path / "other", hidden_size=64, intermediate_size=128)
    shutil.copy(other / "model.safetensors", tmp_path / "presets" / "tiny-llama" / "model.safetensors")
    assert _kept(store, spec, "x86_64-2c-cpu", set(), {}) is None


# 3. ALiBi models score on the plain path, as lm-eval does


def test_alibi_is_told_from_the_config():
    from transformers import AutoConfig

    from bench.evaluate.scorer import uses_alibi

    assert uses_alibi(AutoConfig.for_model("bloom")) and uses_alibi(AutoConfig.for_model("falcon", alibi=True))
    assert uses_alibi(AutoConfig.for_model("mpt", attn_config={"alibi": True}))
    assert not uses_alibi(AutoConfig.for_model("falcon")) and not uses_alibi(AutoConfig.for_model("llama"))


def _requests(vocab: int) -> list:
    generator = torch.Generator().manual_seed(0)
    requests = []
    for item in range(8):
        context = torch.randint(3, vocab, (3 + item,), generator=generator).tolist()
        for choice in range(3):
            continuation = torch.randint(3, vocab, (1 + choice,), generator=generator).tolist()
            requests.append(((f"item {item}", f"choice {choice}"), context, continuation))
    return requests


@pytest.mark.parametrize(("model_type", "config"), [("bloom", {}), ("falcon", {"alibi": True})])
def test_alibi_models_score_as_lm_eval_does(model_type: str, config: dict, tmp_path: Path):
    from lm_eval.models.huggingface import HFLM

    loaded = load_model(ModelSpec(path=str(_folder(tmp_path / "m", model_type, **config))), "cpu", lambda m: None)
    assert not _packable(loaded.model)
    requests = _requests(37)
    reference = HFLM(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=8)._loglikelihood_tokens(requests)
    ours = ContinuationScorer(pretrained=loaded.model, tokenizer=loaded.tokenizer, batch_size=8)
    for (expected, expected_greedy), (got, greedy) in zip(reference, ours._loglikelihood_tokens(requests), strict=True):
        assert got == pytest.approx(expected, rel=1e-5, abs=1e-5) and greedy == expected_greedy


# 4-7. what a folder lacks is told by validate, before any run


def _problems(**model) -> list[str]:
    return name_problems(parse_suite(fast_suite("mine", ["full"], model=model)))


def test_a_tokenizer_larger_than_the_embedding_is_refused_at_validate_and_at_load(tmp_path: Path):
    folder = _folder(tmp_path / "m", vocab_size=20)
    expected = f"the tokenizer of {folder} holds 37 tokens (len(tokenizer)) but the model has 20 embedding rows"
    assert len(_problems(path=str(folder))) == 1 and expected in _problems(path=str(folder))[0]
    assert _problems(path=str(folder))[0].startswith("model.path: ")
    with pytest.raises(ValueError, match="holds 37 tokens .* 20 embedding rows"):
        load_model(ModelSpec(path=str(folder)), "cpu", lambda message: None)
    bigger = _folder(tmp_path / "bigger", vocab_size=64)  # more rows than tokens: padded, fine
    assert _problems(path=str(bigger)) == []
    assert load_model(ModelSpec(path=str(bigger)), "cpu", lambda message: None).info["parameters"] > 0


@pytest.mark.parametrize("source", ["path", "config"])
def test_a_folder_without_a_tokenizer_is_refused_at_validate(source: str, tmp_path: Path):
    folder = _folder(tmp_path / "m", weights=source == "path")
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    files = "tokenizer.json, tokenizer.model, vocab.json, tiktoken.model"
    said = f"model.{source}: {folder} holds no tokenizer file ({files})"
    assert _problems(**{source: str(folder)}) == [said]


def test_a_folder_with_its_own_code_is_refused_at_validate_unless_trusted(tmp_path: Path):
    folder = _folder(tmp_path / "m", weights=False)
    _edit_config(folder, model_type="mytiny", auto_map={"AutoConfig": "configuration_mytiny.MyConfig"})
    [said] = _problems(path=str(folder))
    assert said.startswith("model.trust_remote_code: ") and "set model.trust_remote_code: true" in said
    assert _problems(path=str(folder), trust_remote_code=True) == []


def test_a_path_that_does_not_exist_is_said_so(tmp_path: Path):
    missing = tmp_path / "nowhere"
    assert _problems(path=str(missing)) == [
        f"model.path: {str(missing)!r} is not a transformers model folder (no such folder: {missing})"
    ]
    with pytest.raises(FileNotFoundError, match="no such folder"):
        resolve_folder(ModelSpec(path=str(missing)), print)
    (missing).mkdir()
    assert _problems(path=str(missing))[0].endswith("(no config.json)")


def test_a_config_json_that_is_not_json_is_said_at_validate(tmp_path: Path):
    folder = _folder(tmp_path / "m", weights=False)
    (folder / "config.json").write_text("{not json")
    [said] = _problems(config=str(folder))
    assert said.startswith(f"model.config: {str(folder / 'config.json')!r} is not readable JSON: ")
