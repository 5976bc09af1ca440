"""Did anything else use the machine while we timed? A timing is only meaningful next to that.

`ContentionMonitor` wraps a timed phase (training, latency) and records, from psutil and the
kernel's counters, what the rest of the machine did meanwhile:

* others_cpu: CPU-seconds per second used by every other process (the machine's busy time minus
  this process's own), e.g. 1.0 when one neighbour keeps a core busy;
* steal: the share of CPU time the hypervisor gave to other virtual machines;
* load_average: the 1-minute load average when the phase ended;
* torch threads against the cores this process may use.

`judge` turns the phases and the run's own step-time spread into a `TimingQuality` with reasons.
The thresholds are declared once below with what they rest on.
"""

from __future__ import annotations

import os
import resource
import time
from types import TracebackType

import psutil

from bench.measure.env import available_cores
from bench.measure.timing import percentile
from bench.records.results import PhaseContention, TimingQuality

# Others' CPU: a busy neighbour on a 2-core machine cost tiny-llama training 3.2x with 2 torch
# threads (docs/statistics.md). A quarter of a core is well above what a quiet machine shows (the
# harness's own parent process relaying progress) and well below one busy neighbour (about 1.0).
MAX_OTHERS_CPU = 0.25
# Steal above 5% means another guest is taking this VM's cores: timings drift with it.
MAX_STEAL = 0.05
# p90/p50 of the step times: a step that had to wait for a core takes about twice as long.
MAX_STEP_SPREAD = 2.0


def _total(times) -> float:
    """All CPU-seconds; guest time is already counted inside user time on Linux."""
    return sum(times) - getattr(times, "guest", 0.0) - getattr(times, "guest_nice", 0.0)


def _busy(times) -> float:
    """CPU-seconds the machine spent running anything (idle, iowait and steal are not running)."""
    return _total(times) - times.idle - getattr(times, "iowait", 0.0) - getattr(times, "steal", 0.0)


def sibling_pids() -> list[int]:
    """The other ranks of this run (torchrun's children beside this process), for CPU accounting."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) == 1:  # not several ranks
        return []
    try:
        return [child.pid for child in psutil.Process(os.getppid()).children() if child.pid != os.getpid()]
    except psutil.Error:
        return []


class ContentionMonitor:
    """Context manager: snapshots before and after a phase; `result` holds the PhaseContention."""

    def __init__(self, torch_threads: int | None = None) -> None:
        self.torch_threads = torch_threads
        self.result: PhaseContention | None = None
        self._process = psutil.Process()
        # the run's other ranks (execution.processes > 1) are the run's own work, not a neighbour's
        self._siblings = [psutil.Process(pid) for pid in sibling_pids()]
        self._sibling_cpu: dict[int, float] = {}

    def _own_cpu(self) -> float:
        times = self._process.cpu_times()
        own = times.user + times.system + times.children_user + times.children_system
        for sibling in self._siblings:
            try:
                sibling_times = sibling.cpu_times()
                self._sibling_cpu[sibling.pid] = sibling_times.user + sibling_times.system
            except psutil.Error:  # it has ended: its last reading stands
                pass
        return own + sum(self._sibling_cpu.values())

    def __enter__(self) -> ContentionMonitor:
        self._narrowed = False
        self._snapshot()
        return self

    def _snapshot(self) -> None:
        self._wall = time.perf_counter()
        self._machine = psutil.cpu_times()
        self._per_cpu = psutil.cpu_times(percpu=True)
        self._own = self._own_cpu()
        self._usage = resource.getrusage(resource.RUSAGE_SELF)

    def narrow(self) -> None:
        """Start the window again from now, the first time only: the training phase is entered before
        the strategy prepares the model and the trainer prepares its data (about 1.3 s on the smoke
        suite, against 0.7 s of steps), and a neighbour that ran only during the steps was averaged
        over both. bench.training calls this as the first trainer's steps begin."""
        if not self._narrowed:
            self._narrowed = True
            self._snapshot()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        seconds = time.perf_counter() - self._wall
        machine, own = psutil.cpu_times(), self._own_cpu()
        busy, stolen = per_cpu(self._per_cpu, psutil.cpu_times(percpu=True), seconds)
        usage = resource.getrusage(resource.RUSAGE_SELF)
        elapsed_cpu = _total(machine) - _total(self._machine)
        others = steal = None
        if seconds > 0 and elapsed_cpu > 0:
            # clamp at 0: the two counters tick at different moments, so a quiet machine can read -0.01
            others = max(0.0, (_busy(machine) - _busy(self._machine) - (own - self._own)) / seconds)
            steal = max(0.0, (getattr(machine, "steal", 0.0) - getattr(self._machine, "steal", 0.0)) / elapsed_cpu)
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = None
        self.result = PhaseContention(
            seconds=round(seconds, 3),
            others_cpu=None if others is None else round(others, 3),
            steal=None if steal is None else round(steal, 4),
            load_average=load,
            cores=available_cores(),
            torch_threads=self.torch_threads,
            minor_faults=usage.ru_minflt - self._usage.ru_minflt,
            involuntary_switches=usage.ru_nivcsw - self._usage.ru_nivcsw,
            cpu_busy=busy,
            cpu_steal=stolen,
        )


def per_cpu(before: list, after: list, seconds: float) -> tuple[list[float] | None, list[float] | None]:
    """Each logical CPU's busy CPU-seconds per second and steal share between two psutil readings."""
    if seconds <= 0 or len(before) != len(after):  # a CPU went offline meanwhile: no reading
        return None, None
    busy, stolen = [], []
    for first, last in zip(before, after):
        elapsed = _total(last) - _total(first)
        busy.append(round(max(0.0, _busy(last) - _busy(first)) / seconds, 3))
        steal = getattr(last, "steal", 0.0) - getattr(first, "steal", 0.0)
        stolen.append(round(max(0.0, steal) / elapsed, 4) if elapsed > 0 else 0.0)
    return busy, stolen


def judge(
    phases: dict[str, PhaseContention],
    step_seconds: list[float],
    reference_seconds: list[float] | None = None,
    reference_note: str | None = None,
) -> TimingQuality:
    """Contaminated when any timed phase shared the machine, or the run's own steps scattered."""
    reasons = []
    for name, phase in phases.items():
        if phase.others_cpu is not None and phase.others_cpu > MAX_OTHERS_CPU:
            reasons.append(f"{name}: other processes used {phase.others_cpu:.2f} cores (limit {MAX_OTHERS_CPU})")
        if phase.steal is not None and phase.steal > MAX_STEAL:
            reasons.append(f"{name}: CPU steal {phase.steal:.1%} (limit {MAX_STEAL:.0%})")
        if phase.torch_threads and phase.torch_threads > phase.cores:
            reasons.append(f"{name}: {phase.torch_threads} torch threads on {phase.cores} available cores")
    spread = None
    if len(step_seconds) >= 5:
        ordered = sorted(step_seconds)
        middle = percentile(ordered, 0.5)
        spread = round(percentile(ordered, 0.9) / middle, 3) if middle > 0 else None
        if spread is not None and spread > MAX_STEP_SPREAD:
            reasons.append(f"train: step times scattered (p90/p50 {spread:.2f}, limit {MAX_STEP_SPREAD})")
    return TimingQuality(
        contaminated=bool(reasons),
        reasons=reasons,
        phases=phases,
        step_time_spread=spread,
        reference_seconds=[round(value, 6) for value in reference_seconds or []],
        reference_note=reference_note,
    )
