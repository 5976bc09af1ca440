"""Per-phase peak memory: host RSS high-water mark on Linux, and CUDA allocator peaks.

The host peak of a phase is the process's resident peak while the phase ran (the model loaded
before it is included); the high-water mark is reset at the start of each phase.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from bench.measure.timing import cuda_in_use
from bench.records.results import Metric

_CLEAR_REFS = Path("/proc/self/clear_refs")
_STATUS = Path("/proc/self/status")
MIB = 1024 * 1024


def _read_status_kib(key: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_host_peak() -> str | None:
    """Reset the resident high-water mark to the current RSS; returns a reason if impossible."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError as error:
        return f"cannot reset the host peak ({_CLEAR_REFS}: {error.strerror or error})"
    return None


def current_rss_mib() -> float | None:
    kib = _read_status_kib("VmRSS")
    return None if kib is None else kib / 1024


def _cuda():
    """torch, when this process uses CUDA (bench.measure.timing.cuda_in_use); else None."""
    return sys.modules["torch"] if cuda_in_use() else None


def _no_cuda_reason() -> str:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        return "this run did not use CUDA"
    return "no CUDA device on this machine"


@dataclass
class PhaseMemory:
    phase: str
    host_peak_mib: float | None = None
    host_reason: str | None = None
    cuda_allocated_peak_mib: float | None = None
    cuda_reserved_peak_mib: float | None = None
    cuda_reason: str | None = None
    nvml_process_mib: float | None = None
    nvml_device_used_mib: float | None = None  # every process on the GPU(s) this process uses
    nvml_reason: str | None = None

    def metrics(self) -> dict[str, Metric]:
        def metric(value: float | None, reason: str | None) -> Metric:
            return Metric(value=value, unit="MiB", higher_is_better=False, reason=None if value is not None else reason)

        prefix = f"memory.{self.phase}"
        return {
            f"{prefix}.host_peak_mib": metric(self.host_peak_mib, self.host_reason),
            f"{prefix}.cuda_allocated_peak_mib": metric(self.cuda_allocated_peak_mib, self.cuda_reason),
            f"{prefix}.cuda_reserved_peak_mib": metric(self.cuda_reserved_peak_mib, self.cuda_reason),
            f"{prefix}.nvml_process_mib": metric(self.nvml_process_mib, self.nvml_reason or self.cuda_reason),
            f"{prefix}.nvml_device_used_mib": metric(self.nvml_device_used_mib, self.nvml_reason or self.cuda_reason),
        }


@dataclass
class MemoryTracker:
    """Context manager measuring one phase: `with MemoryTracker("train") as memory: ...`."""

    phase: str
    result: PhaseMemory = field(init=False)

    def __enter__(self) -> PhaseMemory:
        self.result = PhaseMemory(self.phase)
        if not _STATUS.exists():
            self.result.host_reason = "host peak needs Linux /proc/self/status"
        else:
            self.result.host_reason = reset_host_peak()
        torch = _cuda()
        if torch is None:  # a phase that starts CUDA (loading onto the GPU) reads its peak since the start
            self.result.cuda_reason = _no_cuda_reason()
        else:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        return self.result

    def __exit__(self, *exc_info: object) -> None:
        if self.result.host_reason is None:
            kib = _read_status_kib("VmHWM")
            self.result.host_peak_mib = None if kib is None else kib / 1024
            if kib is None:
                self.result.host_reason = "VmHWM missing from /proc/self/status"
        torch = _cuda()
        if torch is None:
            self.result.cuda_reason = _no_cuda_reason()
        else:
            self.result.cuda_reason = None
            torch.cuda.synchronize()
            self.result.cuda_allocated_peak_mib = torch.cuda.max_memory_allocated() / MIB
            self.result.cuda_reserved_peak_mib = torch.cuda.max_memory_reserved() / MIB
            process, device, reason = nvml_used_mib()
            self.result.nvml_process_mib, self.result.nvml_device_used_mib, self.result.nvml_reason = (
                process,
                device,
                reason,
            )


def nvml_used_mib() -> tuple[float | None, float | None, str | None]:
    """(this process's GPU memory, the used memory of the GPUs it is on, reason for what is missing)
    as the driver sees them (what nvidia-smi shows), at the end of the phase. The caching allocator
    keeps its peak reserve until emptied, so this is the phase's peak reserve plus the CUDA context."""
    try:
        import pynvml
    except ImportError:
        return None, None, "nvidia-ml-py is not installed (pip install '.[gpu]')"
    try:
        pynvml.nvmlInit()
        process_bytes, device_bytes = [], []
        for index in range(pynvml.nvmlDeviceGetCount()):  # every GPU: CUDA_VISIBLE_DEVICES renumbers them
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            mine = [
                p.usedGpuMemory
                for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)
                if p.pid == os.getpid() and p.usedGpuMemory is not None
            ]
            if mine:
                process_bytes += mine
                device_bytes.append(pynvml.nvmlDeviceGetMemoryInfo(handle).used)
        if not process_bytes:
            hidden = "NVML lists no memory for this process (a container may hide its pid)"
            if pynvml.nvmlDeviceGetCount() == 1:  # the only GPU must be ours: its whole use still tells
                return None, pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(0)).used / MIB, hidden
            return None, None, hidden
        return sum(process_bytes) / MIB, sum(device_bytes) / MIB, None
    except pynvml.NVMLError as error:
        return None, None, f"NVML: {error}"
