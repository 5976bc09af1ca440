"""Contaminated timing is detected: a busy neighbouring process, CPU steal, too many threads, scattered steps."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import namedtuple

import psutil
import pytest

from bench.measure.contention import MAX_OTHERS_CPU, ContentionMonitor, judge, per_cpu
from bench.records.results import PhaseContention


def quiet(**changes) -> PhaseContention:
    fields = dict(seconds=2.0, others_cpu=0.02, steal=0.0, load_average=0.3, cores=2, torch_threads=1)
    return PhaseContention(**(fields | changes))


def test_a_busy_neighbour_is_seen_and_flags_the_run():
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        with ContentionMonitor(torch_threads=1) as monitor:
            time.sleep(2.0)  # the timed phase: this process is idle, the neighbour is not
    finally:
        busy.kill()
        busy.wait()
    phase = monitor.result
    assert phase.others_cpu is not None and phase.others_cpu > 0.6, phase  # about one core
    assert phase.seconds >= 2.0 and phase.cores >= 1
    quality = judge({"train": phase}, [0.01] * 20)
    assert quality.contaminated
    assert (
        quality.reasons[0].startswith("train: other processes used") and f"limit {MAX_OTHERS_CPU}" in quality.reasons[0]
    )


def test_judge_names_every_reason():
    assert not judge({"train": quiet(), "latency": quiet()}, [0.01] * 20).contaminated
    quality = judge(
        {"train": quiet(steal=0.2), "latency": quiet(torch_threads=4)},
        [0.01] * 15 + [0.05] * 5,
    )
    assert quality.contaminated and quality.step_time_spread == 5.0
    assert [reason.split(":")[0] for reason in quality.reasons] == ["train", "latency", "train"]
    assert "CPU steal 20.0%" in quality.reasons[0] and "4 torch threads on 2" in quality.reasons[1]
    assert "p90/p50 5.00" in quality.reasons[2]


@pytest.mark.serial  # reads every CPU's load: a test worker beside it would show on the other CPU
def test_the_phase_says_which_cpu_was_busy():
    """A neighbour spinning on one CPU shows on that CPU alone: the per-CPU reading tells one slow or
    busy CPU from a slow machine."""
    cpu = max(os.sched_getaffinity(0))
    code = f"import os; os.sched_setaffinity(0, {{{cpu}}})\nwhile True: pass"
    busy = subprocess.Popen([sys.executable, "-c", code])
    try:
        time.sleep(0.3)
        with ContentionMonitor(torch_threads=1) as monitor:
            time.sleep(1.5)
    finally:
        busy.kill()
        busy.wait()
    phase = monitor.result
    assert len(phase.cpu_busy) == len(phase.cpu_steal) == psutil.cpu_count()
    assert phase.cpu_busy[cpu] > 0.6, phase.cpu_busy
    assert sum(phase.cpu_busy) - phase.cpu_busy[cpu] < 0.5 * len(phase.cpu_busy), phase.cpu_busy


def test_per_cpu_steal_is_a_share_of_that_cpu():
    times = namedtuple("times", "user system idle steal")
    before = [times(10.0, 1.0, 100.0, 0.0), times(10.0, 1.0, 100.0, 5.0)]
    after = [times(12.0, 1.0, 100.0, 0.0), times(10.5, 1.0, 100.0, 6.5)]  # CPU 1: 1.5 of 2 s stolen
    busy, stolen = per_cpu(before, after, seconds=2.0)
    assert busy == [1.0, 0.25] and stolen == [0.0, 0.75]
    assert per_cpu(before, after[:1], seconds=2.0) == (None, None)  # a CPU went offline


@pytest.mark.serial  # reads the whole machine's load: a test worker beside it would count as a neighbour
def test_the_window_narrowed_to_the_steps_leaves_out_what_ran_before_them():
    """A neighbour busy while the model and trainer were prepared, quiet during the steps: the training
    phase's window starts where its steps do (the first narrow() only: RLHF's second trainer keeps it)."""
    # it ends by itself, and is reaped only after the phase: a reaped child's CPU time counts as this process's own
    spin = "import time\nend = time.time() + 1.5\nwhile time.time() < end: pass"
    busy = subprocess.Popen([sys.executable, "-c", spin])
    try:
        with ContentionMonitor(torch_threads=1) as wide, ContentionMonitor(torch_threads=1) as narrowed:
            time.sleep(1.7)  # preparing: the neighbour spins
            narrowed.narrow()
            time.sleep(0.75)  # the first trainer's steps: quiet
            narrowed.narrow()  # a second phase's trainer begins: the window stays
            time.sleep(0.75)
    finally:
        busy.kill()
        busy.wait()
    assert wide.result.others_cpu > 0.3 and wide.result.seconds >= 3.0, wide.result
    assert narrowed.result.others_cpu < MAX_OTHERS_CPU and 1.5 <= narrowed.result.seconds < 2.0, narrowed.result


def test_the_training_tells_its_window_when_the_trainer_begins_its_steps(tiny_folder, tmp_path):
    """bench.training.train calls steps_begin (the worker's ContentionMonitor.narrow) once for SFT, after
    building the trainer and preparing its data and before the first step."""
    from tests.conftest import train_tiny_lora

    begun = []
    outcome = train_tiny_lora(tmp_path, 3, steps_begin=lambda: begun.append(time.perf_counter()))
    ended = time.perf_counter()
    assert len(begun) == 1 and outcome.steps == 3
    assert ended - begun[0] >= outcome.seconds  # before the steps, which outcome.seconds spans
