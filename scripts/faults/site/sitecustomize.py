"""Injects the faults named in $BENCH_FAULTS (comma-separated: slow_step, weak_lr) into every Python
process started with this folder on PYTHONPATH: a stand-in for a library regression, applied from
outside the harness (its code, suites and run ids are unchanged). Used by the A/A and history
experiments only; $BENCH_FAULT_LABEL limits a fault to one strategy label (see _hook.targeted)."""

import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
for _name in filter(None, os.environ.get("BENCH_FAULTS", "").split(",")):
    importlib.import_module(_name.strip())
