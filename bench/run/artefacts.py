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
A run chained after another (`start_from`) trained its adapter on the parent's merged model, kept in
bench's artefact cache (`$BENCH_CACHE_DIR/artefacts/<parent run_id>`): that folder is the command's base.
A bottleneck adapter (hand-written, not PEFT, though its options file is also named
adapter_config.json), selective tuning's trained blocks and QLoRA's 4-bit base have no lm-eval CLI
equivalent: their reproduce.sh says so instead of a command.
"""

from __future__ import annotations

import json
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
    folder: Path, tasks: list[Any], model_info: dict[str, Any], batch_size: int, dtype: str, base: str | None = None
) -> str | None:
    """The lm-eval CLI line that scores the kept model as the run did, or None where none can. `base`: the
    model an adapter was trained on when it is not the suite's model (a run chained after another with
    `start_from` trains on the parent's merged model, bench/run/alignment.py)."""
    model = folder / "model"
    if (model / "bench_quantization.json").exists():
        return None  # QLoRA: the base must be re-quantised as the run did; lm-eval's CLI cannot
    if _is_peft_adapter(model):
        if base is not None and not Path(base, "config.json").is_file():
            return None  # the parent's model is not where the run left it
        base = base or model_info.get("folder")
        chained = base != model_info.get("folder")
        if not base or (model_info.get("source") == "config" and not chained) or not Path(base).is_dir():
            return None  # random weights (model.config) or a hub model: no base folder to name
        arguments = f"pretrained={base},peft={model}"
    elif (model / "config.json").exists():
        arguments = f"pretrained={model}"
    else:
        return None  # a hand-written bottleneck adapter, trained blocks or biases: bench loads them, lm-eval cannot
    arguments += f",tokenizer={folder / 'tokenizer'},dtype={dtype}"
    if model_info.get("trust_remote_code"):  # the suite trusted the model folder's own code
        arguments += ",trust_remote_code=True"
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


def _is_peft_adapter(model: Path) -> bool:
    """A PEFT adapter folder: its adapter_config.json names a `peft_type`. The bottleneck adapter writes
    its own options under the same file name, which PEFT (so lm-eval's `peft=`) cannot load."""
    config = model / "adapter_config.json"
    if not config.is_file():
        return False
    try:
        return "peft_type" in json.loads(config.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False


def keep_scoring_tasks(folder: Path, tasks: list[Any], model_info: dict[str, Any], spec: Any, tokenizer: Any) -> None:
    """The task files the run was scored on, and reproduce.sh with the command (or why there is none)."""
    write_tasks(tasks, folder / "tasks", tokenizer)
    base = None
    if getattr(spec, "parent", None):  # trained on the parent's merged model, kept in bench's artefact cache
        from bench.run.alignment import artefact_folder

        base = str(artefact_folder(spec.parent["run_id"], model_info))
    command = lm_eval_command(folder, tasks, model_info, spec.measure.eval_batch_size, spec.model.dtype, base)
    body = command or "echo 'this artefact has no lm-eval CLI equivalent (see bench/run/artefacts.py)'; exit 1"
    script = folder / "reproduce.sh"
    script.write_text(f"#!/usr/bin/env bash\n# accuracy as in the record {spec.run_id}.json\n{body}\n")
    script.chmod(0o755)
