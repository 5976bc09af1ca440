"""The strategy registry: adding a method is one file in this folder plus one line here."""

from __future__ import annotations

from bench.registry import Registry
from bench.strategies.base import NotApplicable, PrepareContext, Strategy, StrategyOptions

__all__ = ["STRATEGIES", "NotApplicable", "PrepareContext", "Strategy", "StrategyOptions"]

STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("full", "bench.strategies.full:STRATEGY")
STRATEGIES.register("lora", "bench.strategies.lora:STRATEGY")
STRATEGIES.register("adapter", "bench.strategies.adapter:STRATEGY")
STRATEGIES.register("qlora", "bench.strategies.qlora:STRATEGY")
STRATEGIES.register("prompt", "bench.strategies.prompt:STRATEGY")
STRATEGIES.register("prefix", "bench.strategies.prefix:STRATEGY")
STRATEGIES.register("bitfit", "bench.strategies.bitfit:STRATEGY")
STRATEGIES.register("ia3", "bench.strategies.ia3:STRATEGY")
STRATEGIES.register("freeze", "bench.strategies.freeze:STRATEGY")
STRATEGIES.register("dora", "bench.strategies.dora:STRATEGY")
STRATEGIES.register("vera", "bench.strategies.vera:STRATEGY")
STRATEGIES.register("loha", "bench.strategies.loha:STRATEGY")
STRATEGIES.register("dpo", "bench.strategies.dpo:STRATEGY")
STRATEGIES.register("rlhf", "bench.strategies.rlhf:STRATEGY")
