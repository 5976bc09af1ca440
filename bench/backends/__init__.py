"""Execution backends, by name (suite field `execution.backend`)."""

from bench.registry import Registry

BACKENDS: Registry = Registry("backend")
BACKENDS.register("local", "bench.backends.local:LocalBackend")  # a fresh interpreter per run (cold)
BACKENDS.register("warm", "bench.backends.warm:WarmBackend")  # forked from a pre-imported server
