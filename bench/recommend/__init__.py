"""`bench recommend`: which strategy to use under a memory limit, from measured records.

From the `ok` records of one suite (per suite where there are several; per machine and strategy label, as the
report groups them: bench.analysis.selection), each strategy gets its planning memory (the worst seed; a
tensor count is held with the reserve on top, as an estimate is), its accuracy on the learned task, its
forgetting and its training throughput (clean timing only) with their seed spread. The constraints (memory,
minimum accuracy, maximum forgetting) are met when the mean meets them, "marginal" when the seeds straddle the
limit. Among the strategies that meet them: the Pareto set and one recommendation, in a sentence, whose noise
verdict is the report's test of the pair alone ("cannot tell" where the design cannot reach alpha). Where the
user's model is larger than the measured one, the memory estimator (bench.estimate.model) predicts each
strategy's training memory on the user's model instead.

Imports no torch unless a model config is given (the report side builds on `recommend`).
"""

from bench.recommend.choice import choose, recommend, recommend_by_suite, suites_of
from bench.recommend.constraints import dominance, pareto_set
from bench.recommend.figures import (
    MEMORY_SOURCES,
    OBJECTIVES,
    Candidate,
    Figure,
    Recommendation,
    candidates_from,
    record_memory,
    throughput,
)
from bench.recommend.formatting import render_text
from bench.recommend.noise import Noise, item_noise, seed_noise, within_noise
from bench.recommend.user_model import count_parameters, load_model_config

__all__ = [
    "MEMORY_SOURCES",
    "Noise",
    "OBJECTIVES",
    "Candidate",
    "Figure",
    "Recommendation",
    "candidates_from",
    "choose",
    "count_parameters",
    "dominance",
    "item_noise",
    "load_model_config",
    "pareto_set",
    "recommend",
    "recommend_by_suite",
    "record_memory",
    "render_text",
    "seed_noise",
    "suites_of",
    "throughput",
    "within_noise",
]
