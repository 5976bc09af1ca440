"""The phases of one run after training, each writing what it measures into the run's Recorder:
the device and its ranks, the load, evaluation (the base model's scores through the per-suite cache,
the tuned model's, accuracy and forgetting), sizing to the budget, the artefact and latency."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.measure.contention import ContentionMonitor
from bench.measure.memory import MemoryTracker
from bench.measure.timing import summarize
from bench.plan import RunSpec
from bench.run.events import emit, note
from bench.run.recorder import Recorder
from bench.tasks.fingerprint import DIGEST_KEY, data_fingerprint
from bench.training import distributed


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def device_for(spec: RunSpec) -> str:
    """The device of this rank: the suite's, or CUDA when it is there; each rank on its own GPU."""
    import torch

    device = spec.device if spec.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = distributed.device_for_rank(device)
    if spec.parallel == "fsdp" and spec.processes > 1 and device == "cpu":
        from bench.strategies import NotApplicable

        # measured: transformers and accelerate accept the FSDP arguments on CPU and then run plain
        # data parallel (distributed type MULTI_CPU), so an "FSDP" record would be a DDP one
        raise NotApplicable("execution.parallel fsdp needs CUDA: on CPU accelerate runs plain data parallel")
    return device


def load(run: Recorder, device: str) -> tuple[Any, Any, list]:
    """The model (its load memory measured), the threads for its size, the task and the retained tasks."""
    import torch

    from bench.measure import env
    from bench.models.load import load_model
    from bench.tasks import load_task

    spec = run.spec
    emit({"event": "phase", "phase": "load"})
    with MemoryTracker("load") as memory:
        loaded = load_model(spec.model, device, note)
    run.metrics.update(memory.metrics())
    run.model_info = loaded.info
    # after loading, so the default can depend on the model's size; before any timed work
    torch.set_num_threads(spec.threads or env.default_threads(loaded.info["parameters"]))
    task = load_task(spec.task)
    retained = [load_task(retain) for retain in spec.retain]
    # the record has no data field: the data's provenance and eval item ids travel with the model's
    run.model_info["tasks"] = {data.name: data.record() for data in [task, *retained]}
    if fingerprint := data_fingerprint(spec):  # what its files held: an edit runs it again (bench/execute.py)
        run.model_info[DIGEST_KEY] = fingerprint
    return loaded, task, retained


def score_base(run: Recorder, loaded: Any, tasks: list, preference: Any, lead: bool) -> tuple[dict, Any]:
    """The base model's accuracy (from the per-suite cache where it is there) and alignment figures,
    on rank 0 only."""
    before: dict = {}
    align_base = None
    if run.spec.measure.accuracy and lead:
        emit({"event": "phase", "phase": "evaluate base"})
        before = evaluate(run, loaded.model, loaded.tokenizer, tasks, "base")
    if preference is not None and lead:
        from bench.evaluate.alignment import measure_base

        emit({"event": "phase", "phase": "evaluate base alignment"})
        align_base = measure_base(loaded.model, loaded.tokenizer, preference)
    return before, align_base


def evaluate(run: Recorder, model: Any, tokenizer: Any, tasks: list, tag: str) -> dict:
    from bench.evaluate.accuracy import evaluate_accuracy

    def score() -> dict:
        return evaluate_accuracy(
            model, tokenizer, tasks, run.workdir / f"lmeval-{tag}", run.spec.measure.eval_batch_size
        )

    if tag != "tuned":  # the base model's scores are shared by every run of the suite
        import torch

        from bench.evaluate.base_cache import base_scores_key, cached_base_scores

        # the kernels and threads decide the floating-point order, so they are part of the key
        compute = f"{model.device}/{torch.backends.cpu.get_cpu_capability()}/{torch.get_num_threads()}t"
        key = base_scores_key(run.model_info, tasks, run.spec.measure.eval_batch_size, compute, tokenizer)
        scores, cached = cached_base_scores(key, score)
        run.model_info["base_scores"] = {"key": key, "reused_from_cache": cached}
        return scores
    with MemoryTracker("evaluate") as memory:
        scores = score()
    run.metrics.update(memory.metrics())
    return scores


def measure_tuned(run: Recorder, model: Any, tokenizer: Any, task: Any, retained: list, before: dict) -> None:
    """The tuned model's accuracy on the task and the retained tasks, and forgetting against `before`."""
    spec = run.spec
    if spec.measure.accuracy:
        emit({"event": "phase", "phase": "evaluate"})
        after = evaluate(run, model, tokenizer, [task, *retained], "tuned")
        record_accuracy(run, task.name, [t.name for t in retained], before, after)
        if spec.artefacts_dir:
            from bench.run.artefacts import keep_scoring_tasks

            keep_scoring_tasks(Path(spec.artefacts_dir), [task, *retained], run.model_info, spec, tokenizer)
    else:
        run.missing([(f"accuracy.{task.name}", "acc", True)], "accuracy disabled in the suite (measure.accuracy)")


def record_accuracy(run: Recorder, learned: str, retained: list[str], before: dict, after: dict) -> None:
    from bench.analysis.items import item_record

    run.items = {
        name: item_record(run.model_info["tasks"][name]["eval_ids"], before[name].correct, after[name].correct)
        for name in [learned, *retained]
        if before[name].correct is not None and after[name].correct is not None
    } or None
    for name in [learned, *retained]:
        run.metric(f"accuracy.{name}", after[name].acc, "acc", True, stderr=after[name].acc_stderr)
        run.metric(f"accuracy_before.{name}", before[name].acc, "acc", True, stderr=before[name].acc_stderr)
        generation = run.model_info["tasks"][name].get("generation")
        if generation is not None:  # answers scored unfinished: max_new_tokens may be too small
            generation["reached_limit"] = {"before": before[name].reached_limit, "after": after[name].reached_limit}
    run.metric(f"gain.{learned}", after[learned].acc - before[learned].acc, "acc", True)
    drops = [after[name].acc - before[name].acc for name in retained]
    for name, drop in zip(retained, drops):
        run.metric(f"forgetting.{name}", drop, "acc", True)
    if drops:
        run.metric("forgetting.mean", sum(drops) / len(drops), "acc", True)
    else:
        run.missing([("forgetting.mean", "acc", True)], "the suite names no retained tasks")


def size(run: Recorder, strategy: Any, options: Any, model: Any, context: Any) -> Any:
    """Budget match "params": let the strategy size itself to the target; record what it chose."""
    budget = run.spec.budget
    if budget.match != "params":
        return options
    size_for = getattr(strategy, "size_for", None)
    if size_for is None:
        run.budget["sizing"] = {"target": budget.trainable_params_target, "reason": "fixed size: not sizable"}
        return options
    sizing = size_for(model, options, budget.trainable_params_target, context)
    run.budget["sizing"] = {
        "target": budget.trainable_params_target,
        "field": sizing.field,
        "value": sizing.value,
        "trainable": sizing.trainable,
    }
    note(f"sized {sizing.field}={sizing.value}: {sizing.trainable} trainable parameters")
    return sizing.options


def save_artefact(run: Recorder, strategy: Any, model: Any, tokenizer: Any) -> None:
    """What a user takes away (`--keep-artefacts`), or a temporary copy only to measure its size."""
    if run.spec.artefacts_dir:
        from bench.run.artefacts import keep_model

        folder = keep_model(Path(run.spec.artefacts_dir), strategy, model, tokenizer)
        run.metric("storage.bytes", _folder_bytes(folder), "bytes", False)
        return
    with tempfile.TemporaryDirectory(dir=run.workdir) as artefact:
        strategy.save(model, Path(artefact))
        run.metric("storage.bytes", _folder_bytes(Path(artefact)), "bytes", False)


def measure_latency_phase(run: Recorder, model: Any, tokenizer: Any, strategy: Any, task: Any) -> None:
    """Latency on the task's first prompt (as trained, and merged where the strategy can merge)."""
    if not run.spec.measure.latency:
        run.missing([("latency.ttft_ms.p50", "ms", False)], "latency disabled in the suite (measure.latency)")
        return
    emit({"event": "phase", "phase": "latency"})
    prompt = task.first_prompt()  # as text (a generative context may be messages)
    measure_latency(run, model, tokenizer, prompt, getattr(strategy, "merge", None))
    run.time_reference(getattr(model, "device", "cpu"))  # ... and after the last timed phase


def measure_latency(run: Recorder, model: Any, tokenizer: Any, prompt: str, merge: Any = None) -> None:
    """Latency as trained (latency.*); for strategies with a merge hook, merged too (latency.merged.*)."""
    import torch

    from bench.measure.latency import generation_latency

    measure = run.spec.measure

    def timed(candidate: Any) -> tuple[list[float], list[float]]:
        return generation_latency(
            candidate,
            tokenizer,
            prompt,
            measure.latency_new_tokens,
            measure.latency_repeats,
            measure.latency_warmup,
        )

    with ContentionMonitor(torch.get_num_threads()) as contention:
        with MemoryTracker("inference") as memory:
            samples = {"latency": timed(model)}
        if merge is not None:  # after evaluation and save: merging changes the model in place
            samples["latency.merged"] = timed(merge(model))
    run.metrics.update(memory.metrics())
    run.contention["latency"] = contention.result
    for prefix, (ttft, decode) in samples.items():
        for name, values in (("ttft_ms", ttft), ("decode_ms_per_token", decode)):
            stats = summarize(values, "ms", measure.latency_warmup)
            run.timings[f"{prefix}.{name}"] = stats
            for quantile in ("p50", "p90", "p99"):
                run.metric(f"{prefix}.{name}.{quantile}", getattr(stats, quantile), "ms", False)
