"""Executors, by name (`bench run --executor`): where and how many runs of a suite go at once.

An executor sits above the per-run backends (bench/backends/): bench/execute.py hands it the runs
that are not stored yet and stores what it yields. A new executor (a Slurm array through submitit,
say) is one module implementing `bench.executors.base.Executor` plus one line here.
"""

from bench.registry import Registry

EXECUTORS: Registry = Registry("executor")
EXECUTORS.register("local", "bench.executors.local:LocalExecutor")  # one run after another, on this machine
EXECUTORS.register("ray", "bench.executors.ray:RayExecutor")  # one Ray task per run, on a Ray cluster
