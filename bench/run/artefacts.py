"""What `bench run --keep-artefacts` leaves beside a run's record, for a user to take away:

    <results>/<suite>/<machine>/artefacts/<run_id>/
        model/        the adapter (PEFT save_pretrained) or the whole model (transformers)
        tokenizer/    the tokenizer the run used
        tasks/        the lm-eval task files (YAML + JSONL) the run was scored on
        reproduce.sh  lm-eval's own CLI on those, which reproduces the record's accuracy
        reproduce_base.sh  the same on the base model alone: the record's accuracy_before

Both scripts change to their own folder and name the model, tokenizer and tasks relative to it (the task
files name their data, kept in tasks/, relative to it too), so the folder can be moved. The base model is
`BASE=${BASE:-<where the run found it>}`, with a comment naming it and its sha256, for a user to point at
their copy. Arguments given to a script (`--output_path DIR`) are passed on to lm-eval.

Generative tasks are scored with bench's answer filter, so their command is lm-eval's CLI started by
`python -m bench.evaluate.lm_eval_cli` (the filter registered, the arguments lm-eval's): it needs bench
installed where it runs. Their task files hold the contexts as the run rendered them (chat template
applied where the run applied it), so no `--apply_chat_template` is given.
A run chained after another (`start_from`) trained its adapter on the parent's merged model, kept in
bench's artefact cache (`$BENCH_CACHE_DIR/artefacts/<parent run_id>`): that folder is the command's base.
A bottleneck adapter (hand-written, not PEFT, though its options file is also named
adapter_config.json), selective tuning's trained blocks, BitFit's biases, QLoRA's 4-bit base and an
adapter on a hub model (no folder, no recorded revision) have no lm-eval CLI equivalent: their
reproduce.sh says so, and why (reproduce_line), instead of a command; reproduce_base.sh does where the base
is not known (random weights, a hub model without a recorded revision, a chained run's parent).
"""

from __future__ import annotations

import json
import os
import re
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


BASE = "${BASE}"  # the base model in a script's lm-eval line: `BASE=${BASE:-<where the run found it>}` above it


def lm_eval_command(
    folder: Path, tasks: list[Any], model_info: dict[str, Any], batch_size: int, dtype: str, base: str | None = None
) -> str | None:
    """The lm-eval CLI line that scores the kept model as the run did, or None where none can (reproduce_line
    says why). `base`: the model an adapter was trained on when it is not the suite's model (a run chained
    after another with `start_from` trains on the parent's merged model, bench/run/alignment.py)."""
    return reproduce_line(folder, tasks, model_info, batch_size, dtype, base)[0]


def model_arguments(folder: Path, model_info: dict[str, Any], base: str | None) -> tuple[str | None, str]:
    """lm-eval's `--model_args` naming the kept model relative to its folder (`model`, reproduce.sh runs
    there) and an adapter's base as `${BASE}` (base_model gives its default), or None and why there are none."""
    model = folder / "model"
    if (model / QUANTIZATION).exists():
        return None, "QLoRA trained on a 4-bit base that bench quantises itself; lm-eval's CLI cannot re-quantise it"
    if not _is_peft_adapter(model):
        if (model / "config.json").exists():
            return "pretrained=model", ""
        return None, _not_loadable(model)
    where, why = base_model(model_info, base)
    if where is None:
        return None, why
    return f"{base_arguments(model_info, base)},peft=model", ""


def base_model(model_info: dict[str, Any], base: str | None) -> tuple[str | None, str]:
    """The model the run trained on as lm-eval's `pretrained=` names it (a folder, or a hub id whose snapshot
    the record names), or None and why lm-eval cannot load it. `base`: a chained run's parent model."""
    if base is not None and base != model_info.get("folder"):
        if not Path(base, "config.json").is_file():
            return None, f"the adapter was trained on its parent run's merged model, no longer at {base}"
        return base, ""
    base = model_info.get("folder")
    if not base:
        return None, "the record names no base model folder for the adapter"
    if model_info.get("source") == "config":
        return None, "the base model has random weights (model.config), saved nowhere lm-eval could load them"
    if not Path(base).is_dir():
        if model_info.get("source") == "hub":
            if model_info.get("revision"):  # the snapshot the run loaded: lm-eval loads the same one
                return base, ""
            return None, f"the base model is the hub model {base}, not a folder, and the record names no revision"
        return None, f"the base model folder {base} is not there"
    return base, ""


def base_arguments(model_info: dict[str, Any], base: str | None) -> str:
    """`pretrained=${BASE}`, with the hub snapshot's revision where the base is the record's hub model."""
    chained = base is not None and base != model_info.get("folder")
    revision = model_info.get("revision") if model_info.get("source") == "hub" and not chained else None
    if revision and not Path(str(model_info.get("folder"))).is_dir():
        return f"pretrained={BASE},revision={revision}"
    return f"pretrained={BASE}"


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
    """(the lm-eval CLI line that scores the kept model as the run did, ""), or (None, why there is none).
    Its paths are relative to the kept folder (reproduce.sh changes to it); an adapter's base is `${BASE}`."""
    arguments, why = model_arguments(folder, model_info, base)
    if arguments is None:
        return None, why
    return scoring_line(arguments, tasks, model_info, batch_size, dtype), ""


def scoring_line(arguments: str, tasks: list[Any], model_info: dict[str, Any], batch_size: int, dtype: str) -> str:
    """lm-eval's CLI on `--model_args` arguments (with the kept tokenizer) and the kept tasks, run in the kept
    folder; extra arguments given to the script (`--output_path DIR`) are passed on."""
    arguments += f",tokenizer=tokenizer,dtype={dtype}"
    if model_info.get("trust_remote_code"):  # the suite trusted the model folder's own code
        arguments += ",trust_remote_code=True"
    names = ",".join(lmeval_task_name(task) for task in tasks)
    generative = any(getattr(task, "generative", False) for task in tasks)
    program = ["python", "-m", "bench.evaluate.lm_eval_cli"] if generative else ["lm_eval"]
    head = shlex.join([*program, "--model", "hf", "--model_args"])
    tail = shlex.join(["--tasks", names, "--include_path", "tasks", "--batch_size", str(batch_size)])
    return f'{head} {_double_quoted(arguments)} {tail} --device cpu "$@"'


def _double_quoted(text: str) -> str:
    """text as one shell word in double quotes, `${BASE}` expanded and nothing else."""
    parts = [re.sub(r'([\\"$`])', r"\\\1", part) for part in text.split(BASE)]
    return '"' + BASE.join(parts) + '"'


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
    """The task files the run was scored on, reproduce.sh with the command for the record's accuracy and
    reproduce_base.sh with the one for its `accuracy_before` (or why there is none), movable with the folder."""
    write_tasks(tasks, folder / "tasks", tokenizer, root=folder)
    base = None
    parent = getattr(spec, "parent", None)
    if parent:  # trained on the parent's merged model, kept in bench's artefact cache
        from bench.run.alignment import artefact_folder

        base = str(artefact_folder(parent["run_id"], model_info, parent.get("strategy")))
    batch, dtype = spec.measure.eval_batch_size, spec.model.dtype
    command, why = reproduce_line(folder, tasks, model_info, batch, dtype, base)
    where = base or model_info.get("folder")
    write_script(
        folder / "reproduce.sh",
        f"accuracy as in the record {spec.run_id}.json",
        command,
        why,
        base_note(model_info, parent, where),
    )
    command = None
    if parent:
        why = (
            f"the run was chained after run {parent['run_id']}: its base scores are its parent's merged model's;"
            " that run's reproduce.sh scores it"
        )
    else:
        where, why = base_model(model_info, None)
        if where is not None:
            command = scoring_line(base_arguments(model_info, None), tasks, model_info, batch, dtype)
    write_script(
        folder / "reproduce_base.sh",
        f"accuracy_before.* as in the record {spec.run_id}.json",
        command,
        why,
        base_note(model_info, None, where),
    )


def base_note(model_info: dict[str, Any], parent: dict[str, Any] | None, where: str | None) -> tuple[str, str]:
    """(a comment naming the base model, the default of `BASE`): which model, and its sha256, so a user on
    another machine points BASE at their copy."""
    if parent:
        what = f"run {parent['run_id']}'s merged model ({parent.get('label', 'the parent run')}), in bench's cache"
    else:
        name, source = model_info.get("name") or where, model_info.get("source", "?")
        what = f"{name} (model.{source}), sha256 {model_info.get('sha256') or 'not recorded'}"
        if revision := model_info.get("revision"):
            what += f", hub revision {revision}"
    return f"# BASE: the base model, {what}; set BASE to your copy of it", str(where or "")


def write_script(path: Path, what: str, command: str | None, why: str, base: tuple[str, str]) -> None:
    """A bash script that runs `command` in its own folder (so the folder can be moved), or says why there
    is none and exits 1."""
    lines = ["#!/usr/bin/env bash", f"# {what}; paths are relative to this folder, which can be moved"]
    if command is None:
        lines.append(f"echo {shlex.quote(f'this artefact has no lm-eval CLI equivalent: {why}')} >&2; exit 1")
    else:
        if BASE in command:
            comment, default = base
            if default and not Path(default).is_absolute() and Path(default).is_dir():  # relative to where bench ran
                default = os.path.relpath(Path(default).resolve(), path.parent.resolve())
            lines += [
                comment,
                '[ -n "${BASE:-}" ] && [ -d "$BASE" ] && BASE=$(cd "$BASE" && pwd)  # yours: relative to where you are',
                'cd "$(dirname "$0")" || exit 1',
                f"BASE=${{BASE:-{shlex.quote(default)}}}  # the run's: absolute, or relative to this folder",
            ]
        else:
            lines.append('cd "$(dirname "$0")" || exit 1')
        lines.append(command)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o755)
