"""Full fine-tuning: every parameter trains; the whole model is stored per task."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from bench.strategies.base import LearningRate, PrepareContext, StrategyOptions, load_whole_model, save_whole_model


class Options(StrategyOptions):
    learning_rate: LearningRate = 2e-5  # usual for full SFT of pretrained LMs


class FullFineTuning:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        for parameter in model.parameters():
            parameter.requires_grad_(True)
        return model

    def save(self, model: Any, directory: Path) -> None:
        save_whole_model(model, directory)

    def load(self, base_model: Any, directory: Path) -> Any:
        return load_whole_model(base_model, directory)


STRATEGY = FullFineTuning()
