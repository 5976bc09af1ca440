"""Suite YAML -> validated `Suite`. Every problem is reported at once, each naming its field path."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from bench.records.store import NOT_RECORDS
from bench.spec import (  # noqa: F401  (re-exported: a suite's parts, as users import them)
    MAX_COUNT,
    MAX_SECONDS,
    Budget,
    Execution,
    Gate,
    Measure,
    ModelSpec,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    PreferenceSpec,
    Seconds,
    Seed,
    Strict,
    TaskSpec,
    Training,
)
from bench.suite_problems import validation_problems


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
    gate: Gate | None = None  # how bench compare gates quality (minimum effects); not part of run ids
    strategies: Annotated[list[StrategyConfig], Field(min_length=1)]

    @field_validator("name")
    @classmethod
    def _not_a_kept_folder(cls, name: str) -> str:
        if name in NOT_RECORDS:  # <suite>/<machine>/logs/ and artefacts/ are skipped when a results folder is read
            raise ValueError(f"{name!r} is reserved: runs keep their {name} in folders of that name, never read")
        return name

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, seeds: list[int]) -> list[int]:
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"expected distinct seeds, got {seeds}")
        return seeds

    @model_validator(mode="after")
    def _fields_agree(self) -> Suite:
        """Checks that span several fields, each problem on its own line, naming its fields."""
        problems = [*self._retain_problems(), *self._batch_split_problems(), *self._strategy_batch_problems()]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _retain_problems(self) -> list[str]:
        """Each retained task once, and never the learned task: forgetting.<name> is one number per task."""
        problems, first = [], {}
        for index, task in enumerate(self.retain):
            if task.name == self.task.name:
                problems.append(f"retain[{index}]: {task.name!r} is the learned task (task.name), not one to retain")
            elif task.name in first:
                problems.append(f"retain[{index}]: {task.name!r} is retained twice (also retain[{first[task.name]}])")
            first.setdefault(task.name, index)
        return problems

    def _batch_split_problems(self) -> list[str]:
        processes, batch = self.execution.processes, self.budget.batch_size
        if batch % processes == 0:
            return []
        return [
            f"execution.processes: {processes} processes cannot split budget.batch_size {batch} evenly "
            "(the batch is global: each process takes batch_size / processes)"
        ]

    def _strategy_batch_problems(self) -> list[str]:
        """A batch a strategy cannot train on (RLOO and GRPO need whole groups of completions)."""
        from bench.strategies import STRATEGIES

        problems = []
        for index, entry in enumerate(self.strategies):
            if entry.name not in STRATEGIES:  # parse_suite's stand-in while the strategies have problems
                continue
            options = STRATEGIES.get(entry.name).Options.model_validate(entry.options)
            problem = getattr(options, "batch_problem", lambda batch: None)(self.budget.batch_size)
            if problem:
                problems.append(f"{problem} (strategies[{index}], {entry.label})")  # the budget's problem
        return problems


class SuiteError(ValueError):
    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s)\n{lines}")


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
            strategy = STRATEGIES.get(name)
        except Exception as error:  # a plugin's lazily registered module that fails as it is imported
            problems.append(f"{where}: strategy {name!r} cannot be loaded: {type(error).__name__}: {error}")
            continue
        if lacking := _lacking(strategy):  # a plugin's: bench's own are held to it by their tests
            problems.append(f"{where}: strategy {name!r} lacks {', '.join(lacking)} (the protocol: docs/strategies.md)")
            continue
        try:
            validated = STRATEGIES.get(name).Options.model_validate(options or {})
        except ValidationError as error:
            problems.extend(validation_problems(error, ("strategies", index, name), STRATEGIES.get(name).Options))
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


STRATEGY_PROTOCOL = ("objective", "Options", "prepare", "save")  # bench/strategies/base.py Strategy


def _lacking(strategy: Any) -> list[str]:
    """What of the strategy protocol a registered strategy does not have (a plugin's, written from a summary)."""
    return [name for name in STRATEGY_PROTOCOL if not hasattr(strategy, name)]


def load_plugins(modules: list[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def plugin_problems(modules: list[Any]) -> list[str]:
    """Import the suite's plugins; one line per plugin that cannot be imported or fails as it runs, naming it."""
    problems = []
    for module in modules:
        if not isinstance(module, str) or not module:
            problems.append(f"plugins: expected module names, got {module!r}")
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as error:
            missing = (
                " (not on the Python path: a module of your own needs its folder on PYTHONPATH, e.g."
                " `PYTHONPATH=. bench ...`; until it imports, what it registers is unknown below)"
                if error.name == module.split(".")[0] or error.name == module
                else f": it imports {error.name!r}, which is not installed"
            )
            problems.append(f"plugins: cannot import {module!r}{missing}")
        except Exception as error:  # a plugin is the user's code: anything it raises is its problem line
            problems.append(f"plugins: {module!r} failed as it was imported: {type(error).__name__}: {error}")
    return problems


def parse_suite(data: Any, source: str = "<suite>") -> Suite:
    if data is None:
        raise SuiteError(source, ["(top level): the suite is empty; it needs name, model, task, seeds and strategies"])
    if not isinstance(data, dict):
        raise SuiteError(source, [f"(top level): expected a mapping, got {type(data).__name__}"])
    problems: list[str] = []
    plugins = data.get("plugins") or []
    problems += plugin_problems(plugins if isinstance(plugins, list) else [])
    strategies = _strategy_entries(data.get("strategies"), problems)
    try:
        suite = Suite.model_validate({**data, "strategies": strategies or [{"name": "_", "label": "_", "options": {}}]})
    except ValidationError as error:
        problems.extend(p for p in validation_problems(error, model=Suite) if not p.startswith("strategies"))
        raise SuiteError(source, problems) from None
    if problems:
        raise SuiteError(source, problems)
    return suite


MERGE = "tag:yaml.org,2002:merge"  # `<<: *anchor` merges: its keys may be overridden


def duplicate_keys(node: yaml.Node | None, where: str = "", seen: set[int] | None = None) -> list[str]:
    """Each key given twice in one mapping, with its place (`budget.steps: duplicate key at line 5 (first
    at line 4)`), read from the composed YAML before YAML keeps the last one silently."""
    seen = set() if seen is None else seen
    if node is None or id(node) in seen:  # an alias is walked once
        return []
    seen.add(id(node))
    found: list[str] = []
    if isinstance(node, yaml.MappingNode):
        first: dict[str, int] = {}
        for key_node, value_node in node.value:
            if key_node.tag == MERGE:
                continue
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            place = f"{where}.{key}" if where else str(key)
            line = key_node.start_mark.line + 1
            if key is not None and first.setdefault(key, line) != line:
                found.append(f"{place}: duplicate key at line {line} (first at line {first[key]})")
            found.extend(duplicate_keys(value_node, place, seen))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found.extend(duplicate_keys(item, f"{where}[{index}]", seen))
    return found


def read_yaml(path: Path) -> Any:
    """The file's YAML; SuiteError naming the path for a folder, an unreadable or non-UTF-8 file, bad YAML
    or a key given twice."""
    if path.is_dir():
        raise SuiteError(str(path), [f"{path} is a folder, not a suite file"])
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise SuiteError(str(path), [f"not UTF-8 text (byte {error.start}): a suite is a YAML text file"]) from None
    except OSError as error:
        raise SuiteError(str(path), [f"cannot read it: {error.strerror or error}"]) from None
    loader = yaml.SafeLoader(text)
    loader.name = str(path)  # YAML's errors name the file, not "<unicode string>"
    try:
        node = loader.get_single_node()
        if duplicates := duplicate_keys(node):
            raise SuiteError(str(path), duplicates)
        data = None if node is None else loader.construct_document(node)
    except yaml.YAMLError as error:
        raise SuiteError(str(path), [f"not valid YAML: {error}"]) from None
    finally:
        loader.dispose()
    return data


def load_suite(path: Path | str) -> Suite:
    path = Path(path)
    if not path.exists():
        raise SuiteError(str(path), [f"file not found: {path}"])
    return parse_suite(read_yaml(path), str(path))
