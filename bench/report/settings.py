"""The settings each compared strategy ran with: its learning rate (the setting that decides a ranking most:
strategy defaults span 2e-5 to 3e-2) and every other option that differs from its strategy's default, for
the HTML report's Settings table and the line above `bench run`'s table.

Defaults come from the strategy's own Options class (bench.strategies): the built-in strategy modules import
pydantic and bench.spec only, never torch (tests/test_report.py holds the report to that). A strategy whose
defaults this process cannot know (a plugin's, not imported here) is compared across the records instead:
its options that are not the same in all runs of that strategy are shown, and its rate is never called
"default". Defaults are this code's: a record written when a default was other says so as a non-default.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from bench.analysis import selection
from bench.analysis.gate import seconds_matched, steps_said
from bench.plan import canonical_spec
from bench.records.results import RunResult

HIDDEN = ("label", "learning_rate")  # the label names the row; the rate has its own column


def plain(value: Any) -> Any:
    """A value as a record stores it (JSON): tuples become lists, 16 and 16.0 compare equal."""
    return json.loads(json.dumps(value, default=str))


def text(value: Any) -> str:
    """An option's value as a suite file would spell it: 2e-05, 0.01, 16, all-linear, none."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    if value is None:
        return "none"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def strategy_defaults(kind: str) -> dict[str, Any] | None:
    """The option defaults of a built-in strategy, or None where this process cannot know them (a plugin's
    strategy, or options with a required field). Only bench/strategies/<kind>.py is imported: a plugin's
    module might import torch, which the report never does."""
    from bench.strategies import STRATEGIES

    if kind not in STRATEGIES or importlib.util.find_spec(f"bench.strategies.{kind}") is None:
        return None
    try:
        return plain(STRATEGIES.get(kind).Options().model_dump())
    except Exception:  # noqa: BLE001 (a required option: no defaults to compare with)
        return None


def options_of(record: RunResult) -> dict[str, Any]:
    """The run's options as its run id sees them (bench.plan.canonical_spec: an option added later, at its
    default, is left out of older and newer records alike), so two records of one spec never differ here."""
    return plain(canonical_spec(record.spec).get("options") or {})


def training_of(record: RunResult) -> dict[str, Any]:
    """The run's training settings, as its run id sees them (gradient checkpointing off: left out)."""
    return plain(canonical_spec(record.spec).get("training") or {})


def kind_of(record: RunResult) -> str:
    return str(record.spec.get("strategy") or record.strategy)


def varying(records: list[RunResult], of: Any) -> set[str]:
    """The keys whose values are not the same in all `records` (one missing counts as differing)."""
    found = [of(record) for record in records]
    keys = {key for values in found for key in values}
    return {key for key in keys if len({json.dumps(values.get(key), sort_keys=True) for values in found}) > 1}


def other_settings(
    options: dict[str, Any], defaults: dict[str, Any] | None, across_kind: set[str], training: dict[str, Any]
) -> list[str]:
    """The options that differ from the defaults ("r=16 (default 8)"; an option the defaults lack: "(no
    default)"), or without defaults those in `across_kind`; then the training settings in `training`."""
    shown = []
    for key in sorted(k for k in options if k not in HIDDEN):
        value = options[key]
        if defaults is None:
            shown += [f"{key}={text(value)}"] if key in across_kind else []
        elif key not in defaults:
            shown.append(f"{key}={text(value)} (no default)")
        elif value != defaults[key]:
            shown.append(f"{key}={text(value)} (default {text(defaults[key])})")
    return shown + [f"training.{key}={text(value)}" for key, value in sorted(training.items())]


def compared_runs(records: list[RunResult]) -> dict[str, list[RunResult]]:
    """The runs of each strategy key as the results table groups them: the comparable runs that ended ok
    (all of them where none did, so a report of failed runs still says what they ran with)."""
    chosen = selection.comparable(records).records
    ok = [record for record in chosen if record.status == "ok"]
    return selection.keyed_records(ok or chosen)


def settings_rows(records: list[RunResult], keyed: dict[str, list[RunResult]] | None = None) -> list[dict[str, Any]]:
    """One row per strategy key, or one per set of its seeds that ran with other settings (one spec should
    not, but records can): strategy, seeds, rate, whether the rate is the default (None: unknown), and the
    other settings that differ from the defaults (and the training settings that differ between runs), and the
    steps each seed's run did (`steps`: what a budget matched by seconds leaves to the machine)."""
    keyed = compared_runs(records) if keyed is None else keyed  # `keyed`: compared_runs(records), taken once
    runs = [record for group in keyed.values() for record in group]
    training_varies = varying(runs, training_of)
    of_kind: dict[str, list[RunResult]] = {}
    for record in runs:
        of_kind.setdefault(kind_of(record), []).append(record)
    across = {kind: varying(members, options_of) for kind, members in of_kind.items()}  # once a kind, not a key
    rows = []
    for key, group in keyed.items():
        kinds = {kind_of(record) for record in group}
        defaults = {kind: strategy_defaults(kind) for kind in kinds}
        variants: dict[str, dict[str, Any]] = {}
        for record in group:
            kind, options = kind_of(record), options_of(record)
            training = {k: v for k, v in training_of(record).items() if k in training_varies}
            found = defaults[kind]
            rate = options.get("learning_rate")
            row = {
                "strategy": key,
                "kind": kind,
                "rate": rate,
                "default": None if found is None or rate is None else rate == found.get("learning_rate"),
                "default_rate": None if found is None else found.get("learning_rate"),
                "others": other_settings(options, found, across[kind] - set(HIDDEN), training),
            }
            same = variants.setdefault(json.dumps(row, sort_keys=True), {**row, "runs": []})
            same["runs"].append(record)
        for row in variants.values():
            done = sorted(row.pop("runs"), key=lambda record: record.seed)
            steps = [record.budget.get("steps_done") for record in done]
            rows.append({**row, "seeds": [r.seed for r in done], "split": len(variants) > 1, "steps": steps})
    return rows


def shared_training(keyed: dict[str, list[RunResult]]) -> list[str]:
    """The training settings every compared run (compared_runs) shares ("optimizer=adamw_torch", ...): said once."""
    runs = [record for group in keyed.values() for record in group]
    differ = varying(runs, training_of)
    first = training_of(runs[0]) if runs else {}
    return [f"{key}={text(value)}" for key, value in sorted(first.items()) if key not in differ]


def rate_text(row: dict[str, Any]) -> str:
    """`0.01`, `2e-05 (default)`, or `not recorded`."""
    if row["rate"] is None:
        return "not recorded"
    return text(float(row["rate"])) + (" (default)" if row["default"] else "")


def default_text(row: dict[str, Any]) -> str:
    """The strategy's default rate beside a rate that is not it (`default 0.0002`), else ""."""
    known = row["default_rate"] is not None and row["rate"] is not None and not row["default"]
    return f"default {text(float(row['default_rate']))}" if known else ""


def rate_note(rows: list[dict[str, Any]]) -> str | None:
    """Where the strategies ran at different learning rates: that a ranking holds at those rates only."""
    rates = sorted({float(row["rate"]) for row in rows if row["rate"] is not None})
    if len(rates) < 2:
        return None
    return (
        f"Learning rates differ between strategies ({text(rates[0])} to {text(rates[-1])}): each strategy's "
        "results, and so the ranking, hold at the rate it ran with, not at its best; a learning-rate sweep per "
        "strategy is how to compare them at their best."
    )


def steps_text(row: dict[str, Any]) -> str:
    """`98 steps`, or per seed where its seeds' runs did different steps: `98, 91 steps`."""
    return f"{steps_said(row['steps'])} steps"


def time_budgeted(keyed: dict[str, list[RunResult]]) -> bool:
    """Whether any compared run (compared_runs) had its budget matched by seconds (`budget.match: seconds`)."""
    return any(seconds_matched(record) for group in keyed.values() for record in group)


def seconds_note(keyed: dict[str, list[RunResult]], rows: list[dict[str, Any]]) -> str | None:
    """Where any compared run's budget was matched by seconds: that its quality is the machine's, and how
    to reproduce a run (a step budget of the steps it did), with one run's number."""
    if not time_budgeted(keyed):
        return None
    example = next(((row, seed, n) for row in rows for seed, n in zip(row["seeds"], row["steps"]) if n), None)
    run = f" (e.g. {example[0]['strategy']} seed {example[1]}: steps: {example[2]})" if example else ""
    return (
        "Budget matched by seconds: each run trained for as many steps as fit in max_seconds (the steps done "
        "column), so quality under a time budget depends on the machine's speed and load, and a rerun of the same "
        f"run can differ. To reproduce a run, set budget.steps to its steps done{run}, without max_seconds "
        "and match: seconds."
    )


def settings_section(records: list[RunResult]) -> dict[str, Any]:
    """What the report's Settings table shows: its rows, the note on differing rates, the shared training,
    and where budgets were matched by seconds (`seconds`: the warning) each row's steps done."""
    keyed = compared_runs(records)
    rows = [
        {**row, "rate_text": rate_text(row), "default_text": default_text(row), "steps_text": steps_text(row)}
        for row in settings_rows(records, keyed)
    ]
    seconds = seconds_note(keyed, rows)
    return {"rows": rows, "note": rate_note(rows), "training": shared_training(keyed), "seconds": seconds}


def rates_line(records: list[RunResult]) -> str:
    """`learning rates: full 2e-05 (default), lora 0.01, ...`, for the terminal, above `bench run`'s table;
    a strategy whose seeds ran at several rates lists each with its seeds; "" where no run was compared."""
    parts: dict[str, list[str]] = {}
    for row in settings_rows(records):
        parts.setdefault(row["strategy"], []).append(rate_text(row) + (_seeds(row) if row["split"] else ""))
    said = ", ".join(f"{key} {' / '.join(found)}" for key, found in parts.items())
    return f"learning rates: {said}" if parts else ""


def _seeds(row: dict[str, Any]) -> str:
    """ " (seeds 0, 1)": which seeds a row holds, for a strategy said once per set of them."""
    return f" (seed{'s' * (len(row['seeds']) > 1)} {', '.join(map(str, row['seeds']))})"


def steps_line(records: list[RunResult]) -> str:
    """Where a compared run's budget was matched by seconds, the line under the rates: each strategy's steps
    done (per seed where they differ) and how to reproduce a run; "" otherwise."""
    keyed = compared_runs(records)
    if not time_budgeted(keyed):
        return ""
    parts: dict[str, list[str]] = {}
    for row in settings_rows(records, keyed):
        parts.setdefault(row["strategy"], []).append(
            steps_said(row["steps"]) + _seeds(row) * (len(set(row["steps"])) > 1)
        )
    said = "; ".join(f"{key} {' / '.join(found)}" for key, found in parts.items())
    return (
        f"budget matched by seconds, steps done: {said}. Quality depends on this machine's speed and load: to"
        " reproduce a run, set budget.steps to its steps done"
    )


def loss_kind(record: RunResult) -> str:
    """What loss a run minimises: its strategy's objective (sft, dpo, rlhf; bench.strategies) and, where
    the options name one, its `loss_type` (DPO's sigmoid, ipo, hinge, ...); a strategy this process does
    not know (a plugin's) is its own kind."""
    from bench.strategies import STRATEGIES

    kind = kind_of(record)
    try:
        objective = str(STRATEGIES.get(kind).objective)
    except Exception:  # noqa: BLE001 (not registered here: a plugin's)
        objective = kind
    loss_type = options_of(record).get("loss_type")
    return f"{objective}:{loss_type}" if loss_type else objective
