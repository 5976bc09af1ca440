"""`bench estimate`, `bench recommend` and `bench scaling`: planning memory and scale, from a suite's
configuration or from measured records (docs/memory.md, docs/scaling.md)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from bench.cli.output import console, plain
from bench.cli.paths import user_path
from bench.estimate.suite import DEFAULT_RESERVE
from bench.suite import load_suite


def _limit(flag: str, value: float | None, low: float, high: float) -> str | None:
    """Why a numeric option is out of range (naming the option and the value), or None."""
    if value is None or (math.isfinite(value) and low <= value <= high):
        return None
    return f"{flag} must be between {low:g} and {high:g}, got {value!r}"


def _budget_most(field: str) -> int:
    """The largest value a suite's budget takes for `field` (bench/spec.py Budget), so the estimate is
    refused as the suite would be, in one line."""
    from bench.spec import Budget

    return next(int(m.le) for m in Budget.model_fields[field].metadata if getattr(m, "le", None) is not None)


MOST_BYTES = 2**50  # 1 PiB: a size past it is a typo (1e30GiB), not a device


def memory_size(flag: str, text: str, allow_zero: bool = False) -> int:
    """A memory size with its unit ('24GiB', '80GB') in bytes; a bare number is refused (24 bytes is never
    what was meant), zero where allowed excepted. Raises ValueError naming the flag."""
    from bench.estimate.model import parse_bytes

    cleaned = text.strip().lower().replace(" ", "")
    if cleaned and cleaned == cleaned.rstrip("abcdefghijklmnopqrstuvwxyz"):  # no unit
        if not (allow_zero and cleaned.replace(".", "").strip("0") == ""):
            raise ValueError(f"{flag}: {text!r} has no unit: give a unit, e.g. 24GiB, 80GB, 512MiB")
    try:
        size = parse_bytes(text, allow_zero=True)
    except ValueError as error:
        raise ValueError(f"{flag}: {error}") from error
    if size == 0 and not allow_zero:
        raise ValueError(f"{flag}: {text!r} is no memory at all: give a size above 0, e.g. 24GiB")
    if size > MOST_BYTES:
        raise ValueError(f"{flag}: {text!r} is more than any machine holds (at most 1 PiB)")
    return size


def _no_room(reserve: str, flag: str, memory: str) -> str:
    return (
        f"--reserve {reserve} leaves nothing of {flag} {memory}: give a smaller --reserve (kept free beside"
        " the estimate for the CUDA context and allocator slack; 0GiB for none)"
    )


def _estimate_sizes(args: argparse.Namespace) -> tuple[int | None, int, list[int] | None]:
    """--device-memory and --reserve in bytes, and --batch-sizes; a ValueError names the option."""
    device = memory_size("--device-memory", args.device_memory) if args.device_memory else None
    reserve = memory_size("--reserve", args.reserve, allow_zero=True)
    if device is None and args.reserve != DEFAULT_RESERVE:
        raise ValueError(f"--reserve {args.reserve} is held beside --device-memory: give --device-memory too")
    if device is not None and reserve >= device:
        raise ValueError(_no_room(args.reserve, "--device-memory", args.device_memory))
    most = _budget_most("seq_len")
    if args.tokens is not None and not 1 <= args.tokens <= most:
        raise ValueError(f"--tokens must be a count from 1 to {most}, got {args.tokens}")
    if args.batch_sizes is None:
        return device, reserve, None
    from bench.estimate.batches import parse_batch_sizes

    batch_sizes = parse_batch_sizes(args.batch_sizes)
    most = _budget_most("batch_size")
    if batch_sizes[-1] > most:
        raise ValueError(f"--batch-sizes: each must be from 1 to {most}, got {batch_sizes[-1]}")
    if device is None:
        raise ValueError("--batch-sizes needs --device-memory (which batches fit what)")
    return device, reserve, batch_sizes


def _estimate_config(args: argparse.Namespace, suite: Any, note: Any) -> Any:
    """The model config to estimate on (--model-config, else the suite's model); a ValueError or OSError
    says what is wrong in one line, naming the flag where it is the flag's."""
    from bench.estimate.suite import suite_model_config
    from bench.recommend import load_model_config

    try:
        return load_model_config(args.model_config) if args.model_config else suite_model_config(suite.model, note)
    except ValueError as error:  # load_model_config names the file
        raise ValueError(f"{'--model-config: ' * bool(args.model_config)}{error}") from error


def _estimate_lengths(args: argparse.Namespace, suite: Any, note: Any) -> tuple[str, Any]:
    """Where the tokens per sequence come from, and the suite data's lengths where they are used."""
    from bench.estimate.suite import suite_lengths

    if args.tokens is not None:
        return "--tokens", None
    if args.model_config:  # another model's tokenizer: the suite's data says nothing of its lengths
        return "seq_len (another model's config)", None
    found = suite_lengths(suite, note)
    if not found:
        return "seq_len", None
    from bench.strategies import STRATEGIES

    pairs = [e.label for e in suite.strategies if e.name in STRATEGIES and STRATEGIES.get(e.name).objective != "sft"]
    # DPO and RLHF are planned at budget.seq_len whatever their pairs' lengths (docs/memory.md): said, as the
    # header spoke for every row (audit user17: "longest training example" over a DPO row at seq_len 128)
    where = f"longest training example; {', '.join(pairs)}: seq_len" if pairs else "longest training example"
    return where, lambda: found


def _estimate(args: argparse.Namespace) -> int:
    from bench.estimate.suite import fits, planning_device, render, suite_estimates

    suite = load_suite(args.suite)
    try:
        device, reserve, batch_sizes = _estimate_sizes(args)
    except ValueError as error:
        plain(f"bench estimate: {error}")
        return 2
    note = (lambda message: None) if args.json and args.quiet else (lambda message: plain(message))
    try:
        config = _estimate_config(args, suite, note)
    except (ValueError, OSError) as error:
        plain(f"bench estimate: {error}")
        return 2
    source, lengths = _estimate_lengths(args, suite, note)
    # a suite whose execution.device is auto is estimated for a GPU where --device-memory asks about one
    planned_for, why_device = planning_device(suite.execution.device, device)
    # an entry whose options the model or the estimator cannot take (an adapter's sites, an optimizer it
    # does not know) is named with its error, after the others' estimates, and the exit is 2
    estimates, skipped, failed = suite_estimates(suite, config, lengths, lambda message: None, args.tokens, planned_for)
    if failed and not estimates and not skipped and len(set(failed.values())) == 1:  # the suite's, not an entry's
        plain(f"bench estimate: {next(iter(failed.values()))}")
        return 2
    if estimates:
        plain(render(estimates, device, reserve, source, why_device), console)
    for label, why in skipped.items():
        plain(f"{label}: not applicable to this model ({why})", console)
    for label, why in failed.items():
        plain(f"{label}: cannot estimate: {why}", console)
    answers = []
    if batch_sizes is not None and device is not None:
        from bench.estimate.batches import largest_batches, render_batches

        answers = largest_batches(suite, config, batch_sizes, device, reserve, lengths, args.tokens, planned_for)
        if skipped or failed:  # else the estimates' table ends in a blank line of its own
            plain("", console)
        plain(render_batches(answers, device, reserve, batch_sizes), console)
    if args.json:
        payload = {
            "suite": suite.name,
            "model_config": str(args.model_config) if args.model_config else None,
            "device_bytes": device,
            "reserve_bytes": reserve,
            "tokens_source": source,
            "estimated_for": planned_for,
            "estimated_for_reason": why_device,
            "estimates": [
                {
                    "label": e.label,
                    "strategy": e.strategy,
                    **e.as_dict(),
                    "fits": None if device is None else fits(e, device, reserve),
                }
                for e in estimates
            ],
            "not_applicable": skipped,
            "not_estimated": failed,
            "largest_batches": [answer.as_dict() for answer in answers],
        }
        _write_json(args.json, payload)
    too_big = [e.label for e in estimates if device is not None and not fits(e, device, reserve)]
    if too_big:
        at = f" at the suite's batch ({suite.budget.batch_size})" if batch_sizes is not None else ""
        plain(f"will not fit in {args.device_memory}{at}: {', '.join(too_big)}", console)
    return 2 if failed else 0


def _write_json(path: Path, payload: dict) -> None:
    import json

    from bench.records.store import atomic_write_text

    atomic_write_text(path, json.dumps(payload, indent=2) + "\n")


def _scaling(args: argparse.Namespace) -> int:
    from bench.analysis.snapshot import load_set
    from bench.recommend.scaling import processes_of, render, scaling

    try:
        one, many = load_set(args.one), load_set(args.many)
        rows = scaling(one, many)
    except FileNotFoundError as error:
        plain(f"bench scaling: {error}")
        return 2
    if not rows:
        plain("bench scaling: no strategy label is in both sets")
        return 2
    plain(render(rows), console)
    if not any(row.compared for row in rows):
        swapped = any(processes_of(r) > 1 for r in one) and all(processes_of(r) == 1 for r in many)
        hint = ": are ONE and MANY swapped? (bench scaling ONE MANY: 1-process runs first)" if swapped else ""
        plain(f"bench scaling: nothing to scale{hint}")
        return 2
    return 0


def _recommend_inputs(args: argparse.Namespace) -> tuple[int, int, list, object] | str:
    """(memory bytes, reserve bytes, records, model config or None), or what is wrong with the input."""
    from bench.analysis.snapshot import load_set
    from bench.recommend import load_model_config

    try:
        memory = memory_size("--memory", args.memory)
        reserve = memory_size("--reserve", args.reserve, allow_zero=True)
    except ValueError as error:
        return str(error)
    if args.model_config and reserve >= memory:  # the reserve is held beside the estimate only
        return _no_room(args.reserve, "--memory", args.memory)
    problems = [
        _limit("--min-accuracy", args.min_accuracy, 0, 1),
        _limit("--max-forgetting", args.max_forgetting, 0, 1),
    ]
    if any(problems):
        return "; ".join(p for p in problems if p)
    try:
        records = load_set(args.results)  # failed ones too: a strategy whose runs all failed is rejected, with why
    except FileNotFoundError as error:
        return str(error)
    except ValueError as error:  # a JSON file below it that is not a record
        return f"{args.results}: {error}"
    if not any(record.status == "ok" for record in records):
        return f"no successful (ok) runs under {args.results}"
    try:
        config = load_model_config(args.model_config) if args.model_config else None
    except ValueError as error:
        return f"--model-config: {error}"
    return memory, reserve, records, config


def _recommend(args: argparse.Namespace) -> int:
    """One recommendation per suite (a section each where the records hold several); exit 1 where a suite
    has nothing that fits."""

    from bench.recommend import recommend_by_suite, render_text

    inputs = _recommend_inputs(args)
    if isinstance(inputs, str):
        plain(f"bench recommend: {inputs}")
        return 2
    memory, reserve, records, config = inputs
    options = {"min_accuracy": args.min_accuracy, "max_forgetting": args.max_forgetting, "reserve_bytes": reserve}
    try:
        results = recommend_by_suite(records, memory, **options, objective=args.objective, model_config=config)
    except ValueError as error:  # only the model config can be wrong here: the rest was checked above
        plain(f"bench recommend: --model-config: {error}")
        return 2
    several = len(results) > 1
    if several:
        plain(f"{len(results)} suites ({', '.join(results)}): a recommendation for each", console)
    for suite, result in results.items():
        if several:
            plain(f"\n== suite {suite} ==", console)
        plain(render_text(result, failure=False), console)  # the "no recommendation: why" line is the error's
    if args.json:
        payload = {s: r.to_json() for s, r in results.items()} if several else next(iter(results.values())).to_json()
        _write_json(args.json, {"suites": payload} if several else payload)
        plain(f"written: {args.json}", console)
    for suite, result in results.items():
        if result.choice is None:
            plain(f"no recommendation{f' ({suite})' * several}: {result.reason}")
    return 1 if any(result.choice is None for result in results.values()) else 0


def add_parsers(commands: Any) -> None:
    """The three subcommands, on `bench`'s subparsers."""
    estimate = commands.add_parser(
        "estimate",
        help="predict each run's training memory by component, and the step's peak, before running (docs/memory.md)",
    )
    estimate.add_argument("suite", type=user_path, help="suite YAML")
    estimate.add_argument(
        "--device-memory", metavar="SIZE", help="say which runs fit (their peak plus --reserve), e.g. 24GiB, 80GB"
    )
    estimate.add_argument(
        "--reserve",
        default=DEFAULT_RESERVE,
        metavar="SIZE",
        help=f"kept free for the CUDA context and allocator (default {DEFAULT_RESERVE}, measured on an H200)",
    )
    estimate.add_argument(
        "--model-config",
        type=user_path,
        metavar="CONFIG",
        help="a transformers config.json to use instead of the suite's model",
    )
    estimate.add_argument(
        "--tokens", type=int, metavar="N", help="tokens per sequence (default: the suite data's longest, or seq_len)"
    )
    estimate.add_argument(
        "--batch-sizes",
        metavar="N,N,...",
        help="with --device-memory: per strategy, the largest of these batch sizes that fits, "
        "without and with gradient checkpointing (e.g. 1,2,4,8,16)",
    )
    estimate.add_argument("--json", type=user_path, metavar="OUT", help="write the estimates as JSON")
    estimate.add_argument("--quiet", action="store_true", help="with --json: no progress lines")
    estimate.set_defaults(handler=_estimate)

    recommend = commands.add_parser(
        "recommend", help="the strategies that fit a memory limit, their Pareto set and one recommendation"
    )
    recommend.add_argument("results", type=user_path, help="a results root or suite folder; every record below it")
    recommend.add_argument("--memory", required=True, help="memory to train in, e.g. 24GiB, 80GB, 512MiB")
    recommend.add_argument("--min-accuracy", type=float, metavar="A", help="least mean accuracy on the learned task")
    recommend.add_argument(
        "--max-forgetting", type=float, metavar="F", help="largest mean accuracy drop on retained tasks, e.g. 0.05"
    )
    recommend.add_argument(
        "--objective",
        choices=("accuracy", "throughput"),
        default="accuracy",
        help="what to maximise (default accuracy)",
    )
    recommend.add_argument(
        "--model-config",
        type=user_path,
        metavar="CONFIG",
        help="your model's transformers config.json: estimate memory on it where it is larger than the measured one",
    )
    recommend.add_argument(
        "--reserve",
        default=DEFAULT_RESERVE,
        metavar="SIZE",
        help=f"kept free beside an estimate (--model-config) or a measured tensor count, as bench estimate does "
        f"(default {DEFAULT_RESERVE})",
    )
    recommend.add_argument("--json", type=user_path, metavar="OUT", help="write the full result as JSON")
    recommend.set_defaults(handler=_recommend)

    scaling = commands.add_parser(
        "scaling", help="scaling efficiency of multi-process runs (execution.processes) against one process"
    )
    scaling.add_argument("one", type=user_path, help="records of the 1-process runs")
    scaling.add_argument("many", type=user_path, help="records of the same suite with execution.processes > 1")
    scaling.set_defaults(handler=_scaling)
