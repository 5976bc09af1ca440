"""BitFit (Ben Zaken et al. 2022): only the bias terms train; everything else is frozen.

A model without bias terms (Llama without attention_bias/mlp_bias: RMSNorm has none) raises
NotApplicable, so the run is recorded as skipped instead of training nothing. The updated biases
live inside the model, so what is stored per task is the whole (merged) model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from bench.strategies.base import (
    LearningRate,
    NotApplicable,
    PrepareContext,
    StrategyOptions,
    freeze_all,
    load_whole_model,
    save_whole_model,
)


class Options(StrategyOptions):
    learning_rate: LearningRate = 1e-3  # BitFit paper swept 1e-4..1e-3 for BERT; biases need a high rate


class BitFit:
    objective: ClassVar = "sft"
    Options: ClassVar = Options

    def prepare(self, model: Any, options: Options, context: PrepareContext) -> Any:
        biases = [parameter for name, parameter in model.named_parameters() if name.endswith(".bias")]
        if not biases:
            raise NotApplicable("model has no bias terms")
        freeze_all(model)
        for parameter in biases:
            parameter.requires_grad_(True)
        return model

    def save(self, model: Any, directory: Path) -> None:
        save_whole_model(model, directory)

    def load(self, base_model: Any, directory: Path) -> Any:
        return load_whole_model(base_model, directory)


STRATEGY = BitFit()
