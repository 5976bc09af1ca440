"""One run, top to bottom, in its own process: load -> evaluate base -> prepare -> train -> save ->
evaluate -> latency. Usage: python -m bench.run.worker SPEC.json OUT.json --machine ID

Progress goes to stdout as event lines (bench/run/events.py); the result is written to OUT.json.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.measure import env
from bench.measure.contention import ContentionMonitor, judge
from bench.measure.limits import apply_memory_limit
from bench.measure.memory import MemoryTracker
from bench.measure.reference import reference_seconds
from bench.measure.timing import summarize
from bench.plan import RunSpec
from bench.records.results import (
    LossPoint,
    Metric,
    PhaseContention,
    RunResult,
    TimingQuality,
    TimingStats,
    atomic_write_text,
)
from bench.run.events import emit, note
from bench.training import distributed


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _folder_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _logical_numel(parameter: Any) -> int:
    """Elements of the full-precision tensor: bitsandbytes packs two 4-bit weights per byte."""
    shape = getattr(getattr(parameter, "quant_state", None), "shape", None)
    return int(math.prod(shape)) if shape is not None else parameter.numel()


class Run:
    """Collects metrics and timings while the phases of one run execute."""

    def __init__(self, spec: RunSpec, workdir: Path) -> None:
        self.spec = spec
        self.workdir = workdir
        self.metrics: dict[str, Metric] = {}
        self.timings: dict[str, TimingStats] = {}
        self.budget: dict[str, Any] = {"resolved": spec.budget.model_dump()}
        self.model_info: dict[str, Any] = {}
        self.losses: list[LossPoint] = []
        self.contention: dict[str, PhaseContention] = {}
        self.memory: dict[str, Any] | None = None
        self.items: dict[str, dict[str, Any]] | None = None
        self.reference_seconds: list[float] = []
        self.reference_note: str | None = None

    def time_reference(self, device: Any) -> None:
        """Time the CPU reference workload, on a CPU run only: a GPU figure divided by a CPU workload
        would carry the host's noise (docs/statistics.md), so a GPU run records why it has none."""
        if str(device).startswith("cuda"):
            self.reference_note = "none: GPU timings are not normalised by a CPU reference workload"
            return
        self.reference_seconds.append(reference_seconds())

    def timing_quality(self) -> TimingQuality | None:
        if not self.contention:
            return None
        steps = self.timings.get("train.step_seconds")
        return judge(self.contention, steps.samples if steps else [], self.reference_seconds, self.reference_note)

    def metric(self, name: str, value: float | None, unit: str, higher_is_better: bool, **extra: Any) -> None:
        self.metrics[name] = Metric(value=value, unit=unit, higher_is_better=higher_is_better, **extra)

    def missing(self, names: list[tuple[str, str, bool]], reason: str) -> None:
        for name, unit, higher_is_better in names:
            self.metrics[name] = Metric.missing(unit, higher_is_better, reason)

    def execute(self) -> None:
        import torch
        import transformers

        from bench.models.load import load_model
        from bench.strategies import STRATEGIES, PrepareContext
        from bench.suite import load_plugins
        from bench.tasks import load_task

        spec = self.spec
        load_plugins(spec.plugins)
        device = spec.device if spec.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
        device = distributed.device_for_rank(device)
        if spec.parallel == "fsdp" and spec.processes > 1 and device == "cpu":
            from bench.strategies import NotApplicable

            # measured: transformers and accelerate accept the FSDP arguments on CPU and then run plain
            # data parallel (distributed type MULTI_CPU), so an "FSDP" record would be a DDP one
            raise NotApplicable("execution.parallel fsdp needs CUDA: on CPU accelerate runs plain data parallel")
        lead = distributed.rank() == 0  # with several processes, rank 0 evaluates and records
        transformers.logging.set_verbosity_error()
        transformers.set_seed(spec.seed)
        strategy = STRATEGIES.get(spec.strategy)
        options = strategy.Options.model_validate(spec.options)

        emit({"event": "phase", "phase": "load"})
        with MemoryTracker("load") as memory:
            loaded = load_model(spec.model, device, note)
        self.metrics.update(memory.metrics())
        self.model_info = loaded.info
        # after loading, so the default can depend on the model's size; before any timed work
        torch.set_num_threads(spec.threads or env.default_threads(loaded.info["parameters"]))
        task = load_task(spec.task)
        retained = [load_task(retain) for retain in spec.retain]
        # the record has no data field: the data's provenance and eval item ids travel with the model's
        self.model_info["tasks"] = {data.name: data.record() for data in [task, *retained]}
        preference = self.load_preference()
        # Everything so far (the imported stack, the model, the data) lives for the whole run: move it
        # out of the garbage collector's sight, or each full collection walks it all (accelerate runs
        # one at the end of every training: 0.27 s of a 0.53 s smoke training, docs/performance.md)
        gc.freeze()

        before, align_base = self.score_base(loaded, [task, *retained], preference, lead)
        base_model = self.start_from_parent(loaded, device) if spec.parent else loaded.model
        # Scoring the base model (lm-eval seeds every generator) and training a parent change the random
        # state, and both are skipped when their results are cached: seed again, so that a run trains the
        # same whether this is the suite's first run on a machine or not
        transformers.set_seed(spec.seed)

        emit({"event": "phase", "phase": "train"})
        self.time_reference(device)  # how fast the machine is, just before timing
        context = PrepareContext(tokenizer=loaded.tokenizer, budget=spec.budget, seed=spec.seed, device=device)
        options = self.size(strategy, options, loaded.model, context)
        with MemoryTracker("train") as memory, ContentionMonitor(torch.get_num_threads()) as contention:
            model = strategy.prepare(base_model, options, context)
            self.count_parameters(model)
            from bench.training.train import train

            outcome = train(
                model,
                loaded.tokenizer,
                strategy.objective,
                task,
                spec.budget,
                spec.training,
                options.learning_rate,
                spec.seed,
                device,
                self.workdir,
                emit,
                preference=preference,
                options=options,
                parallel=spec.parallel,
            )
        self.metrics.update(memory.metrics())
        self.contention["train"] = contention.result
        self.record_training(outcome)
        self.record_flops(model, device, options, strategy.objective)
        self.record_memory_components(outcome, loaded, task)
        self.record_ranks()
        if not lead:
            return  # the other ranks' part ends with training; rank 0 goes on alone

        self.save_artefact(strategy, model, loaded.tokenizer)
        self.measure_tuned(model, loaded.tokenizer, task, retained, before)
        if preference is not None:
            emit({"event": "phase", "phase": "evaluate alignment"})
            reward_model = outcome.artefacts.get("reward_model")
            self.record_alignment(model, loaded.tokenizer, preference, align_base, reward_model)
        self.measure_latency_phase(model, loaded.tokenizer, strategy, task)

    def score_base(self, loaded: Any, tasks: list, preference: Any, lead: bool) -> tuple[dict, Any]:
        """The base model's accuracy (from the per-suite cache where it is there) and alignment figures,
        on rank 0 only."""
        before: dict = {}
        align_base = None
        if self.spec.measure.accuracy and lead:
            emit({"event": "phase", "phase": "evaluate base"})
            before = self.evaluate(loaded.model, loaded.tokenizer, tasks, "base")
        if preference is not None and lead:
            from bench.evaluate.alignment import measure_base

            emit({"event": "phase", "phase": "evaluate base alignment"})
            align_base = measure_base(loaded.model, loaded.tokenizer, preference)
        return before, align_base

    def measure_tuned(self, model: Any, tokenizer: Any, task: Any, retained: list, before: dict) -> None:
        """The tuned model's accuracy on the task and the retained tasks, and forgetting against `before`."""
        spec = self.spec
        if spec.measure.accuracy:
            emit({"event": "phase", "phase": "evaluate"})
            after = self.evaluate(model, tokenizer, [task, *retained], "tuned")
            self.record_accuracy(task.name, [t.name for t in retained], before, after)
            if spec.artefacts_dir:
                from bench.run.artefacts import keep_scoring_tasks

                keep_scoring_tasks(Path(spec.artefacts_dir), [task, *retained], self.model_info, spec)
        else:
            self.missing([(f"accuracy.{task.name}", "acc", True)], "accuracy disabled in the suite (measure.accuracy)")

    def measure_latency_phase(self, model: Any, tokenizer: Any, strategy: Any, task: Any) -> None:
        """Latency on the task's first prompt (as trained, and merged where the strategy can merge)."""
        if not self.spec.measure.latency:
            self.missing([("latency.ttft_ms.p50", "ms", False)], "latency disabled in the suite (measure.latency)")
            return
        emit({"event": "phase", "phase": "latency"})
        prompt = task.eval[0].context if task.eval else task.train[0].prompt
        self.measure_latency(model, tokenizer, prompt, getattr(strategy, "merge", None))
        self.time_reference(getattr(model, "device", "cpu"))  # ... and after the last timed phase

    def evaluate(self, model: Any, tokenizer: Any, tasks: list, tag: str) -> dict:
        from bench.evaluate.accuracy import evaluate_accuracy

        def score() -> dict:
            return evaluate_accuracy(
                model, tokenizer, tasks, self.workdir / f"lmeval-{tag}", self.spec.measure.eval_batch_size
            )

        if tag != "tuned":  # the base model's scores are shared by every run of the suite
            import torch

            from bench.evaluate.base_cache import base_scores_key, cached_base_scores

            # the kernels and threads decide the floating-point order, so they are part of the key
            compute = f"{model.device}/{torch.backends.cpu.get_cpu_capability()}/{torch.get_num_threads()}t"
            key = base_scores_key(self.model_info, tasks, self.spec.measure.eval_batch_size, compute)
            scores, cached = cached_base_scores(key, score)
            self.model_info["base_scores"] = {"key": key, "reused_from_cache": cached}
            return scores
        with MemoryTracker("evaluate") as memory:
            scores = score()
        self.metrics.update(memory.metrics())
        return scores

    def count_parameters(self, model: Any) -> None:
        trainable = sum(_logical_numel(p) for p in model.parameters() if p.requires_grad)
        total = sum(_logical_numel(p) for p in model.parameters())
        self.metric("params.trainable", trainable, "count", False)
        self.metric("params.total", total, "count", False)
        self.metric("params.trainable_percent", 100 * trainable / total, "%", False)

    def record_training(self, outcome: Any) -> None:
        warmup = min(self.spec.measure.throughput_warmup_steps, max(outcome.steps - 1, 0))
        seconds, tokens = outcome.step_seconds[warmup:], outcome.step_tokens[warmup:]
        samples = outcome.step_samples[warmup:]
        measured = sum(seconds)
        self.metric("train.tokens_per_s", sum(tokens) / measured, "tokens/s", True)
        self.metric("train.samples_per_s", sum(samples) / measured, "samples/s", True)
        self.metric("train.steps_per_s", len(seconds) / measured, "steps/s", True)
        self.metric("train.seconds", outcome.seconds, "s", False)
        if outcome.batches_ahead_seconds is not None:  # outside the steps' time: said, not hidden
            self.metric("train.batches_ahead_seconds", outcome.batches_ahead_seconds, "s", False)
        self.timings["train.step_seconds"] = summarize(seconds, "s", warmup)
        for part, values in outcome.breakdown.items():
            if len(values) == outcome.steps:  # every step split (docs/performance.md)
                self.timings[f"train.step_{part}_seconds"] = summarize(values[warmup:], "s", warmup)
        self.losses = [LossPoint(step=step, loss=loss) for step, loss in outcome.losses]
        if outcome.losses:
            self.metric("train.final_loss", outcome.losses[-1][1], "loss", False)
        self.budget.update(
            steps_done=outcome.steps,
            tokens_seen=outcome.tokens,
            train_seconds=round(outcome.seconds, 3),
            stop_reason=outcome.stop_reason,
            samples_seen=sum(outcome.step_samples),
        )
        if outcome.generated_tokens:
            self.budget["generated_tokens"] = outcome.generated_tokens
        if outcome.truncation is not None:  # rows longer than seq_len, truncated (and dropped by TRL if empty)
            self.budget["truncation"] = outcome.truncation
        if outcome.phases:
            from bench.run.alignment import record_phases

            record_phases(self, outcome)

    def record_flops(self, model: Any, device: str, options: Any, objective: str) -> None:
        """FLOPs per token and MFU against the device's dense peak (bench/measure/flops.py)."""
        from bench.measure.flops import record_flops

        dtype = getattr(options, "compute_dtype", None) or self.spec.model.dtype  # QLoRA computes in its own

        tokens_per_s = self.metrics["train.tokens_per_s"].value if "train.tokens_per_s" in self.metrics else None
        tokens, samples = self.budget.get("tokens_seen", 0), self.budget.get("samples_seen", 0)
        processes = distributed.world_size()
        metrics, info = record_flops(model, device, dtype, tokens_per_s, tokens, samples, processes, objective)
        self.metrics.update(metrics)
        self.model_info["flops"] = info

    def save_artefact(self, strategy: Any, model: Any, tokenizer: Any) -> None:
        """What a user takes away (`--keep-artefacts`), or a temporary copy only to measure its size."""
        if self.spec.artefacts_dir:
            from bench.run.artefacts import keep_model

            folder = keep_model(Path(self.spec.artefacts_dir), strategy, model, tokenizer)
            self.metric("storage.bytes", _folder_bytes(folder), "bytes", False)
            return
        with tempfile.TemporaryDirectory(dir=self.workdir) as artefact:
            strategy.save(model, Path(artefact))
            self.metric("storage.bytes", _folder_bytes(Path(artefact)), "bytes", False)

    def record_memory_components(self, outcome: Any, loaded: Any, task: Any) -> None:
        from bench.run.memory import component_metrics, estimate_for_run, memory_field

        self.metrics.update(component_metrics(outcome.components, "the trainer gave no first step to count"))
        if distributed.rank() != 0:  # only rank 0's record is written: no estimate for the others
            self.memory = memory_field(outcome.components, None, "not estimated on this rank")
            return
        shape = outcome.components.batch_shape if outcome.components else None
        estimate, reason = estimate_for_run(self.spec, loaded.model, loaded.tokenizer, task, shape)
        self.memory = memory_field(outcome.components, estimate, reason)

    def record_ranks(self) -> None:
        """With several processes: world size and batches in the budget, every rank's training memory
        in `record.memory["per_rank"]`, and each memory.train metric as the maximum over ranks."""
        processes = distributed.world_size()
        self.budget.update(
            world_size=processes,
            per_rank_batch=self.spec.budget.batch_size // processes,
            global_batch=self.spec.budget.batch_size,
        )
        if processes == 1:
            return
        from accelerate.state import AcceleratorState

        # what really ran (accelerate may fall back from FSDP): "MULTI_CPU", "MULTI_GPU", "FSDP"
        self.budget["parallel"] = str(AcceleratorState().distributed_type).split(".")[-1]
        if self.spec.parallel == "fsdp" and self.budget["parallel"] != "FSDP":
            raise RuntimeError(f"execution.parallel fsdp asked, but accelerate ran {self.budget['parallel']}")
        mine = {name: m.value for name, m in self.metrics.items() if name.startswith("memory.train.")}
        ranks = distributed.gather(mine)
        if self.memory is not None:
            self.memory["per_rank"] = ranks
        for name, metric in self.metrics.items():
            values = [rank[name] for rank in ranks if rank.get(name) is not None]
            if name in mine and values:
                self.metrics[name] = metric.model_copy(update={"value": max(values)})

    def load_preference(self) -> Any:
        from bench.run.alignment import load_preference_data

        return load_preference_data(self)

    def start_from_parent(self, loaded: Any, device: str) -> Any:
        from bench.run.alignment import start_from_parent

        return start_from_parent(self, loaded, device)

    def record_alignment(self, model: Any, tokenizer: Any, preference: Any, base: Any, reward_model: Any) -> None:
        from bench.run.alignment import record_alignment

        record_alignment(self, model, tokenizer, preference, base, reward_model)

    def record_accuracy(self, learned: str, retained: list[str], before: dict, after: dict) -> None:
        from bench.analysis.items import item_record

        self.items = {
            name: item_record(self.model_info["tasks"][name]["eval_ids"], before[name].correct, after[name].correct)
            for name in [learned, *retained]
            if before[name].correct is not None and after[name].correct is not None
        } or None
        for name in [learned, *retained]:
            self.metric(f"accuracy.{name}", after[name].acc, "acc", True, stderr=after[name].acc_stderr)
            self.metric(f"accuracy_before.{name}", before[name].acc, "acc", True, stderr=before[name].acc_stderr)
        self.metric(f"gain.{learned}", after[learned].acc - before[learned].acc, "acc", True)
        drops = [after[name].acc - before[name].acc for name in retained]
        for name, drop in zip(retained, drops):
            self.metric(f"forgetting.{name}", drop, "acc", True)
        if drops:
            self.metric("forgetting.mean", sum(drops) / len(drops), "acc", True)
        else:
            self.missing([("forgetting.mean", "acc", True)], "the suite names no retained tasks")

    def size(self, strategy: Any, options: Any, model: Any, context: Any) -> Any:
        """Budget match "params": let the strategy size itself to the target; record what it chose."""
        budget = self.spec.budget
        if budget.match != "params":
            return options
        size_for = getattr(strategy, "size_for", None)
        if size_for is None:
            self.budget["sizing"] = {"target": budget.trainable_params_target, "reason": "fixed size: not sizable"}
            return options
        sizing = size_for(model, options, budget.trainable_params_target, context)
        self.budget["sizing"] = {
            "target": budget.trainable_params_target,
            "field": sizing.field,
            "value": sizing.value,
            "trainable": sizing.trainable,
        }
        note(f"sized {sizing.field}={sizing.value}: {sizing.trainable} trainable parameters")
        return sizing.options

    def measure_latency(self, model: Any, tokenizer: Any, prompt: str, merge: Any = None) -> None:
        """Latency as trained (latency.*); for strategies with a merge hook, merged too (latency.merged.*)."""
        import torch

        from bench.measure.latency import generation_latency

        measure = self.spec.measure

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
        self.metrics.update(memory.metrics())
        self.contention["latency"] = contention.result
        for prefix, (ttft, decode) in samples.items():
            for name, values in (("ttft_ms", ttft), ("decode_ms_per_token", decode)):
                stats = summarize(values, "ms", measure.latency_warmup)
                self.timings[f"{prefix}.{name}"] = stats
                for quantile in ("p50", "p90", "p99"):
                    self.metric(f"{prefix}.{name}.{quantile}", getattr(stats, quantile), "ms", False)


def _start_path() -> str:
    start = os.environ.get("BENCH_START", "cold")
    reason = os.environ.get("BENCH_COLD_REASON")
    return f"{start} ({reason})" if reason else start


def run(spec: RunSpec, machine: str, workdir: Path) -> RunResult:
    started, clock_start = _now(), time.perf_counter()
    state = Run(spec, workdir)
    status, reason = "ok", None
    try:
        state.execute()
    except Exception as error:  # every failure becomes a record; the traceback travels in it
        from bench.strategies import NotApplicable

        if isinstance(error, NotApplicable):
            status, reason = "skipped", str(error)
        else:
            status, reason = "failed", "".join(traceback.format_exception(error)).strip()
    return RunResult(
        run_id=spec.run_id,
        suite=spec.suite,
        strategy=spec.strategy,
        label=spec.label,
        seed=spec.seed,
        status=status,
        reason=reason,
        spec=spec.model_dump(mode="json"),
        budget=state.budget,
        metrics=state.metrics if status == "ok" else {},
        timings=state.timings if status == "ok" else {},
        loss_curve=state.losses,
        model=state.model_info,
        environment=env.capture(machine),
        started_at=started,
        finished_at=_now(),
        wall_seconds=round(time.perf_counter() - clock_start, 3),
        start=_start_path(),
        timing_quality=state.timing_quality() if status == "ok" else None,
        memory=state.memory if status == "ok" else None,
        items=state.items if status == "ok" else None,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run.worker")
    parser.add_argument("spec", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--machine", required=True)
    args = parser.parse_args(argv)
    apply_memory_limit()  # execution.resources.memory_gib (bench/measure/limits.py), per rank under torchrun
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    spec = RunSpec.model_validate_json(args.spec.read_text())
    if spec.processes > 1 and not distributed.launched():  # become the launcher of its ranks
        return distributed.launch(spec.processes, [str(args.spec), str(args.out), "--machine", args.machine])
    if not spec.model.hub:  # nothing else needs the network: fail fast instead of hanging on it
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    with tempfile.TemporaryDirectory(prefix=f"bench-{spec.run_id}-") as workdir:
        result = run(spec, args.machine, Path(workdir))
    if distributed.rank() == 0:
        atomic_write_text(args.out, result.model_dump_json(indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
