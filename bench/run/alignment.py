"""The worker's alignment hooks: preference data, the chained sft parent and the alignment metrics
(a two-phase method's per-phase training figures are the Recorder's, bench/run/recorder.py). Kept
apart from bench.run.worker so that file stays one readable page.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from bench.measure.memory import MemoryTracker
from bench.run.recorder import Recorder


def load_preference_data(run: Recorder) -> Any:
    """The run's preference pairs, or None when the run has none (an sft run of a suite without them)."""
    from bench.tasks.preference import load_preference

    spec = run.spec
    if spec.preference is None:
        return None
    data = held_out_only(load_preference(spec.preference, spec.task.name, spec.seed))
    run.budget["preference"] = {"source": data.source, "train_pairs": len(data.train), "heldout": len(data.heldout)}
    # distinct pairs among those scored: a file may repeat one pair, and align.* count each copy
    run.budget["preference"]["heldout_distinct"] = data.heldout_distinct
    if data.heldout_dropped:
        run.budget["preference"]["heldout_dropped_as_training_pairs"] = data.heldout_dropped
    # held-out prompts, and those training also has: 0 for a file (split by prompt), not for pairs from a task
    run.budget["preference"]["heldout_prompts"] = data.heldout_prompts
    run.budget["preference"]["heldout_prompts_in_training"] = data.heldout_prompts_in_training
    if spec.preference.jsonl:  # a file's format (pairs built from a task are always standard)
        run.budget["preference"]["format"] = data.format
    return data


def held_out_only(data: Any) -> Any:
    """The pairs with every held-out pair that is also a training pair (same prompt, chosen and rejected)
    left out, so the align.* metrics score pairs the model never trained on, and the held-out prompts that
    training also has counted (bench/tasks/preference.py:drop_trained, which `bench validate` runs per seed
    too). A file's pairs are split by prompt, so none of its held-out pairs or prompts is trained on; pairs
    built from a task with few prompts repeat often (cipher, 1000 + 100 pairs: 75 of the 100 held-out pairs,
    every held-out prompt). `heldout_dropped` counts the pairs left out; none left is an error."""
    from bench.tasks.preference import drop_trained

    return drop_trained(data)


def artefact_folder(run_id: str, model_info: dict[str, Any] | None = None, strategy: str | None = None) -> Path:
    """Where the merged model of a parent run is cached: its run id (the spec), and, from `model_info` (the
    run's record `model`), the base model's sha256 and the digest of the parent's training data, and the
    digest of the module of the parent's `strategy` where a plugin defines it. A run id hashes a file's
    path, not its contents: keyed on the run id alone, a parent trained on data since edited was reused
    (audit user17: every SFT completion replaced, and the chained DPO run's accuracy stayed 0.3933 to the
    digit), and so was one whose plugin strategy's code was edited since."""
    from bench.models.cache import cache_root

    return cache_root() / "artefacts" / (run_id + _contents_key(model_info or {}, strategy))


def _contents_key(model_info: dict[str, Any], strategy: str | None = None) -> str:
    """ "-" and 12 hex digits of what the parent read beyond its spec (base weights, its task's files, the
    code of a plugin's strategy), or "" where nothing is known of them (the run id alone, as before)."""
    import hashlib
    import json

    from bench.tasks.fingerprint import digest, plugin_source

    digests = model_info.get("data_sha256") or {}
    read = {"model": model_info.get("sha256"), **{k: v for k, v in digests.items() if k.startswith("task:")}}
    if strategy and (plugin := plugin_source(strategy)):  # bench's own strategies: nothing added (keys kept)
        read[f"plugin:{plugin[0]}"] = digest(plugin[1])
    if not any(read.values()):
        return ""
    return "-" + hashlib.sha256(json.dumps(read, sort_keys=True).encode()).hexdigest()[:12]


def start_from_parent(run: Recorder, loaded: Any, device: str) -> Any:
    """The model the parent sft run produces: loaded from the artefact cache (keyed by the parent's
    run_id, base model, task data and a plugin strategy's code: artefact_folder), else trained here through
    bench.training.train (measured as phase `parent_train`), merged into a standalone model and cached. The
    returned model's `_name_or_path` is that folder, so trainers that rebuild a reference model from it get
    the sft result, not the base."""
    from transformers import AutoModelForCausalLM

    from bench.run.events import emit
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.strategies.base import remote_code
    from bench.tasks import load_task
    from bench.training.train import TrainRequest, train

    spec, parent = run.spec, run.spec.parent
    folder = artefact_folder(parent["run_id"], run.model_info, parent["strategy"])
    cached = (folder / "config.json").exists()
    run.budget["parent"] = {**parent, "cached": cached, "folder": str(folder)}
    if cached:
        reason = f"parent {parent['label']} loaded from the artefact cache, not trained in this run"
        run.missing([("train.parent.seconds", "s", False), ("memory.parent_train.host_peak_mib", "MiB", False)], reason)
    else:
        emit({"event": "phase", "phase": f"train parent {parent['label']}"})
        strategy = STRATEGIES.get(parent["strategy"])
        options = strategy.Options.model_validate(parent["options"])
        context = PrepareContext(tokenizer=loaded.tokenizer, budget=spec.budget, seed=spec.seed, device=device)
        with MemoryTracker("parent_train") as memory:
            model = strategy.prepare(loaded.model, options, context)
            request = TrainRequest(
                model, loaded.tokenizer, strategy.objective, load_task(spec.task), spec.budget, spec.training,
                options, spec.seed, device, run.workdir / "parent", emit,
            )  # fmt: skip
            outcome = train(request)
        run.metrics.update(memory.metrics())
        run.metric("train.parent.seconds", outcome.seconds, "s", False)
        run.budget["parent"].update(steps_done=outcome.steps, tokens_seen=outcome.tokens)
        if hasattr(model, "peft_config"):
            merge = getattr(strategy, "merge", None)
            if merge is None:
                raise NotImplementedError(f"start_from {parent['label']!r}: {parent['strategy']} cannot be merged")
            model = merge(model)
        folder.parent.mkdir(parents=True, exist_ok=True)
        temporary = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        model.save_pretrained(temporary)
        loaded.tokenizer.save_pretrained(temporary)
        if folder.exists():  # another process cached it meanwhile: keep theirs
            shutil.rmtree(temporary)
        else:
            temporary.replace(folder)  # atomic: a half-written folder is never taken for the cache
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=loaded.model.dtype, **remote_code(loaded.model))
    model = model.to(device)
    model.config._name_or_path = str(folder)
    return model


def record_trained_pairs(run: Recorder, preference: Any) -> None:
    """After training: `budget.preference.train_pairs` becomes the pairs trained on (DPO, or RLHF's reward
    model), `too_long_dropped` beside it the pairs budget.seq_len left out, `identical_after_seq_len` those
    trained on whose chosen and rejected were the same ids at seq_len (nothing to learn), and the trainer's
    counts are the run's budget.truncation (as SFT's; RLHF's come from its reward phase). Runs that only
    score the pairs (sft) train on none of them and keep the pairs given."""
    counts = preference.truncation
    if counts is None:
        return
    run.budget.setdefault("truncation", counts)
    pairs = run.budget.get("preference")
    if pairs is not None:
        pairs["train_pairs"] = counts["rows"] - counts["dropped"]
        if counts["dropped"]:
            pairs["too_long_dropped"] = counts["dropped"]
        if counts.get("identical"):
            pairs["identical_after_seq_len"] = counts["identical"]


def record_alignment(run: Recorder, model: Any, tokenizer: Any, preference: Any, base: Any, reward_model: Any) -> None:
    from bench.evaluate.alignment import alignment_metrics

    record_trained_pairs(run, preference)
    metrics = alignment_metrics(model, tokenizer, preference, base, reward_model)
    for name, (value, unit, reason) in metrics.items():
        if value is None:
            run.missing([(name, unit, True)], reason or "not measured")
        else:
            run.metric(name, value, unit, True)
