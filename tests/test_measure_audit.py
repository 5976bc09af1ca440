"""Audit of the measurements (bench/measure, bench/training/measuring.py): numbers that meant something
other than their name, each checked against a count made by hand or a clock driven by the test."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import TrainerControl

import bench.training.measuring as measuring
from bench.measure.flops import FlopsPerToken, matmul_weights, mfu_metrics, record_flops
from bench.spec import Budget
from bench.training.batches import MadeAhead
from bench.training.measuring import MeasuringCallback

FLOPS_METRICS = {
    "train.flops_per_token",
    "train.flops_per_token_6n",
    "train.model_tflops_per_s",
    "train.mfu",
    "train.mfu_6n",
}


def test_prefix_projection_runs_per_step_and_is_not_counted_per_token(tiny_folder: Path):
    """Prefix tuning's projection MLP maps the virtual tokens to every layer's prefixes once per step:
    no token goes through it, so it adds no per-token FLOPs (it used to add 6 x 20,480 on tiny-llama)."""
    from peft import PrefixTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_folder)
    dense = matmul_weights(base)
    config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=8, prefix_projection=True)
    model = get_peft_model(base, config)
    assert any("prompt_encoder" in name for name, _ in model.named_modules())  # the MLP is there...
    assert matmul_weights(model) == (0, dense[0] + dense[1])  # ... and only the frozen base counts


def test_flops_metrics_not_measured_are_all_recorded_missing_with_the_reason(tiny_folder: Path):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_folder)
    metrics, _ = record_flops(model, "cpu", "float32", 1000.0, 640, 20, 1, objective="dpo")
    assert set(metrics) == FLOPS_METRICS  # flops_per_token_6n and model_tflops_per_s were left out
    assert all(m.value is None and "dpo" in m.reason for m in metrics.values())
    assert (
        metrics["train.model_tflops_per_s"].higher_is_better and not metrics["train.flops_per_token"].higher_is_better
    )
    flops = FlopsPerToken(trainable_weights=10, frozen_weights=0, layers=1, heads=1, head_dim=1, context=1)
    unmeasured, _ = mfu_metrics(flops, None, "NVIDIA H100 80GB HBM3", "bfloat16")
    assert set(unmeasured) == FLOPS_METRICS
    tflops = unmeasured["train.model_tflops_per_s"]
    assert tflops.value is None and tflops.reason == "no tokens/s measured"


class _FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _drive(callback: MeasuringCallback, clock: _FakeClock, loader: MadeAhead, steps: list[tuple[float, float]]) -> None:
    """Steps as (seconds spent making batches ahead before the step, seconds of the step's own work):
    every part of a step (data, compute, optimizer, harness) takes a quarter of its own work."""
    state = SimpleNamespace(global_step=0, num_input_tokens_seen=0, max_steps=len(steps))
    control, kwargs = TrainerControl(), {"train_dataloader": loader}
    callback.on_train_begin(None, state, control, **kwargs)
    for making, work in steps:
        loader.seconds += making
        clock.now += making + work / 4  # the batches are made in the data part, as the trainer draws them
        callback.on_step_begin(None, state, control, **kwargs)
        for event in ("on_pre_optimizer_step", "on_optimizer_step"):
            clock.now += work / 4
            getattr(callback, event)(None, state, control, **kwargs)
        clock.now += work / 4
        state.global_step += 1
        state.num_input_tokens_seen += 40
        callback.on_step_end(None, state, control, **kwargs)


def test_batches_made_ahead_for_a_later_epoch_are_not_timed_as_a_training_step(monkeypatch):
    """A training of several epochs makes each epoch's batches in its first step; that step's time
    counted in tokens/s (6% of the measured time with 100 rows, 60 steps of 8: `train_size: 100`)."""
    clock = _FakeClock()
    monkeypatch.setattr(measuring, "clock", clock)
    loader = MadeAhead([], needed=0)
    callback = MeasuringCallback(Budget(steps=4, batch_size=8), 8, lambda event: None)
    # epoch 1's batches before step 1, epoch 2's before step 3: 0.5 s each, steps of 0.01 s
    _drive(callback, clock, loader, [(0.5, 0.01), (0.0, 0.01), (0.5, 0.01), (0.0, 0.01)])
    outcome = callback.outcome
    assert outcome.step_seconds == pytest.approx([0.01] * 4)
    assert outcome.breakdown["data"] == pytest.approx([0.0025] * 4)
    assert outcome.seconds == pytest.approx(1.04)  # wall time: the training's seconds and the max_seconds cap
    assert outcome.step_tokens == [40] * 4


def test_steps_are_timed_as_before_when_no_batches_are_made_ahead(monkeypatch):
    clock = _FakeClock()
    monkeypatch.setattr(measuring, "clock", clock)
    callback = MeasuringCallback(Budget(steps=2, batch_size=8), 8, lambda event: None)
    state = SimpleNamespace(global_step=0, num_input_tokens_seen=0, max_steps=2)
    control = TrainerControl()
    callback.on_train_begin(None, state, control, train_dataloader=[])
    for _ in range(2):
        clock.now += 0.003
        callback.on_step_begin(None, state, control, train_dataloader=[])
        clock.now += 0.007
        callback.on_step_end(None, state, control, train_dataloader=[])
    assert callback.outcome.step_seconds == pytest.approx([0.01, 0.01])
    assert callback.outcome.seconds == pytest.approx(0.02)


def _gpu_machine(monkeypatch, started: bool) -> list[str]:
    """This process on a machine with a GPU, CUDA `started` or not; returns the CUDA calls made.
    Without it started, any call that would start it fails the test."""
    import torch

    calls: list[str] = []

    def call(name: str, value: object = None):
        def record(*args, **kwargs):
            if not started:
                raise AssertionError(f"torch.cuda.{name}() would start CUDA in a run that does not use it")
            calls.append(name)
            return value

        return record

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: started)
    monkeypatch.setattr(torch.cuda, "synchronize", call("synchronize"))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", call("reset_peak_memory_stats"))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", call("max_memory_allocated", 3 * 2**20))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", call("max_memory_reserved", 4 * 2**20))
    return calls


def test_a_cpu_run_on_a_gpu_machine_neither_starts_cuda_nor_reports_cuda_figures(monkeypatch):
    """execution.device: cpu on a GPU machine: every clock read synchronised CUDA, which starts a CUDA
    context in the run (host memory and seconds inside its timed phases), and the memory tracker
    reported CUDA peaks of a run that had none."""
    from bench.measure.memory import MemoryTracker
    from bench.measure.timing import clock

    _gpu_machine(monkeypatch, started=False)
    first = clock()
    with MemoryTracker("train") as memory:
        assert clock() >= first
    metrics = memory.metrics()
    allocated = metrics["memory.train.cuda_allocated_peak_mib"]
    assert allocated.value is None and allocated.reason == "this run did not use CUDA"


def test_a_cuda_run_is_synchronised_and_its_peaks_read(monkeypatch):
    from bench.measure.memory import MemoryTracker
    from bench.measure.timing import clock

    calls = _gpu_machine(monkeypatch, started=True)
    monkeypatch.setattr("bench.measure.memory.nvml_used_mib", lambda: (None, None, "no NVML here"))
    clock()
    assert calls == ["synchronize"]
    with MemoryTracker("train") as memory:
        pass
    assert calls[1:3] == ["synchronize", "reset_peak_memory_stats"]
    assert (memory.cuda_allocated_peak_mib, memory.cuda_reserved_peak_mib, memory.cuda_reason) == (3.0, 4.0, None)


def test_each_training_phase_leaves_its_own_warm_up_steps_out(tmp_path: Path):
    """RLHF trains a reward model, then the policy: the policy's first steps are slow again (before, only the
    reward phase's first steps were left out of the run's tokens/s, and the policy's slow first step counted)."""
    from bench.plan import plan
    from bench.run.recorder import Recorder
    from bench.suite import parse_suite
    from bench.training.measuring import TrainOutcome
    from tests.conftest import fast_suite

    (spec,) = plan(parse_suite(fast_suite("phases", ["full"], measure={"throughput_warmup_steps": 2})))
    from bench.measure.memory import PhaseMemory

    reward = TrainOutcome([9.0, 1.0, 1.0, 1.0], [10] * 4, [2] * 4, phase="reward", memory=PhaseMemory("reward"))
    policy = TrainOutcome([9.0, 9.0, 2.0, 2.0], [10] * 4, [2] * 4, phase="policy", memory=PhaseMemory("policy"))
    recorder = Recorder(spec, tmp_path)
    recorder.record_training(TrainOutcome.combine([reward, policy], {}))
    measured = 1.0 + 1.0 + 2.0 + 2.0  # the last two steps of each phase
    assert recorder.metrics["train.tokens_per_s"].value == pytest.approx(40 / measured)
    assert recorder.metrics["train.steps_per_s"].value == pytest.approx(4 / measured)
    step_seconds = recorder.timings["train.step_seconds"]
    assert step_seconds.samples == [1.0, 1.0, 2.0, 2.0] and step_seconds.warmup_excluded == 4


def test_a_phases_seq_len_counts_reach_the_run_outcome():
    """RLHF's reward phase counts the pairs it dropped at seq_len; combining the phases lost them, so the record
    had them only by a side route (the preference data), and not at all for a run that failed after training."""
    from bench.training.measuring import TrainOutcome

    cut = {"seq_len": 32, "rows": 60, "truncated": 28, "dropped": 28, "longest": 55, "rule": "RewardTrainer drops"}
    reward = TrainOutcome([1.0], [10], [2], phase="reward", truncation=cut)
    policy = TrainOutcome([1.0], [10], [2], phase="policy")
    assert TrainOutcome.combine([reward, policy], {}).truncation == cut
    assert TrainOutcome.combine([policy], {}).truncation is None
