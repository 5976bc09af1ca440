"""Selective fine-tuning: only the last N transformer blocks train; the rest is frozen.

What must be stored per task is only those blocks: save() writes the trainable tensors and the
options; load() puts them back into a fresh base model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from bench.spec import PositiveInt
from bench.strategies.base import LearningRate, PrepareContext, Sizing, StrategyOptions, freeze_all, size_by_trial

WEIGHTS, CONFIG = "trained_blocks.safetensors", "freeze_config.json"


class Options(StrategyOptions):
    learning_rate: LearningRate = 2e-5  # as full SFT: the trained blocks are ordinary weights
    last_n_blocks: PositiveInt = 1  # the blocks nearest the output adapt most to a new task


def blocks(model: Any) -> Any:
    """The model's stack of transformer blocks: the ModuleList as long as config.num_hidden_layers."""
    from torch import nn

    count = model.config.num_hidden_layers
    for _, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise ValueError(f"freeze: no list of {count} blocks found in {type(model).__name__}")


class SelectiveFineTuning:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        stack = blocks(model)
        if options.last_n_blocks > len(stack):
            raise ValueError(f"freeze: last_n_blocks={options.last_n_blocks} but the model has {len(stack)} blocks")
        freeze_all(model)
        for block in stack[len(stack) - options.last_n_blocks :]:
            for parameter in block.parameters():
                parameter.requires_grad_(True)
        model.bench_freeze_options = options
        return model

    def save(self, model: Any, directory: Path) -> None:
        from safetensors.torch import save_file

        directory.mkdir(parents=True, exist_ok=True)
        weights = {name: p.detach().contiguous() for name, p in model.named_parameters() if p.requires_grad}
        save_file(weights, str(directory / WEIGHTS))
        (directory / CONFIG).write_text(model.bench_freeze_options.model_dump_json(indent=2))

    def load(self, base_model: Any, directory: Path) -> Any:
        from safetensors.torch import load_file

        options = Options.model_validate(json.loads((directory / CONFIG).read_text()))
        model = self.prepare(base_model, options, None)
        model.load_state_dict(load_file(str(directory / WEIGHTS)), strict=False)
        return model

    def size_for(self, model: Any, options: Options, target: int, context: PrepareContext) -> Sizing:
        return size_by_trial(self, model, options, context, "last_n_blocks", target, upper=len(blocks(model)))


STRATEGY = SelectiveFineTuning()
