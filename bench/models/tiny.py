"""Built-in tiny presets: a word-level tokenizer and a Llama model pretrained on synthetic skills.

The weights the recipe below produced are SHIPPED in `bench/models/presets/<name>/` (about 350 KB
each), because pretraining is not bit-reproducible across CPUs: the same recipe and seed gave
different weights on an AMD EPYC and an Intel Xeon (different SIMD paths sum in different orders,
and one ulp early in training becomes different weights). Shipping them makes the base model the
same file, with the same sha256, on every machine; `tests/test_presets.py` pins it.

The recipe stays here, both as the record of how the weights were made and to rebuild them:
`python -m bench.models.tiny build` writes new folders (then update the pins in the test). A
preset whose shipped folder does not match the current recipe is built locally into the cache,
with a warning that its weights are machine-specific.

The pretraining loop builds the *base model*; it is not a measured strategy, so it does not go
through `bench.training.train` (which exists to measure fine-tuning).
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.models.cache import cache_root, file_sha256, locked
from bench.tasks.synthetic import build_synthetic, vocabulary_corpus

SPECIAL_TOKENS = ["<pad>", "<unk>", "<bos>", "<eos>"]
RECIPE_VERSION = 1  # bump when the pretraining code changes what a preset learns
SHIPPED = Path(__file__).resolve().parent / "presets"


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


def shipped_folder(name: str) -> Path:
    return SHIPPED / name


def shipped_recipe_key(name: str) -> str | None:
    """The recipe key the shipped weights were built with, or None when none are shipped."""
    marker = shipped_folder(name) / "bench-preset.json"
    if not marker.exists():
        return None
    return json.loads(marker.read_text()).get("recipe_key")


def build_preset(name: str, folder: Path, report: Callable[[str], None] = print) -> Path:
    """Pretrain a preset into `folder` (staged, then renamed, so a crash leaves nothing half-written)."""
    staging = folder.with_name(folder.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    _pretrain(PRESETS[name], staging, report)
    (staging / "bench-preset.json").write_text(
        json.dumps({"recipe_key": recipe_key(name), **asdict(PRESETS[name])}, indent=2) + "\n"
    )
    shutil.rmtree(folder, ignore_errors=True)
    staging.rename(folder)
    return folder


def _preset_folder(name: str) -> Path:
    """Where a preset's weights are: the shipped ones when they match the recipe, else a local build's."""
    if shipped_recipe_key(name) == recipe_key(name):
        return shipped_folder(name)
    return cache_root() / "presets" / f"{name}-{recipe_key(name)}"


def built_preset_folder(name: str) -> Path | None:
    """The folder ensure_preset would load from, where it is there without building it."""
    folder = _preset_folder(name)
    return folder if (folder / "config.json").is_file() else None


def ensure_preset(name: str, report: Callable[[str], None] = print) -> Path:
    """The folder of a preset: the shipped weights when they match the recipe, else a local build."""
    folder = _preset_folder(name)
    if folder == shipped_folder(name):
        return folder
    with locked(folder.with_suffix(".lock")):
        if not (folder / "config.json").exists():
            report(
                f"preset {name!r}: the shipped weights do not match the current recipe, so it is built "
                f"locally (its weights are specific to this CPU); cached at {folder}. "
                "Ship it with `python -m bench.models.tiny build`."
            )
            build_preset(name, folder, report)
    return folder


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.models.tiny", description="rebuild the shipped presets")
    parser.add_argument("command", choices=["build"])
    parser.add_argument("names", nargs="*", help=f"presets to build (default: all of {', '.join(PRESETS)})")
    parser.add_argument("--out", type=Path, default=SHIPPED, help="where to write <name>/ (default: the package)")
    args = parser.parse_args(argv)

    for name in args.names or list(PRESETS):
        folder = build_preset(name, args.out / name)
        weights = file_sha256(folder / "model.safetensors")
        print(f"{name}: {folder} model.safetensors sha256 {weights}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
