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
adapter_config.json), selective tuning's trained blocks, BitFit's biases, QLoRA's 4-bit base and an
adapter on a hub model (no folder, no recorded revision) have no lm-eval CLI equivalent: their
reproduce.sh says so, and why (reproduce_line), instead of a command.
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

from bench.evaluate.accuracy import lmeval_task_name, write_tasks
from bench.strategies.base import TRAINED_WEIGHTS
from bench.strategies.freeze import CONFIG as FREEZE_CONFIG
from bench.strategies.qlora import QUANTIZATION


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
    """The lm-eval CLI line that scores the kept model as the run did, or None where none can (reproduce_line
    says why). `base`: the model an adapter was trained on when it is not the suite's model (a run chained
    after another with `start_from` trains on the parent's merged model, bench/run/alignment.py)."""
    return reproduce_line(folder, tasks, model_info, batch_size, dtype, base)[0]


def model_arguments(folder: Path, model_info: dict[str, Any], base: str | None) -> tuple[str | None, str]:
    """lm-eval's `--model_args` naming the kept model (and its base), or None and why there are none."""
    model = folder / "model"
    if (model / QUANTIZATION).exists():
        return None, "QLoRA trained on a 4-bit base that bench quantises itself; lm-eval's CLI cannot re-quantise it"
    if not _is_peft_adapter(model):
        if (model / "config.json").exists():
            return f"pretrained={model}", ""
        return None, _not_loadable(model)
    if base is not None and not Path(base, "config.json").is_file():
        return None, f"the adapter was trained on its parent run's merged model, no longer at {base}"
    base = base or model_info.get("folder")
    chained = base != model_info.get("folder")
    if not base:
        return None, "the record names no base model folder for the adapter"
    if model_info.get("source") == "config" and not chained:
        return None, "the base model has random weights (model.config), saved nowhere lm-eval could load them"
    if not Path(base).is_dir():
        if model_info.get("source") == "hub" and not chained:
            if revision := model_info.get("revision"):  # the snapshot the run loaded: lm-eval loads the same one
                return f"pretrained={base},revision={revision},peft={model}", ""
            return None, f"the base model is the hub model {base}, not a folder, and the record names no revision"
        return None, f"the base model folder {base} is not there"
    return f"pretrained={base},peft={model}", ""


def _not_loadable(model: Path) -> str:
    """Why a kept model that is neither PEFT's nor a whole model has no lm-eval line (bench's Strategy.load
    rebuilds each on the base model)."""
    if (model / "adapter_config.json").is_file():
        return "a bottleneck adapter is bench's own, not PEFT's: lm-eval's peft= cannot load it"
    if (model / FREEZE_CONFIG).is_file():
        return "selective tuning (freeze) keeps only its trained blocks, which lm-eval cannot load into the base"
    if (model / TRAINED_WEIGHTS).is_file():
        return "only the trained parameters (BitFit: the biases) are kept, which lm-eval cannot load into the base"
    return "the kept model is neither a whole model nor a PEFT adapter"


def reproduce_line(
    folder: Path, tasks: list[Any], model_info: dict[str, Any], batch_size: int, dtype: str, base: str | None = None
) -> tuple[str | None, str]:
    """(the lm-eval CLI line that scores the kept model as the run did, ""), or (None, why there is none)."""
    arguments, why = model_arguments(folder, model_info, base)
    if arguments is None:
        return None, why
    arguments += f",tokenizer={folder / 'tokenizer'},dtype={dtype}"
    if model_info.get("trust_remote_code"):  # the suite trusted the model folder's own code
        arguments += ",trust_remote_code=True"
    names = ",".join(lmeval_task_name(task) for task in tasks)
    generative = any(getattr(task, "generative", False) for task in tasks)
    program = ["python", "-m", "bench.evaluate.lm_eval_cli"] if generative else ["lm_eval"]
    command = shlex.join(
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
    return command, ""


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

        base = str(artefact_folder(spec.parent["run_id"], model_info, spec.parent.get("strategy")))
    command, why = reproduce_line(folder, tasks, model_info, spec.measure.eval_batch_size, spec.model.dtype, base)
    body = command or f"echo {shlex.quote(f'this artefact has no lm-eval CLI equivalent: {why}')} >&2; exit 1"
    script = folder / "reproduce.sh"
    script.write_text(f"#!/usr/bin/env bash\n# accuracy as in the record {spec.run_id}.json\n{body}\n")
    script.chmod(0o755)
