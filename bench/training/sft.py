"""Supervised fine-tuning's trainer: TRL's SFTTrainer (its data handling) made lean where TRL spends time
per step that a benchmark must not count; the objective "sft" of bench.training.train."""

from __future__ import annotations

from typing import Any

from bench.spec import Budget
from bench.tasks.base import TaskData, completion_join


def _lean_sft_trainer_class() -> type:
    """TRL's SFTTrainer (its data handling: completion-only labels, truncation, collation) with the
    model's own loss instead of TRL's fused head, which also computes entropy and top-1 hits over the
    vocabulary and syncs three metrics to the host every step (TRL 1.16 cannot switch them off).
    The loss is the same sum over completion tokens divided by their count; it cost 0.3-0.5 ms a
    step on the smoke suite. Also: each epoch's batches made before its steps (bench/training/batches.py),
    clipping and the FLOP estimate without a walk of every module each step. Every change keeps the
    loss curve bit-identical (docs/performance.md)."""
    import torch
    from accelerate.utils import DistributedType
    from transformers import Trainer
    from trl import SFTTrainer

    from bench.training.batches import MadeAhead

    class LeanSFTTrainer(SFTTrainer):
        make_batches_ahead = True  # bench/training/batches.py; off: each batch made inside its step

        def get_train_dataloader(self):
            loader = super().get_train_dataloader()
            if not self.make_batches_ahead:
                return loader
            self.batches_made_ahead = MadeAhead(loader, self.args.max_steps * self.args.gradient_accumulation_steps)
            return self.batches_made_ahead

        def _prepare_dataset(self, dataset, processing_class, args, packing, *rest, **kwargs):
            """TRL's preparation, and beside it how many rows seq_len truncated and how many TRL then
            dropped (left with no token that carries the loss): prepared once more without the limit."""
            prepared = super()._prepare_dataset(dataset, processing_class, args, packing, *rest, **kwargs)
            if args.max_length is None or packing or "input_ids" in (getattr(dataset, "column_names", None) or []):
                return prepared
            limit, args.max_length = args.max_length, None
            try:
                full = super()._prepare_dataset(dataset, processing_class, args, packing, *rest, **kwargs)
            finally:
                args.max_length = limit
            lengths = [len(ids) for ids in full["input_ids"]]
            self.truncation = {
                "seq_len": limit,
                "rows": len(lengths),
                "truncated": sum(length > limit for length in lengths),
                "dropped": len(lengths) - len(prepared),
                "longest": max(lengths, default=0),
            }
            batch = args.per_device_train_batch_size * args.world_size
            if len(prepared) < batch:  # the loader drops a partial batch: no step, and no throughput to divide by
                raise ValueError(
                    f"{len(prepared)} of {len(lengths)} training rows left after truncation to budget.seq_len "
                    f"{limit} ({self.truncation['dropped']} dropped: no token left that carries the loss), fewer "
                    f"than budget.batch_size {batch}: no training step; raise budget.seq_len or shorten the rows"
                )
            return prepared

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

        def floating_point_ops(self, inputs):
            """Trainer's estimate, 6 x input tokens x non-embedding parameters, with the parameters
            counted once: transformers walks every parameter for it in every step."""
            main = getattr(self.model, "main_input_name", "input_ids")
            if main not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            if getattr(self, "_non_embedding_parameters", None) is None:
                self._non_embedding_parameters = self.model.num_parameters(exclude_embeddings=True)
            return 6 * inputs[main].numel() * self._non_embedding_parameters

        def _clip_grad_norm(self, model):
            """One process, no loss scaler: torch's clipping itself, which accelerate ends in too after
            walking every parameter twice for DTensor meshes (0.3-0.5 ms a step on tiny-llama), over the
            trained parameters listed once rather than a walk of every module each step (LoRA adds many)."""
            if self.accelerator.distributed_type != DistributedType.NO or self.accelerator.scaler is not None:
                return super()._clip_grad_norm(model)
            if getattr(self, "_trained", None) is None:  # frozen weights have no gradient; model order kept
                self._trained = [parameter for parameter in model.parameters() if parameter.requires_grad]
            return torch.nn.utils.clip_grad_norm_(self._trained, self.args.max_grad_norm)

    return LeanSFTTrainer


def _prompt_completion(prompt: str, completion: str) -> dict[str, str]:
    """A string prompt-completion row as TRL reads it: TRL joins the two as they are, so the completion
    starts with the space between them unless either side already has whitespace there (a row written
    TRL's way, `" blue."`, is left as it is rather than given a second space)."""
    return {"prompt": prompt, "completion": completion_join(prompt, completion) + completion}


def sft_trainer(model: Any, tokenizer: Any, task: TaskData, arguments: dict[str, Any], budget: Budget, **_: Any):
    from datasets import Dataset
    from trl import SFTConfig

    rows = [example.row or _prompt_completion(example.prompt, example.completion) for example in task.train]
    data_format, loss = task.info.get("format", "prompt-completion"), task.info.get("loss", "completion")
    if data_format.startswith("conversational") and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"model {getattr(tokenizer, 'name_or_path', '') or '?'!r} has no chat template, and task {task.name!r}"
            f" has {data_format} rows: give one with the suite's model.chat_template"
        )
    losses = {"completion_only_loss": loss == "completion"}
    if loss == "assistant":  # the tokens of the assistant turns (TRL renders the template's generation marks)
        losses["assistant_only_loss"] = True
    config = SFTConfig(**arguments, max_length=budget.seq_len, packing=False, **losses)
    trainer_class = _lean_sft_trainer_class()
    return trainer_class(model=model, args=config, train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
