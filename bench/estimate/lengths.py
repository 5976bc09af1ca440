"""What training will leave out at budget.seq_len, known before any run: the preference pairs DPO's and the
reward model's trainers drop (TRL 1.16's rules, tokenised as bench/training/alignment.py tokenises them).
Here, not in bench/tasks/check.py: it needs the model's tokenizer (bench.models, bench.evaluate), which the
tasks folder below them may not import; `bench validate` and `bench run` call it after the data check."""

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
    budget.seq_len, tokenised as they tokenise them: fewer left than a batch (in any seed's split) is a
    problem; some dropped a warning. Where the model's tokenizer cannot be read here, the trainers count and
    refuse at the start of training (bench/training/alignment.py). Run after the data check passed."""
    from bench.tasks.preference import read_jsonl, split_pairs

    objectives = sorted(objectives_of(suite) & set(LENGTH_RULES))
    if suite.preference is None or not suite.preference.jsonl or not objectives:
        return [], []
    tokenizer = _tokenizer(suite.model)
    if tokenizer is None:
        return [], []
    path = Path(suite.preference.jsonl).expanduser()
    pairs = read_jsonl(path)
    seq_len, batch, problems, warnings = suite.budget.seq_len, suite.budget.batch_size, [], []
    for objective in objectives:
        dropped = {id(pair) for pair in pairs if _dropped(objective, pair, tokenizer, seq_len)}
        for seed in suite.seeds:
            train = split_pairs(pairs, suite.preference.heldout_size, str(path), seed).train
            gone = sum(id(pair) in dropped for pair in train)
            what = f"{gone} of {len(train)} training pairs (seed {seed}) too long for budget.seq_len {seq_len}"
            rule = LENGTH_RULES[objective]
            if len(train) - gone < batch:
                problems.append(
                    f"{path}: preference.jsonl: {what} ({rule}), leaving {len(train) - gone} < budget.batch_size "
                    f"{batch}: no {objective} training step; raise budget.seq_len or shorten the pairs"
                )
                break
            if gone:
                warnings.append(f"{path}: {what} would be dropped from {objective} training ({rule})")
                break
    return problems, ([] if problems else warnings)


def _dropped(objective: str, pair: Any, tokenizer: Any, seq_len: int) -> bool:
    from bench.evaluate.rendering import dpo_ids, reward_ids

    if objective == "dpo":
        return len(dpo_ids(tokenizer, pair)[0]) >= seq_len
    return max(len(reward_ids(tokenizer, pair.prompt, answer)) for answer in (pair.chosen, pair.rejected)) > seq_len


def _tokenizer(model: ModelSpec) -> Any:
    """The suite's model's tokenizer as a run sets it up (chat template), or None where it cannot be read
    without loading or fetching the model."""
    try:
        return model_tokenizer(model, lambda _: None)
    except Exception:  # a hub model offline, a config folder without a tokenizer: the run counts and refuses
        return None
