"""The warm server must not initialise CUDA on a GPU machine (a child forked after that cannot use CUDA,
and every run would start cold: issue 28, results/warm-gpu). Checked here on a CPU: a probe process
claims a GPU (torch.cuda.is_available, as torch's NVML check answers on a GPU machine) and traps
torch.cuda._lazy_init, the one door through which torch starts CUDA (get_device_capability, set_device,
the first CUDA tensor). On the H200 bitsandbytes went through that door at import (its compute
capability query); the trap sees the same on a CPU, so this guard catches the next such import."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

PROBE = """
import importlib, json, sys, traceback
import torch

calls = []


def trap(*args, **kwargs):
    calls.append([line.strip() for line in traceback.format_stack(limit=6)[:-1]])
    raise RuntimeError("CUDA initialisation trapped (tests/test_warm_gpu_imports.py)")


torch.cuda._lazy_init = trap
torch.cuda.is_available = lambda: True
torch.cuda.device_count = lambda: 1
from bench.backends import zygote

try:
    zygote.preload()
except Exception as error:  # an import that went on after the trap (CPU torch has no CUDA kernels)
    calls.append([f"preload failed: {error!r}"])
seen = {"server": calls[:], "imported": sorted(m for m in ("bitsandbytes", "peft", "trl") if m in sys.modules)}
calls.clear()
if importlib.util.find_spec("bitsandbytes") is not None:
    try:
        importlib.import_module("bitsandbytes")
    except Exception:
        pass  # bitsandbytes fails on after the trap: the call is what counts
    seen["bitsandbytes"] = calls[:]
print(json.dumps(seen))
"""


@pytest.fixture(scope="module")
def seen() -> dict:
    """One probe process: the GPU machine's preload, then (after it, in the same process) bitsandbytes."""
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_warm_servers_gpu_preload_never_initialises_cuda(seen: dict):
    assert seen["server"] == [], "CUDA initialised during the warm server's preload:\n" + json.dumps(seen["server"])
    assert seen["imported"] == []  # peft, trl and bitsandbytes are imported by each run on a GPU machine


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="bitsandbytes not installed")
def test_the_trap_sees_bitsandbytes_initialise_cuda_as_the_h200_did(seen: dict):
    """Without this, a trap that never fires would pass the test above for nothing."""
    assert seen["bitsandbytes"], (
        "bitsandbytes no longer initialises CUDA at import: PRELOAD_UNLESS_GPU may be preloadable"
    )
    assert any("get_device_capability" in line for line in seen["bitsandbytes"][0])
