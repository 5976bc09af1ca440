"""The strategy registry: adding a method is one file in this folder plus one line here."""

from __future__ import annotations

from bench.registry import Registry
from bench.strategies.base import NotApplicable, PrepareContext, Strategy, StrategyOptions

__all__ = ["STRATEGIES", "NotApplicable", "PrepareContext", "Strategy", "StrategyOptions"]

STRATEGIES: Registry[Strategy] = Registry("strategy")
STRATEGIES.register("full", "bench.strategies.full:STRATEGY")
STRATEGIES.register("lora", "bench.strategies.lora:STRATEGY")
