"""BitFit (Ben Zaken et al. 2022): only the bias terms train; everything else is frozen.

A model without bias terms (Llama without attention_bias/mlp_bias: RMSNorm has none) raises
NotApplicable, so the run is recorded as skipped instead of training nothing. What a task must store
beside the shared base model is its biases alone (the paper's point: 0.1% of the parameters), so that is
what save() writes and storage.bytes counts; load() puts them back into a fresh base model. (The whole
model was stored before: a BitFit run's storage was full fine-tuning's.)
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
    load_trained_parameters,
    save_trained_parameters,
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
        save_trained_parameters(model, directory)

    def load(self, base_model: Any, directory: Path) -> Any:
        return load_trained_parameters(base_model, directory)


STRATEGY = BitFit()
