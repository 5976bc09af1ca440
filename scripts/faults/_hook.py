"""Shared by the fault injections: run `patch(module)` once `torch.optim.optimizer` is imported.

A stand-in for a library regression, applied from OUTSIDE the harness: a `sitecustomize` on
PYTHONPATH is imported by every Python process, so the harness's code, suite and run ids are
unchanged. Used by scripts/aa_experiment.py and scripts/history_experiment.py.
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


_TARGETED: dict[tuple[int, str], bool] = {}


def targeted(fault: str) -> bool:
    """False in a worker whose strategy label is not $BENCH_FAULT_LABEL_<FAULT> (or, for every fault,
    $BENCH_FAULT_LABEL) when set: a fault can hit one strategy of a suite. Asked when the fault acts,
    not at import: with the warm backend, torch is imported by the server before any run. The
    worker's first argument is its spec file."""
    key = (os.getpid(), fault)
    if key not in _TARGETED:
        _TARGETED[key] = _is_target(
            os.environ.get(f"BENCH_FAULT_LABEL_{fault.upper()}") or os.environ.get("BENCH_FAULT_LABEL")
        )
    return _TARGETED[key]


def _is_target(wanted: str | None) -> bool:
    if not wanted:
        return True
    spec = next((a for a in sys.argv[1:] if a.endswith(".json") and os.path.isfile(a)), None)
    if spec is None:
        return False
    with open(spec, encoding="utf-8") as stream:
        return json.load(stream).get("label") == wanted


_PATCHES: dict[str, list[Callable[[ModuleType], None]]] = {}


class _AfterImport(importlib.abc.MetaPathFinder):
    """One finder for every fault: each patch runs once its target module has executed."""

    def find_spec(self, name, path, target=None):
        if name not in _PATCHES:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None:
            return spec
        original = spec.loader.exec_module

        def exec_module(module: ModuleType) -> None:
            original(module)
            for patch in _PATCHES[name]:
                patch(module)

        spec.loader.exec_module = exec_module
        return spec


def after_import(target: str, patch: Callable[[ModuleType], None]) -> None:
    if not _PATCHES:
        sys.meta_path.insert(0, _AfterImport())
    _PATCHES.setdefault(target, []).append(patch)


def after_optimizer_import(patch: Callable[[ModuleType], None]) -> None:
    after_import(TARGET, patch)


def run_spec() -> dict:
    """The worker's spec (its first .json argument), or {} outside a worker."""
    spec = next((a for a in sys.argv[1:] if a.endswith(".json") and os.path.isfile(a)), None)
    if spec is None:
        return {}
    with open(spec, encoding="utf-8") as stream:
        return json.load(stream)
