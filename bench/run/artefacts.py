"""What `bench run --keep-artefacts` leaves beside a run's record, for a user to take away:

    <results>/<suite>/<machine>/artefacts/<run_id>/
        model/        the adapter (PEFT save_pretrained) or the whole model (transformers)
        tokenizer/    the tokenizer the run used
        tasks/        the lm-eval task files (YAML + JSONL) the run was scored on
        reproduce.sh  lm-eval's own CLI on those, which reproduces the record's accuracy

Generative tasks are scored with bench's answer filter, so their command is lm-eval's CLI started by
`python -m bench.evaluate.lm_eval_cli` (the filter registered, the arguments lm-eval's): it needs bench
installed where it runs. Their task files hold the contexts as the run rendered them (chat template
applied where the run applied it), so no `--apply_chat_template` is given.
A bottleneck adapter (hand-written, not PEFT) and QLoRA's 4-bit base have no lm-eval CLI
equivalent: their reproduce.sh says so instead of a command.
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path
from typing import Any

from bench.evaluate.accuracy import lmeval_task_name, write_tasks


def keep_model(folder: Path, strategy: Any, model: Any, tokenizer: Any) -> Path:
    """Save the trained model into folder/model (replacing an earlier attempt's) and the tokenizer."""
    target = folder / "model"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    strategy.save(model, target)
    tokenizer.save_pretrained(folder / "tokenizer")
    return target


def lm_eval_command(
    folder: Path, tasks: list[Any], model_info: dict[str, Any], batch_size: int, dtype: str
) -> str | None:
    """The lm-eval CLI line that scores the kept model as the run did, or None where none can."""
    model = folder / "model"
    if (model / "bench_quantization.json").exists():
        return None  # QLoRA: the base must be re-quantised as the run did; lm-eval's CLI cannot
    if (model / "adapter_config.json").exists():
        base = model_info.get("folder")
        if not base or model_info.get("source") == "config" or not Path(base).is_dir():
            return None  # random weights (model.config) or a hub model: no base folder to name
        arguments = f"pretrained={base},peft={model}"
    elif (model / "config.json").exists():
        arguments = f"pretrained={model}"
    else:
        return None  # a hand-written bottleneck adapter: bench loads it, lm-eval cannot
    arguments += f",tokenizer={folder / 'tokenizer'},dtype={dtype}"
    names = ",".join(lmeval_task_name(task) for task in tasks)
    generative = any(getattr(task, "generative", False) for task in tasks)
    program = ["python", "-m", "bench.evaluate.lm_eval_cli"] if generative else ["lm_eval"]
    return shlex.join(
        [
            *program,
            "--model",
            "hf",
            "--model_args",
            arguments,
            "--tasks",
            names,
            "--include_path",
            str(folder / "tasks"),
            "--batch_size",
            str(batch_size),
            "--device",
            "cpu",
        ]
    )


def keep_scoring_tasks(folder: Path, tasks: list[Any], model_info: dict[str, Any], spec: Any, tokenizer: Any) -> None:
    """The task files the run was scored on, and reproduce.sh with the command (or why there is none)."""
    write_tasks(tasks, folder / "tasks", tokenizer)
    command = lm_eval_command(folder, tasks, model_info, spec.measure.eval_batch_size, spec.model.dtype)
    body = command or "echo 'this artefact has no lm-eval CLI equivalent (see bench/run/artefacts.py)'; exit 1"
    script = folder / "reproduce.sh"
    script.write_text(f"#!/usr/bin/env bash\n# accuracy as in the record {spec.run_id}.json\n{body}\n")
    script.chmod(0o755)
