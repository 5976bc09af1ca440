"""Shared by the fault injections: run `patch(module)` once `torch.optim.optimizer` is imported.

A stand-in for a library regression, applied from OUTSIDE the harness: a `sitecustomize` on
PYTHONPATH is imported by every Python process, so the harness's code, suite and run ids are
unchanged. Used by scripts/aa_experiment.py only.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
from collections.abc import Callable
from types import ModuleType

TARGET = "torch.optim.optimizer"


_TARGETED: dict[int, bool] = {}


def targeted() -> bool:
    """False in a worker whose strategy label is not $BENCH_FAULT_LABEL (when that is set): a fault
    can hit one strategy of a suite. Asked when the fault acts, not at import: with the warm backend,
    torch is imported by the server before any run. The worker's first argument is its spec file."""
    if os.getpid() not in _TARGETED:
        _TARGETED[os.getpid()] = _is_target()
    return _TARGETED[os.getpid()]


def _is_target() -> bool:
    wanted = os.environ.get("BENCH_FAULT_LABEL")
    if not wanted:
        return True
    spec = next((a for a in sys.argv[1:] if a.endswith(".json") and os.path.isfile(a)), None)
    if spec is None:
        return False
    with open(spec, encoding="utf-8") as stream:
        return json.load(stream).get("label") == wanted


class _AfterImport(importlib.abc.MetaPathFinder):
    def __init__(self, patch: Callable[[ModuleType], None]) -> None:
        self.patch = patch

    def find_spec(self, name, path, target=None):
        if name != TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        original, patch = spec.loader.exec_module, self.patch

        def exec_module(module: ModuleType) -> None:
            original(module)
            patch(module)

        spec.loader.exec_module = exec_module
        return spec


def after_optimizer_import(patch: Callable[[ModuleType], None]) -> None:
    sys.meta_path.insert(0, _AfterImport(patch))
