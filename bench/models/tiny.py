"""Built-in tiny presets: a locally trained word-level tokenizer and a Llama model pretrained once
on synthetic skills, cached by its recipe so every later run loads it in well under a second.

The pretraining loop below builds the *base model*; it is not a measured strategy, so it does not
go through `bench.train` (which exists to measure fine-tuning).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import random
import shutil
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.tasks.synthetic import build_synthetic, vocabulary_corpus

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]
RECIPE_VERSION = 1  # bump when the pretraining code changes what a preset learns


@dataclass(frozen=True)
class TinyPreset:
    description: str
    hidden_size: int
    layers: int
    heads: int
    biases: bool  # attention and MLP biases, so that BitFit has something to train
    skills: tuple[str, ...]  # synthetic tasks learned in pretraining: the retained skills
    pretrain_steps: int = 1200  # ~30 s on 2 cores; enough for 100% on both skills
    pretrain_batch: int = 32
    pretrain_lr: float = 3e-3
    examples_per_skill: int = 4000
    seed: int = 0


PRESETS: dict[str, TinyPreset] = {
    "tiny-llama": TinyPreset(
        description="88k-parameter Llama (2 layers, width 64, with biases), knows next-letter and copy",
        hidden_size=64,
        layers=2,
        heads=4,
        biases=True,
        skills=("next-letter", "copy"),
    ),
    "tiny-llama-nobias": TinyPreset(
        description="the same without bias terms (BitFit is not applicable)",
        hidden_size=64,
        layers=2,
        heads=4,
        biases=False,
        skills=("next-letter", "copy"),
    ),
}


def cache_root() -> Path:
    """`BENCH_CACHE_DIR` if set, else ~/.cache/fine-tune-bench."""
    return Path(os.environ.get("BENCH_CACHE_DIR") or Path.home() / ".cache" / "fine-tune-bench")


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.decoder = decoders.WordPiece(prefix="##")  # joins words with single spaces
    tokenizer.train_from_iterator(vocabulary_corpus(), trainers.WordLevelTrainer(special_tokens=SPECIAL_TOKENS))
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", unk_token="<unk>", bos_token="<bos>", eos_token="<eos>"
    )


def _config(preset: TinyPreset, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=preset.hidden_size,
        intermediate_size=2 * preset.hidden_size,
        num_hidden_layers=preset.layers,
        num_attention_heads=preset.heads,
        num_key_value_heads=preset.heads,
        vocab_size=len(tokenizer),
        max_position_embeddings=128,
        attention_bias=preset.biases,
        mlp_bias=preset.biases,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
    )


def recipe_key(name: str) -> str:
    recipe = {"preset": asdict(PRESETS[name]), "vocabulary": vocabulary_corpus(), "version": RECIPE_VERSION}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def _pretrain(preset: TinyPreset, folder: Path, report: Callable[[str], None]) -> None:
    import torch
    from transformers import LlamaForCausalLM

    torch.manual_seed(preset.seed)
    tokenizer = build_tokenizer()
    model = LlamaForCausalLM(_config(preset, tokenizer))
    texts = [
        f"{example.prompt} {example.completion}{tokenizer.eos_token}"
        for skill in preset.skills
        for example in build_synthetic(skill, preset.examples_per_skill, 0, seed=preset.seed).train
    ]
    rng = random.Random(preset.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=preset.pretrain_lr)
    model.train()
    for step in range(preset.pretrain_steps):
        batch = tokenizer(rng.sample(texts, preset.pretrain_batch), return_tensors="pt", padding=True)
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step % 200 == 0 or step == preset.pretrain_steps - 1:
            report(f"pretraining base model: step {step + 1}/{preset.pretrain_steps}, loss {loss.item():.3f}")
    model.eval()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "bench-preset.json").write_text(json.dumps(asdict(preset), indent=2))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_preset(name: str, report: Callable[[str], None] = print) -> Path:
    """The cached folder of a pretrained preset, pretraining it first if it is not cached yet."""
    folder = cache_root() / "presets" / f"{name}-{recipe_key(name)}"
    with _locked(folder.with_suffix(".lock")):
        if not (folder / "config.json").exists():
            report(f"building preset {name!r} once; cached at {folder}")
            staging = folder.with_name(folder.name + ".partial")
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            _pretrain(PRESETS[name], staging, report)
            staging.rename(folder)
    return folder
