"""What one run records while its phases execute: metrics, timings, the budget as it was spent, the
model's facts, and the arithmetic that turns a training outcome into them (throughput after warm-up,
parameters, FLOPs, every rank's memory). The phases write here; the worker turns it into a RunResult.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench.measure import env
from bench.measure.contention import judge
from bench.measure.reference import reference_seconds
from bench.measure.timing import summarize
from bench.plan import RunSpec
from bench.records.results import LossPoint, Metric, PhaseContention, RunResult, TimingQuality, TimingStats
from bench.training import distributed

BUDGET_MEANING = (
    "two-phase method: each phase (reward, then policy) gets budget.steps optimizer steps of "
    "budget.batch_size sequences; caps (max_tokens, max_seconds) apply per phase; tokens_seen and "
    "train_seconds are totals over the phases; the policy's sequences are its own generations "
    "(num_generations per prompt), counted in generated_tokens"
)


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _start_path() -> str:
    start = os.environ.get("BENCH_START", "cold")
    reason = os.environ.get("BENCH_COLD_REASON")
    return f"{start} ({reason})" if reason else start


def _logical_numel(parameter: Any) -> int:
    """Elements of the full-precision tensor: bitsandbytes packs two 4-bit weights per byte."""
    shape = getattr(getattr(parameter, "quant_state", None), "shape", None)
    return int(math.prod(shape)) if shape is not None else parameter.numel()


class Recorder:
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

    def count_parameters(self, model: Any) -> None:
        trainable = sum(_logical_numel(p) for p in model.parameters() if p.requires_grad)
        total = sum(_logical_numel(p) for p in model.parameters())
        self.metric("params.trainable", trainable, "count", False)
        self.metric("params.total", total, "count", False)
        self.metric("params.trainable_percent", 100 * trainable / total, "%", False)

    def record_training(self, outcome: Any) -> None:
        if not outcome.step_seconds:
            raise RuntimeError("training made no optimizer step: fewer training rows than budget.batch_size?")
        seconds = self._after_warmup(outcome, lambda phase: phase.step_seconds)
        tokens = self._after_warmup(outcome, lambda phase: phase.step_tokens)
        samples = self._after_warmup(outcome, lambda phase: phase.step_samples)
        warmup = outcome.steps - len(seconds)
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
                kept = self._after_warmup(outcome, lambda phase, part=part: phase.breakdown.get(part, []))
                self.timings[f"train.step_{part}_seconds"] = summarize(kept, "s", warmup)
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
            self.record_phases(outcome)

    def _warmup(self, phase: Any) -> int:
        """Steps of one training phase left out of its throughput (at least one step is kept)."""
        return min(self.spec.measure.throughput_warmup_steps, max(phase.steps - 1, 0))

    def _after_warmup(self, outcome: Any, values: Callable[[Any], list]) -> list:
        """A per-step list over the training, each phase's warm-up steps left out: each phase warms up
        (RLHF's policy phase starts slow after its reward model's)."""
        return [value for phase in outcome.phases or [outcome] for value in values(phase)[self._warmup(phase) :]]

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

    def result(self, status: str, reason: str | None, machine: str, started: str, clock_start: float) -> RunResult:
        """The run's record: everything measured when it ended ok, what it got to otherwise."""
        ok = status == "ok"
        return RunResult(
            **self.spec.record_header(),
            status=status,
            reason=reason,
            budget=self.budget,
            metrics=self.metrics if ok else {},
            timings=self.timings if ok else {},
            loss_curve=self.losses,
            model=self.model_info,
            environment=env.capture(machine),
            started_at=started,
            finished_at=now(),
            wall_seconds=round(time.perf_counter() - clock_start, 3),
            start=_start_path(),
            timing_quality=self.timing_quality() if ok else None,
            memory=self.memory if ok else None,
            items=self.items if ok else None,
        )

    def record_phases(self, outcome: Any) -> None:
        """Per-phase time, throughput, loss and peak memory; the run's train memory peak is their max."""
        phases = {}
        for phase in outcome.phases:
            name = phase.phase
            warmup = self._warmup(phase)
            seconds, tokens = phase.step_seconds[warmup:], phase.step_tokens[warmup:]
            measured = sum(seconds) or float("nan")
            self.metric(f"train.{name}.seconds", phase.seconds, "s", False)
            self.metric(f"train.{name}.steps_per_s", len(seconds) / measured, "steps/s", True)
            self.metric(f"train.{name}.tokens_per_s", sum(tokens) / measured, "tokens/s", True)
            if phase.losses:
                self.metric(f"train.{name}.final_loss", phase.losses[-1][1], "loss", False)
            if seconds:
                self.timings[f"train.{name}.step_seconds"] = summarize(seconds, "s", warmup)
            self.metrics.update(phase.memory.metrics())
            phases[name] = {
                "steps_done": phase.steps,
                "tokens_seen": phase.tokens,
                "samples_seen": sum(phase.step_samples),
                "generated_tokens": phase.generated_tokens,
                "train_seconds": round(phase.seconds, 3),
                "stop_reason": phase.stop_reason,
            }
        for kind in ("host_peak_mib", "cuda_allocated_peak_mib", "cuda_reserved_peak_mib"):
            values = [self.metrics.get(f"memory.{name}_train.{kind}") for name in phases]
            values.append(self.metrics.get(f"memory.train.{kind}"))
            known = [metric.value for metric in values if metric is not None and metric.value is not None]
            if known:
                self.metric(f"memory.train.{kind}", max(known), "MiB", False)
        self.budget.update(phases=phases, meaning=BUDGET_MEANING, steps_per_phase=self.spec.budget.steps)
