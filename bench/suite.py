"""Suite YAML -> validated `Suite`. Every problem is reported at once, each naming its field path."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# Nothing absurd is accepted: every float is finite (no .inf, no .nan), every count fits the int32
# that torch and tokenizers index with, and the budget's sizes have ceilings no machine reaches.
MAX_COUNT = 2**31 - 1
MAX_SECONDS = 31 * 24 * 3600  # a month: no single run or cap is meant to last longer
PositiveInt = Annotated[int, Field(gt=0, le=MAX_COUNT)]
PositiveFloat = Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]  # scales, norms, temperatures
NonNegativeInt = Annotated[int, Field(ge=0, le=MAX_COUNT)]
Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS, allow_inf_nan=False)]
Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]  # numpy and torch seeds are unsigned 32-bit


class Strict(BaseModel):
    """Unknown keys are errors, never silently ignored; floats must be finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


class ModelSpec(Strict):
    """Exactly one source names the base model."""

    preset: str | None = None  # built-in model, pretrained once by the harness and cached
    path: str | None = None  # a local transformers folder
    hub: str | None = None  # a hub id (needs a network)
    gguf: str | None = None  # a GGUF file, converted once and cached
    packaged: str | None = None  # a model shipped inside a PyPI package
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"

    @model_validator(mode="after")
    def _one_source(self) -> ModelSpec:
        sources = [name for name in ("preset", "path", "hub", "gguf", "packaged") if getattr(self, name)]
        if len(sources) != 1:
            raise ValueError(f"expected exactly one of preset, path, hub, gguf, packaged; got {sources or 'none'}")
        return self


class TaskSpec(Strict):
    name: str
    source: Literal["synthetic", "jsonl", "olmo"] = "synthetic"
    path: str | None = None  # jsonl: the data file
    train_size: PositiveInt = 2000  # supervised examples available to training
    eval_limit: PositiveInt = 100  # evaluation items scored (keeps CPU runs bounded)
    # olmo/jsonl data with no shipped train split: share of items held out for evaluation, chosen by
    # the hash of their normalised text (deterministic; see bench.tasks.split). The rest is trained on.
    test_fraction: Annotated[float, Field(gt=0, lt=1)] = 0.5

    @model_validator(mode="after")
    def _path_for_jsonl(self) -> TaskSpec:
        if self.source == "jsonl" and not self.path:
            raise ValueError(f"task {self.name!r}: source jsonl needs `path` (a JSONL file)")
        return self


class Budget(Strict):
    """What every strategy gets, identically. Training stops at whichever cap is reached first."""

    steps: PositiveInt = 60  # optimizer steps
    batch_size: Annotated[int, Field(gt=0, le=2**20)] = 8  # sequences per optimizer step (per device)
    seq_len: Annotated[int, Field(gt=0, le=2**20)] = 32  # longest sequence in tokens; longer ones are truncated
    gradient_accumulation: Annotated[int, Field(gt=0, le=2**16)] = 1
    max_tokens: Annotated[int, Field(gt=0, le=10**15)] | None = None  # optional cap on non-padding training tokens
    max_seconds: Seconds | None = None  # optional cap on training wall-clock seconds
    # What is held equal across strategies. steps: the same optimizer steps and tokens.
    # seconds: the same training wall-clock (max_seconds stops it; steps is only an upper bound).
    # params: each strategy sizes itself (rank, adapter width, virtual tokens) to about
    # trainable_params_target trainable parameters; the chosen size is recorded in budget.sizing.
    match: Literal["steps", "seconds", "params"] = "steps"
    trainable_params_target: PositiveInt | None = None  # match: params only

    @model_validator(mode="after")
    def _match_has_its_field(self) -> Budget:
        if self.match == "seconds" and self.max_seconds is None:
            raise ValueError("match: seconds needs max_seconds (the wall-clock every strategy gets)")
        if (self.match == "params") != (self.trainable_params_target is not None):
            raise ValueError("trainable_params_target is required with match: params, and only there")
        return self


class Training(Strict):
    """Optimisation settings shared by all strategies (learning rates are per strategy)."""

    optimizer: str = "adamw_torch"
    lr_scheduler: str = "constant"  # short budgets: no decay, so steps are comparable
    warmup_ratio: Annotated[float, Field(ge=0, lt=1)] = 0.0
    weight_decay: Annotated[float, Field(ge=0, le=10)] = 0.0
    max_grad_norm: PositiveFloat = 1.0


class Measure(Strict):
    throughput_warmup_steps: NonNegativeInt = 2  # first steps left out of throughput
    accuracy: bool = True  # task accuracy and forgetting through lm-eval
    eval_batch_size: PositiveInt = 16
    latency: bool = True  # batch-1 generation latency
    latency_new_tokens: PositiveInt = 16
    latency_repeats: PositiveInt = 10
    latency_warmup: NonNegativeInt = 2


class Execution(Strict):
    # where runs execute (`bench ls`): warm forks each run from a server that imported the stack once;
    # local starts a fresh interpreter per run (the cold start, ~10 s more per run)
    backend: str = "warm"
    timeout_s: Seconds = 1800  # per run; a run past it is killed and recorded as failed
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch intra-op threads. None: 1 for models under 10M parameters (more threads buy nothing there
    # and cost 3x beside a busy neighbour), else every core this process may use (docs/statistics.md)
    threads: Annotated[int, Field(gt=0, le=4096)] | None = None


class PreferenceSpec(Strict):
    """Preference pairs for DPO, RLHF and the alignment metrics (see docs/alignment.md).

    Omitted from a suite: runs whose objective is not sft build pairs from the learned task, and
    sft runs get no alignment metrics. Named: every run of the suite gets alignment metrics.
    """

    jsonl: str | None = None  # a file of {"prompt", "chosen", "rejected"} rows (the TRL convention)
    from_task: bool = True  # without jsonl: derive pairs from the learned task (chosen = correct answer)
    train_size: PositiveInt = 1000  # pairs available to training (from_task), before the budget caps it
    heldout_size: PositiveInt = 100  # pairs kept out of training for the alignment metrics

    @model_validator(mode="after")
    def _one_source(self) -> PreferenceSpec:
        if not self.jsonl and not self.from_task:
            raise ValueError("expected `jsonl: <path>` or `from_task: true`")
        return self


class StrategyConfig(Strict):
    """One entry of `strategies`, after its options were validated by the strategy itself."""

    name: str
    label: str
    options: dict[str, Any]


class Suite(Strict):
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    description: str = ""
    model: ModelSpec
    task: TaskSpec
    retain: list[TaskSpec] = Field(default_factory=list)
    budget: Budget = Budget()
    seeds: Annotated[list[Seed], Field(min_length=1)] = [0]
    training: Training = Training()
    measure: Measure = Measure()
    execution: Execution = Execution()
    plugins: list[str] = Field(default_factory=list)  # modules that register extra strategies
    preference: PreferenceSpec | None = None  # preference pairs (DPO, RLHF, alignment metrics)
    strategies: Annotated[list[StrategyConfig], Field(min_length=1)]

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"expected distinct seeds, got {seeds}")
        return seeds


class SuiteError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


def _path(location: tuple[Any, ...]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _describe(error: dict[str, Any]) -> str:
    kind, context = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required field is missing"
    if kind == "int_parsing_size":
        return "expected an integer, and this one is far too large"
    if kind == "greater_than" and context.get("gt") == 0:
        return "expected a positive number" if isinstance(error.get("input"), float) else "expected a positive integer"
    message = error["msg"].removeprefix("Value error, ")
    return message.replace("Input should be", "expected", 1)


def _problems(error: ValidationError, prefix: tuple[Any, ...] = ()) -> list[str]:
    problems = []
    for item in error.errors():
        where = _path(prefix + tuple(item["loc"]))
        got = "" if item["type"] == "missing" else f", got {item['input']!r}"
        if item["type"] == "extra_forbidden":
            got = ""  # the path already ends with the unknown key
        problems.append(f"{where}: {_describe(item)}{got}")
    return problems


def _strategy_entries(raw: Any, problems: list[str]) -> list[dict[str, Any]]:
    """Each entry is `name` or `{name: {options}}`; options are validated by the strategy's model."""
    from bench.strategies import STRATEGIES

    if not isinstance(raw, list) or not raw:
        problems.append(f"strategies: expected a non-empty list, got {raw!r}")
        return []
    entries = []
    for index, entry in enumerate(raw):
        where = f"strategies[{index}]"
        if isinstance(entry, str):
            entry = {entry: {}}
        if not isinstance(entry, dict) or len(entry) != 1:
            problems.append(f"{where}: expected a strategy name or {{name: {{options}}}}, got {entry!r}")
            continue
        ((name, options),) = entry.items()
        if name not in STRATEGIES:
            problems.append(f"{where}: {STRATEGIES.unknown_message(name)}")
            continue
        if options is not None and not isinstance(options, dict):
            problems.append(f"{where}.{name}: expected a mapping of options, got {options!r}")
            continue
        try:
            validated = STRATEGIES.get(name).Options.model_validate(options or {})
        except ValidationError as error:
            problems.extend(_problems(error, ("strategies", index, name)))
            continue
        resolved = validated.model_dump()
        entries.append({"name": name, "label": resolved.pop("label") or name, "options": resolved})
    labels = [entry["label"] for entry in entries]
    for label in sorted({label for label in labels if labels.count(label) > 1}):
        problems.append(f"strategies: label {label!r} is used twice; give one of them `label:`")
    problems.extend(_chain_problems(entries))
    return entries


def _chain_problems(entries: list[dict[str, Any]]) -> list[str]:
    """An option `start_from: <label>` must name an sft strategy of the same suite (one level deep)."""
    from bench.strategies import STRATEGIES

    by_label = {entry["label"]: entry for entry in entries}
    problems = []
    for index, entry in enumerate(entries):
        parent = entry["options"].get("start_from")
        if parent in (None, "base"):
            continue
        where = f"strategies[{index}].{entry['name']}.start_from"
        if parent not in by_label:
            problems.append(f"{where}: expected 'base' or the label of a strategy in this suite, got {parent!r}")
        elif by_label[parent]["options"].get("start_from") not in (None, "base"):
            problems.append(f"{where}: {parent!r} itself starts from another run; chains are one level deep")
        elif STRATEGIES.get(by_label[parent]["name"]).objective != "sft":
            problems.append(f"{where}: {parent!r} is not a supervised (sft) strategy")
    return problems


def load_plugins(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def parse_suite(data: Any, source: str = "<suite>") -> Suite:
    if not isinstance(data, dict):
        raise SuiteError(source, [f"(top level): expected a mapping, got {type(data).__name__}"])
    problems: list[str] = []
    plugins = data.get("plugins") or []
    try:
        load_plugins(plugins if isinstance(plugins, list) else [])
    except ImportError as error:
        problems.append(f"plugins: cannot import {error.name!r}: {error}")
    strategies = _strategy_entries(data.get("strategies"), problems)
    try:
        suite = Suite.model_validate({**data, "strategies": strategies or [{"name": "_", "label": "_", "options": {}}]})
    except ValidationError as error:
        problems.extend(p for p in _problems(error) if not p.startswith("strategies"))
        raise SuiteError(source, problems) from None
    if problems:
        raise SuiteError(source, problems)
    return suite


def load_suite(path: Path | str) -> Suite:
    path = Path(path)
    if not path.exists():
        raise SuiteError(str(path), [f"file not found: {path}"])
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise SuiteError(str(path), [f"not valid YAML: {error}"]) from None
    return parse_suite(data, str(path))
