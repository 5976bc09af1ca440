"""Check a suite's data before any training: every data file it names is read once, and every problem
is returned (`file:line: field 'x': what is wrong`), so `bench validate` and `bench run` can refuse a
suite whose data no run could load, before a run starts. Never raises on bad data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from bench.spec import ModelSpec, TaskSpec
from bench.suite import Suite
from bench.tasks.base import ChoiceItem, Example, GenItem
from bench.tasks.files import read_rows, relative_to_here
from bench.tasks.rows import CONVERSATIONAL, LOSSES, Rows
from bench.tasks.split import OverlapError, check_overlap, declared_split, hashed_order, repeats

if TYPE_CHECKING:
    from bench.tasks.preference import PreferencePair


def data_problems(suite: Suite) -> list[str]:
    """Every problem of the suite's data files (task, retained tasks, preference pairs), at once."""
    problems: list[str] = []
    template = suite.model.chat_template
    if template and template.strip().endswith((".jinja", ".j2")) and "{" not in template:
        if not Path(template.strip()).expanduser().is_file():
            where = relative_to_here(Path(template.strip()).expanduser())
            problems.append(f"model.chat_template: no such template file {template.strip()!r}{where}")
    read: dict[Path, Rows] = {}
    for index, spec in enumerate([suite.task, *suite.retain]):
        field = "task" if index == 0 else f"retain[{index - 1}]"
        if spec.source not in ("jsonl", "dataset"):
            problems.extend(_generation_named(field, spec))
            problems.extend(_train_size(field, spec, suite) if index == 0 else [])
            continue
        path = Path(spec.path or "").expanduser()
        if path not in read:
            read[path] = rows = read_rows(path, spec.name)
            problems.extend(rows.problems)
            if not rows.problems:
                problems.extend(_overlap(spec, rows))
        rows = read[path]
        if rows.problems:
            continue
        problems.extend(_sizes(field, spec, rows, suite if index == 0 else None))
        problems.extend(_loss(field, spec, rows))
        problems.extend(_generation(field, spec, rows))
        chat = rows.message_contexts or (spec.generation is not None and spec.generation.chat_template)
        needs = rows.format in CONVERSATIONAL or chat
        if needs and suite.model.chat_template is None and not _has_template(suite.model):
            model = suite.model.preset or suite.model.path or suite.model.config
            kind = "preset" if suite.model.preset else "folder"
            what = (
                f"{rows.format} rows" if rows.format in CONVERSATIONAL else "generative contexts with the chat template"
            )
            problems.append(
                f"{field}.path: {what} need a chat template, and model {kind} {model!r} has none: "
                "give one with model.chat_template"
            )
    problems.extend(_preference(suite, read))
    return problems


def _has_template(model: ModelSpec) -> bool:
    """False where the model surely has no chat template (the tiny presets; a local folder without one);
    True where it has one or cannot be told without loading it (hub, GGUF: the run then says so)."""
    if model.preset:
        return False
    folder = model.path or model.config
    if not folder:
        return True
    folder_path = Path(folder).expanduser()
    if not folder_path.is_dir():
        return True  # the model loader names a missing folder
    if any((folder_path / name).is_file() for name in ("chat_template.jinja", "chat_template.json")):
        return True
    try:
        config = json.loads((folder_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    return not isinstance(config, dict) or bool(config.get("chat_template"))


def _sides(spec: TaskSpec, rows: Rows) -> tuple[list[Example], list[ChoiceItem | GenItem]]:
    """(training examples, evaluation items) as the task will have them: the file's training rows, or the
    declared split of its evaluation rows (bench.tasks.jsonl.build_jsonl)."""
    if rows.train:
        return rows.train, hashed_order(rows.items, spec.name)
    return declared_split(rows.items, spec.test_fraction, spec.name)


def _overlap(spec: TaskSpec, rows: Rows) -> list[str]:
    train, test = _sides(spec, rows)
    try:
        check_overlap(spec.name, train, test)
    except OverlapError as error:
        return [f"{rows.path}: {error}"]
    return []


def _sizes(field: str, spec: TaskSpec, rows: Rows, suite: Suite | None) -> list[str]:
    """A task needs evaluation items; the learned task (`suite` given) of a suite that trains on it (an sft
    strategy) needs a full batch of training examples: the trainer drops a partial batch (no step at all)."""
    train, test = _sides(spec, rows)
    declared = "" if rows.train else f"test_fraction {spec.test_fraction:g} of {len(rows.items)} evaluation row(s)"
    if not test:
        return [
            f"{rows.path}: {field}.test_fraction: 0 evaluation items ({declared} held out none): "
            "raise test_fraction or add evaluation rows"
        ]
    if suite is None or "sft" not in objectives_of(suite):
        return []
    usable, batch = min(len(train), spec.train_size), suite.budget.batch_size
    if not train:
        return [
            f"{rows.path}: {field}.test_fraction: 0 training examples ({declared} held out all): "
            "lower test_fraction or add training rows"
        ]
    if usable < batch:
        given = f"{len(train)} training row(s)" if rows.train else f"{len(train)} held-in item(s) of the declared split"
        return [
            f"{rows.path}: {field}.train_size: {usable} training example(s) ({given}, train_size {spec.train_size}) "
            f"< budget.batch_size {batch}: no full batch, so no training step; add rows or lower budget.batch_size"
        ]
    return []


def _train_size(field: str, spec: TaskSpec, suite: Suite) -> list[str]:
    """A built-in task (synthetic, olmo) has at most `train_size` training examples: a batch needs as many."""
    batch = suite.budget.batch_size
    if spec.train_size >= batch or "sft" not in objectives_of(suite):
        return []
    return [
        f"{field}.train_size: {spec.train_size} < budget.batch_size {batch}: no full batch, so no training step; "
        "raise train_size or lower budget.batch_size"
    ]


def objectives_of(suite: Suite) -> set[str]:
    """What the suite's strategies train: `sft` on the learned task (a chained run's parent is one), `dpo`
    and `rlhf` on preference pairs."""
    from bench.strategies import STRATEGIES

    return {STRATEGIES.get(strategy.name).objective for strategy in suite.strategies}


def _loss(field: str, spec: TaskSpec, rows: Rows) -> list[str]:
    accepted = LOSSES[rows.format or "prompt-completion"]
    if spec.loss is None or spec.loss in accepted:
        return []
    return [
        f"{field}.loss: {spec.loss!r} does not apply to the {rows.format or 'prompt-completion'} rows of "
        f"{rows.path} (accepted: {', '.join(accepted)})"
    ]


def _generation_named(field: str, spec: TaskSpec) -> list[str]:
    from bench.tasks.olmo_generative import GENERATIVE

    if spec.generation is None or (spec.source == "olmo" and spec.name in GENERATIVE):
        return []
    return [
        f"{field}.generation: task {spec.name!r} ({spec.source}) is multiple choice; `generation` is for "
        f"generative tasks (olmo {', '.join(GENERATIVE)}, or rows with `answer`)"
    ]


def _generation(field: str, spec: TaskSpec, rows: Rows) -> list[str]:
    """`generation:` only on generative rows; message contexts only with the chat template."""
    if spec.generation is None:
        return []
    if not rows.generative:
        return [f"{field}.generation: the rows of {rows.path} are multiple choice; `generation` is for generative rows"]
    if rows.message_contexts and spec.generation.chat_template is False:
        return [f"{field}.generation.chat_template: false, but the contexts of {rows.path} are messages"]
    return []


def _preference(suite: Suite, read: dict[Path, Rows]) -> list[str]:
    """The preference file's problems: its rows, its format against the model, its pairs against the tasks'
    evaluation items, and each seed's split (`read`: the task files data_problems read)."""
    spec = suite.preference
    if spec is None or not spec.jsonl:
        if problem := _pairs_from_task(suite):
            return [problem]
        return _pairs_per_batch(suite, spec.train_size, "preference.train_size", "built from the task") if spec else []
    from bench.tasks.preference import read_jsonl, split_key

    path = Path(spec.jsonl).expanduser()
    try:
        pairs = read_jsonl(path)
    except (OSError, ValueError, UnicodeDecodeError) as error:
        return list(getattr(error, "problems", None) or [f"preference.jsonl: {error}"])
    if len(pairs) < 2:  # bench.tasks.preference.split_pairs holds pairs out and trains on the rest
        return [f"{path}: preference.jsonl: needs at least 2 rows to hold one out, got {len(pairs)}"]
    if pairs[0].conversational and suite.model.chat_template is None and not _has_template(suite.model):
        model = suite.model.preset or suite.model.path or suite.model.config
        kind = "preset" if suite.model.preset else "folder"
        return [
            f"preference.jsonl: {pairs[0].format} pairs need a chat template, and model {kind} {model!r} has none: "
            "give one with model.chat_template"
        ]
    problems = _pairs_repeat_evaluation(suite, path, pairs, read)
    prompts = len({split_key(pair.prompt) for pair in pairs})
    if prompts < 2:  # split_pairs puts every pair of a prompt on one side
        return [
            *problems,
            f"{path}: preference.jsonl: all {len(pairs)} rows have one prompt ({_short(pairs[0].prompt)}), and "
            "the pairs of a prompt are either all trained on or all held out: add pairs with other prompts",
        ]
    return problems + _splits(suite, path, pairs, prompts)


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _pairs_repeat_evaluation(
    suite: Suite, path: Path, pairs: list[PreferencePair], read: dict[Path, Rows]
) -> list[str]:
    """Pairs a dpo/rlhf strategy trains on that repeat an evaluation item of the learned or a retained task,
    as SFT rows are checked (bench/tasks/split.py:repeats: the prompt, or a user turn, equal to an evaluation
    context after `overlap_key`; a whole text with an implicit prompt that starts with one): training on
    them teaches the answers the evaluation scores. Tasks read from files only: a synthetic task's training
    and evaluation draw on the same few prompts by design, an olmo task is read at run time."""
    from bench.tasks.preference import pair_example

    if not objectives_of(suite) - {"sft"}:
        return []  # the pairs are only scored (alignment metrics of sft runs), never trained on
    examples = [pair_example(pair) for pair in pairs]
    problems = []
    for index, spec in enumerate([suite.task, *suite.retain]):
        rows = read.get(Path(spec.path or "").expanduser()) if spec.source in ("jsonl", "dataset") else None
        if rows is None or rows.problems:
            continue
        clashes = repeats(examples, _sides(spec, rows)[1])
        if not clashes:
            continue
        first, item = clashes[0]
        lines = ", ".join(str(pairs[number].line) for number, _ in clashes[:5]) + (", ..." * (len(clashes) > 5))
        name = "chosen" if pairs[first].implicit else "prompt"
        task = "task" if index == 0 else f"retain[{index - 1}]"
        problems.append(
            f"{path}:{pairs[first].line}: field {name!r}: {len(clashes)} preference pair(s) (lines {lines}) repeat "
            f"evaluation items of {task} {spec.name!r} ({rows.path}; normalised text, as training rows are "
            f"checked), e.g. item {item} <- {_short(examples[first].prompt)}. DPO/RLHF on them trains on the "
            "answers the evaluation scores: remove them from the preference file"
        )
    return problems


def _splits(suite: Suite, path: Path, pairs: list[PreferencePair], prompts: int) -> list[str]:
    """Each seed's split as the run makes it (bench/tasks/preference.py: split_pairs by prompt, then
    drop_trained, which the worker runs): no held-out pair left to score, or fewer training pairs than a
    batch where a dpo/rlhf strategy trains on them, is the first failing seed's one problem."""
    from bench.tasks.preference import drop_trained, split_key, split_pairs

    heldout = suite.preference.heldout_size
    for seed in suite.seeds:
        data = split_pairs(pairs, heldout, str(path), seed)
        try:
            drop_trained(data)
        except ValueError:
            return [
                f"{path}: preference.jsonl: seed {seed}: all {len(data.heldout)} held-out pairs are also training "
                "pairs (the file repeats rows), so no run could score the align.* metrics: remove the repeated "
                "rows or add pairs with other prompts"
            ]
        given, advice = f"{len(pairs)} rows less heldout_size {heldout}", "add pairs or lower budget.batch_size"
        if len(data.heldout) < heldout:
            given = f"{len(pairs)} rows, heldout_size {heldout} clamped to {len(data.heldout)}: at least one prompt "
            given += "trains"
        elif len(data.heldout) > heldout:  # a held-out prompt's pairs all go with it
            held = prompts - len({split_key(pair.prompt) for pair in data.train})
            given = (
                f"{len(pairs)} rows less the {len(data.heldout)} pairs of the {held} prompt(s) seed {seed} holds out, "
                f"heldout_size {heldout}: the pairs of a prompt are held out together"
            )
            advice = "add pairs with other prompts or lower budget.batch_size"
        problems = _pairs_per_batch(suite, len(data.train), f"{path}: preference.heldout_size", given, advice)
        if problems:
            return problems
    return []


def few_distinct_heldout(suite: Suite, path: Path, pairs: list[PreferencePair]) -> list[str]:
    """Warnings, one per seed, where the held-out pairs the run will score (`split_pairs`, then
    `drop_trained`) are mostly copies: at most half of them distinct (`pair_key`). Every align.* metric
    is then a share of the copies, and the count of pairs overstates what was measured at least twofold
    (2 prompts each repeating one pair 50 times: 50 held-out pairs, 1 distinct, every metric 0 or 1).
    A few distinct pairs are not warned about: the count is honest there, and a small held-out set is the
    suite's choice. Run after the data check passed (`_splits` refuses what no run could split)."""
    from bench.tasks.preference import drop_trained, split_pairs

    warnings = []
    for seed in suite.seeds:
        data = drop_trained(split_pairs(pairs, suite.preference.heldout_size, str(path), seed))
        scored, distinct = len(data.heldout), data.heldout_distinct
        if 2 * distinct <= scored and distinct < scored:
            warnings.append(
                f"{path}: held-out: {scored} pairs, {distinct} distinct (seed {seed}): align.* metrics are the "
                f"outcome of {distinct} pair{'s' * (distinct != 1)}, each scored {scored / distinct:.3g} times on "
                "average; remove the repeated rows or add distinct pairs"
            )
    return warnings


def _pairs_from_task(suite: Suite) -> str | None:
    """Pairs built from the learned task (a `preference` block without `jsonl`, or none while a strategy
    trains on pairs) exist for synthetic tasks only (bench.tasks.preference.pairs_from_task)."""
    from bench.tasks.synthetic import SYNTHETIC_TASKS

    if suite.preference is None and not objectives_of(suite) - {"sft"}:
        return None  # nothing needs pairs
    task = suite.task
    if task.source == "synthetic" and task.name in SYNTHETIC_TASKS:
        return None
    needs = "the alignment metrics" if suite.preference is not None else "dpo/rlhf"
    return (
        f"preference: {needs} need preference pairs, and task {task.name!r} (source {task.source}) cannot build "
        f"them (from_task builds them from a synthetic task only: {', '.join(SYNTHETIC_TASKS)}); give "
        "`preference: {jsonl: <file>}`, rows of prompt/chosen/rejected (docs/alignment.md)"
    )


def _pairs_per_batch(
    suite: Suite, train: int, where: str, given: str, advice: str = "add pairs or lower budget.batch_size"
) -> list[str]:
    """A strategy that trains on the pairs (dpo, rlhf) needs a full batch of them, as sft needs examples."""
    batch = suite.budget.batch_size
    if train >= batch or not objectives_of(suite) - {"sft"}:
        return []
    return [
        f"{where}: {train} training pair(s) ({given}) < budget.batch_size {batch}: no full batch, so no "
        f"dpo/rlhf training step; {advice}"
    ]
