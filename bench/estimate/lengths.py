"""What training will leave out at budget.seq_len, known before any run: the preference pairs DPO's and the
reward model's trainers drop (TRL 1.16's rules, tokenised as bench/training/alignment.py tokenises them),
and those they keep whose chosen and rejected are the same token ids there (nothing to learn), and chosen
answers systematically longer or shorter than rejected ones (align.preference_accuracy then measures
length). Here, not in bench/tasks/check.py: it needs the model's tokenizer (bench.models, bench.evaluate),
which the tasks folder below them may not import; `bench validate` and `bench run` call it after the data
check."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.estimate.suite import model_tokenizer
from bench.spec import ModelSpec
from bench.suite import Suite
from bench.tasks.check import objectives_of

# what each trainer leaves out of a pair longer than budget.seq_len (TRL 1.16; bench/training/alignment.py)
LENGTH_RULES = {
    "dpo": "DPOTrainer drops a pair whose prompt alone fills seq_len",
    "rlhf": "RewardTrainer drops a pair whose chosen or rejected sequence is longer than seq_len",
}


def too_long_pairs(suite: Suite) -> tuple[list[str], list[str]]:
    """(problems, warnings) of `preference.jsonl` known before any run: its training pairs the dpo/rlhf
    trainers would drop at budget.seq_len, or keep with chosen and rejected the same ids there (`_fate`),
    tokenised as they tokenise them: fewer left that differ than a batch (in any seed's split) is a problem;
    some dropped or identical a warning. Warnings too (every suite with a file, sft's too: they all score
    align.*): held-out sides of few distinct pairs (bench.tasks.check.few_distinct_heldout) and chosen
    answers systematically longer or shorter than rejected ones (`length_bias`, on the same token ids).
    Where the model's tokenizer cannot be read here, the trainers count and refuse at the start of
    training (bench/training/alignment.py). Run after the data check passed."""
    from bench.evaluate.rendering import dpo_ids
    from bench.tasks.check import few_distinct_heldout
    from bench.tasks.preference import read_jsonl

    if suite.preference is None or not suite.preference.jsonl:
        return [], []
    path = Path(suite.preference.jsonl).expanduser()
    pairs = read_jsonl(path)
    warnings = few_distinct_heldout(suite, path, pairs)
    tokenizer = _tokenizer(suite.model)
    if tokenizer is None:
        return [], warnings
    # one tokenization of every pair, as DPOTrainer and align.preference_accuracy take it: DPO's fates and
    # the answers' lengths both read it
    rendered = {id(pair): dpo_ids(tokenizer, pair) for pair in pairs}
    problems, dropped = _seq_len_fates(suite, path, pairs, tokenizer, rendered)
    if problems:
        return problems, []
    return [], warnings + dropped + length_bias(path, [rendered[id(pair)] for pair in pairs])


def _seq_len_fates(
    suite: Suite, path: Path, pairs: list[Any], tokenizer: Any, rendered: dict[int, Any]
) -> tuple[list[str], list[str]]:
    """(problems, warnings) of each dpo/rlhf objective's training pairs at budget.seq_len (`_verdict`),
    seed by seed: the first failing seed's problem, else the first seed's warnings that has any."""
    from bench.tasks.preference import split_pairs

    problems, warnings = [], []
    for objective in sorted(objectives_of(suite) & set(LENGTH_RULES)):
        seq_len = suite.budget.seq_len
        fates = {id(pair): _fate(objective, pair, tokenizer, seq_len, rendered[id(pair)]) for pair in pairs}
        said: list[str] = []
        for seed in suite.seeds:
            train = [
                fates[id(pair)] for pair in split_pairs(pairs, suite.preference.heldout_size, str(path), seed).train
            ]
            problem, seed_warnings = _verdict(suite, path, objective, seed, train)
            if problem:
                problems.append(problem)
                break
            said = said or seed_warnings  # the first seed that loses pairs says so
        warnings.extend(said)
    return problems, warnings


# chosen longer (or shorter) than rejected in at least this share of pairs: align.preference_accuracy,
# a summed log-likelihood ranking, then mostly measures length (a SmolLM2 DPO run: 0.0 before and after)
LENGTH_BIAS = 0.9


def length_bias(path: Path, rendered: list[tuple[list[int], list[int], list[int]]]) -> list[str]:
    """A warning where the chosen answer is longer in tokens than the rejected one in at least LENGTH_BIAS
    of the file's pairs, or shorter: align.preference_accuracy then sits near 0 (or 1) whatever training
    does, and align.reward_accuracy (against the base model, whose length bias cancels) is the one to read.
    `rendered`: each pair's (prompt, chosen, rejected) ids as DPOTrainer takes them (`dpo_ids`); the file's
    pairs, which both sides of every seed's split are drawn from."""
    if not rendered:
        return []
    chosen = [len(ids[1]) for ids in rendered]
    rejected = [len(ids[2]) for ids in rendered]
    longer = sum(c > r for c, r in zip(chosen, rejected))
    shorter = sum(c < r for c, r in zip(chosen, rejected))
    total = len(rendered)
    if max(longer, shorter) < LENGTH_BIAS * total:
        return []
    what, count, near = ("longer", longer, 0) if longer >= shorter else ("shorter", shorter, 1)
    return [
        f"{path}: the chosen answer is {what} than the rejected one in {count} of {total} pairs "
        f"({count / total:.0%}; mean {sum(chosen) / total:.1f} against {sum(rejected) / total:.1f} tokens): "
        f"align.preference_accuracy (summed log-likelihoods: every token lowers one) leans towards {near} "
        "whatever training does; read align.reward_accuracy (relative to the base model), not it"
    ]


def _verdict(
    suite: Suite, path: Path, objective: str, seed: int, fates: list[str | None]
) -> tuple[str | None, list[str]]:
    """(problem, warnings) of one seed's training pairs, given each one's `_fate`."""
    seq_len, batch, rule = suite.budget.seq_len, suite.budget.batch_size, LENGTH_RULES[objective]
    gone, same = fates.count("dropped"), fates.count("identical")
    left, differ = len(fates) - gone, len(fates) - gone - same
    what = f"{gone} of {len(fates)} training pairs (seed {seed}) too long for budget.seq_len {seq_len}"
    alike = (
        f"{same} of {len(fates)} training pairs (seed {seed}) have chosen and rejected with the same token ids at "
        f"budget.seq_len {seq_len} (they differ only after seq_len tokens, or tokenize alike: words the "
        "tokenizer does not know)"
    )
    if left < batch:
        return (
            f"{path}: preference.jsonl: {what} ({rule}), leaving {left} < budget.batch_size {batch}: no "
            f"{objective} training step; raise budget.seq_len or shorten the pairs"
        ), []
    if differ < batch:
        also = f"; and {what} ({rule})" if gone else ""
        return (
            f"{path}: preference.jsonl: {alike}{also}, leaving {differ} that differ < budget.batch_size {batch}: no "
            f"preference for {objective} to learn (DPO's loss stays at ln 2); make chosen and rejected differ in "
            "their first tokens or raise budget.seq_len"
        ), []
    warnings = [f"{path}: {what} would be dropped from {objective} training ({rule})"] if gone else []
    if same:
        warnings.append(f"{path}: {alike}: {objective} learns nothing from them")
    return None, warnings


def _fate(objective: str, pair: Any, tokenizer: Any, seq_len: int, rendered: Any) -> str | None:
    """What the trainer makes of a pair at seq_len: "dropped" (LENGTH_RULES), "identical" (kept, chosen and
    rejected the same ids once cut: the trainers' own rule, bench.training.alignment.same_ids), or None
    (trained on). `rendered`: the pair's `dpo_ids`."""
    from bench.evaluate.rendering import reward_ids
    from bench.training.alignment import same_ids

    if objective == "dpo":
        prompt, chosen, rejected = rendered
        if len(prompt) >= seq_len:
            return "dropped"
        return "identical" if same_ids(prompt, chosen, rejected, seq_len) else None
    sides = [reward_ids(tokenizer, pair.prompt, answer) for answer in (pair.chosen, pair.rejected)]
    if max(len(ids) for ids in sides) > seq_len:
        return "dropped"
    return "identical" if same_ids([], sides[0], sides[1], None) else None


def _tokenizer(model: ModelSpec) -> Any:
    """The suite's model's tokenizer as a run sets it up (chat template), or None where it cannot be read
    without loading or fetching the model."""
    try:
        return model_tokenizer(model, lambda _: None)
    except Exception:  # a hub model offline, a config folder without a tokenizer: the run counts and refuses
        return None
