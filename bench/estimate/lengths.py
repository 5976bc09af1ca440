"""What training will leave out at budget.seq_len, known before any run: the preference pairs DPO's and the
reward model's trainers drop (TRL 1.16's rules, tokenised as bench/training/alignment.py tokenises them),
and those they keep whose chosen and rejected are the same token ids there (nothing to learn). Here, not in
bench/tasks/check.py: it needs the model's tokenizer (bench.models, bench.evaluate), which the tasks folder
below them may not import; `bench validate` and `bench run` call it after the data check."""

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
    """(problems, warnings): training pairs of `preference.jsonl` the dpo/rlhf trainers would drop at
    budget.seq_len, or keep with chosen and rejected the same ids there (`_fate`), tokenised as they tokenise
    them: fewer left that differ than a batch (in any seed's split) is a problem; some dropped or identical a
    warning. Where the model's tokenizer cannot be read here, the trainers count and refuse at the start of
    training (bench/training/alignment.py). Run after the data check passed."""
    from bench.tasks.preference import read_jsonl, split_pairs

    objectives = sorted(objectives_of(suite) & set(LENGTH_RULES))
    if suite.preference is None or not suite.preference.jsonl or not objectives:
        return [], []
    tokenizer = _tokenizer(suite.model)
    if tokenizer is None:
        return [], []
    path = Path(suite.preference.jsonl).expanduser()
    pairs = read_jsonl(path)
    problems, warnings = [], []
    for objective in objectives:
        fates = {id(pair): _fate(objective, pair, tokenizer, suite.budget.seq_len) for pair in pairs}
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
    return problems, ([] if problems else warnings)


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


def _fate(objective: str, pair: Any, tokenizer: Any, seq_len: int) -> str | None:
    """What the trainer makes of a pair at seq_len: "dropped" (LENGTH_RULES), "identical" (kept, chosen and
    rejected the same ids once cut: the trainers' own rule, bench.training.alignment.same_ids), or None
    (trained on)."""
    from bench.evaluate.rendering import dpo_ids, reward_ids
    from bench.training.alignment import same_ids

    if objective == "dpo":
        prompt, chosen, rejected = dpo_ids(tokenizer, pair)
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
