"""The preference data checks of the DPO/RLHF audit (/tmp/user17), on the tiny preset: pairs that repeat
evaluation items, pairs with nothing to learn at budget.seq_len, the held-out split by prompt, and
validation of what each seed's split would fail on. Each test failed before its fix; none trains."""

from __future__ import annotations

import json
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import yaml

from bench.cli.suites import check_data
from bench.estimate.lengths import too_long_pairs
from bench.plan import plan
from bench.records.results import RunResult
from bench.run.alignment import load_preference_data, record_trained_pairs
from bench.suite import PreferenceSpec, SuiteError, parse_suite
from bench.tasks import load_task
from bench.tasks.check import data_problems
from bench.tasks.preference import PreferenceData, PreferencePair, read_jsonl, split_pairs
from tests.conftest import fast_suite
from tests.test_alignment_seq_len import first_trainer

LETTERS = "abcdefghijklmnopqrstuvwxyz"
CHAT_TEMPLATE = yaml.safe_load(Path("suites/alignment-chat.yaml").read_text())["model"]["chat_template"]


def write(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def pair_rows(prompts: list[str], chosen: str = " b", rejected: str = " c") -> list[dict[str, Any]]:
    return [{"prompt": prompt, "chosen": chosen, "rejected": rejected} for prompt in prompts]


# 1. pairs that repeat evaluation items


def _leaking_suite(tmp_path: Path, data_format: str, where: str) -> tuple[Any, Path, int]:
    """A jsonl task (the learned one, or retained beside cipher) and a file of 8 clean pairs then 3 that ask
    its evaluation items with their answers, in `data_format`."""
    rows = [{"prompt": f"code {a} {b} =", "completion": f" {a}"} for a in LETTERS[:4] for b in LETTERS[:4]]
    rows += [{"context": f"code {a} {b} =", "answer": b, "id": f"e{a}{b}"} for a in "wxyz" for b in "wxyz"]
    task = {"name": "mine", "source": "jsonl", "path": str(write(tmp_path / "task.jsonl", rows)), "eval_limit": 4}
    evaluated = load_task(parse_suite(fast_suite("t", ["lora"], task=task)).task).eval[:3]
    clean = [(f"code {a} {a} {a} =", "x") for a in LETTERS]
    leak = [(item.context, item.answer) for item in evaluated]
    pairs = []
    for prompt, answer in clean[:8] + leak:
        if data_format == "standard":
            pairs.append({"prompt": prompt, "chosen": f" {answer}", "rejected": " z"})
        elif data_format == "standard-implicit-prompt":
            pairs.append({"chosen": f"{prompt} {answer}", "rejected": f"{prompt} z"})
        else:
            user = [{"role": "user", "content": prompt}]
            say = [{"role": "assistant", "content": answer}]
            pairs.append({"prompt": user, "chosen": say, "rejected": [{"role": "assistant", "content": "z"}]})
    path = write(tmp_path / "pairs.jsonl", pairs)
    places = {"task": task} if where == "task" else {"retain": [task]}
    suite = fast_suite("leak", ["dpo"], preference={"jsonl": str(path), "heldout_size": 2}, **places)
    suite["model"]["chat_template"] = CHAT_TEMPLATE
    return parse_suite(suite), path, len(leak)


@pytest.mark.parametrize("data_format", ["standard", "standard-implicit-prompt", "conversational"])
@pytest.mark.parametrize("where", ["task", "retain[0]"])
def test_pairs_that_repeat_evaluation_items_are_refused_as_sft_rows_are(tmp_path: Path, data_format: str, where: str):
    """Before: `valid`, and DPO on 100 evaluation prompts with their answers took accuracy 0.24 -> 0.747."""
    suite, path, leaked = _leaking_suite(tmp_path, data_format, where)
    (problem,) = data_problems(suite)
    field = "chosen" if data_format == "standard-implicit-prompt" else "prompt"
    assert problem.startswith(f"{path}:9: field {field!r}: {leaked} preference pair(s) (lines 9, 10, 11) repeat")
    assert f"evaluation items of {where} 'mine' ({tmp_path / 'task.jsonl'}" in problem
    assert "remove them from the preference file" in problem and "\n" not in problem
    clean = read_jsonl(path)[:8]
    write(path, [pair.row() for pair in clean])
    assert data_problems(suite) == []


# 2. pairs with nothing to learn at budget.seq_len

UNKNOWN = (" Paris is the capital.", " London is the capital.")  # words outside the tiny vocabulary: <unk>
LATE = (" " + " ".join("abcdefghijklmnopqrst") + " x", " " + " ".join("abcdefghijklmnopqrst") + " y")


@pytest.mark.parametrize("strategy", ["dpo", "rlhf"])
def test_pairs_identical_at_seq_len_are_refused_before_any_run(strategy: str, tmp_path: Path):
    """Before: `valid`; DPO's loss stayed at ln 2 = 0.6931 for every step and the run said ok."""
    path = write(tmp_path / "pairs.jsonl", pair_rows([f"code {a} =" for a in LETTERS[:12]], *UNKNOWN))
    suite = parse_suite(fast_suite("same", [strategy], preference={"jsonl": str(path), "heldout_size": 2}))
    assert data_problems(suite) == []  # the rows are fine; their ids need the model's tokenizer
    with pytest.raises(SuiteError) as refused:
        check_data(suite, "suite.yaml")
    (problem,) = refused.value.problems
    assert problem.startswith(
        f"{path}: preference.jsonl: 10 of 10 training pairs (seed 0) have chosen and rejected with the same token "
        "ids at budget.seq_len 16"
    )
    assert "leaving 0 that differ < budget.batch_size 4" in problem and "\n" not in problem


def test_pairs_that_differ_only_after_seq_len_are_counted_in_a_warning(tmp_path: Path, capsys):
    """Before: no warning; 80 pairs differing after token 43 trained at seq_len 32 with the loss at ln 2."""
    prompts = [f"code {a} =" for a in LETTERS[:12]]
    rows = pair_rows(prompts[:8]) + pair_rows(prompts[8:], *LATE)
    path = write(tmp_path / "pairs.jsonl", rows)
    suite = parse_suite(fast_suite("late", ["dpo"], preference={"jsonl": str(path), "heldout_size": 2}))
    train = split_pairs(read_jsonl(path), 2, str(path), 0).train
    late = sum(pair.chosen == LATE[0] for pair in train)
    problems, (warning,) = too_long_pairs(suite)
    assert problems == [] and late > 0
    assert warning == (
        f"{path}: {late} of 10 training pairs (seed 0) have chosen and rejected with the same token ids at "
        "budget.seq_len 16 (they differ only after seq_len tokens, or tokenize alike: words the tokenizer does "
        "not know): dpo learns nothing from them"
    )
    check_data(suite, "suite.yaml")  # a warning, not a refusal
    assert f"warning: {warning}" in capsys.readouterr().err.replace("\n", " ").replace("  ", " ")


@pytest.mark.parametrize("name", ["dpo", "rlhf"])
def test_the_trainers_count_identical_pairs_and_the_record_keeps_them(name: str, tmp_path: Path):
    """Before: budget.truncation and budget.preference said nothing of them; with none that differs, the
    run trained at ln 2 and said ok."""
    good = [PreferencePair(f"code {a} =", " b", " c") for a in LETTERS[:4]]
    unknown = [PreferencePair(f"code {a} =", *UNKNOWN) for a in LETTERS[4:7]]
    late = [PreferencePair("code z =", *LATE)] if name == "dpo" else []  # RewardTrainer drops a long pair
    trainer, preference = first_trainer(name, tmp_path, good + unknown + late)
    assert trainer.truncation["identical"] == len(unknown + late) and preference.truncation == trainer.truncation
    run = SimpleNamespace(budget={"preference": {"train_pairs": 8, "heldout": 1}})
    record_trained_pairs(run, preference)
    assert run.budget["preference"]["identical_after_seq_len"] == len(unknown + late)
    assert run.budget["truncation"]["identical"] == len(unknown + late)
    with pytest.raises(ValueError) as raised:
        first_trainer(name, tmp_path, good[:3] + unknown)
    message = str(raised.value)
    assert message.startswith("preference jsonl:pairs.jsonl: ") and "\n" not in message
    assert "3 of 6 training pairs have chosen and rejected with the same token ids at budget.seq_len 16" in message
    assert "leaving 3 that differ, fewer than budget.batch_size 4" in message


# 3. the held-out split is by prompt

RANKED = [
    {"prompt": f"code {a} {b} =", "chosen": f" {LETTERS[i]}", "rejected": f" {LETTERS[j]}"}
    for a, b in zip(LETTERS[:20], LETTERS[6:26], strict=True)
    for i, j in ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
]  # 20 prompts x 6 ranked pairs, as UltraFeedback-style files are


def test_the_held_out_split_puts_every_pair_of_a_prompt_on_one_side():
    """Before: split by row; with 50 prompts x 6 pairs every held-out prompt was also a training prompt."""
    pairs = [PreferencePair(row["prompt"], row["chosen"], row["rejected"]) for row in RANKED]
    for seed in range(5):
        data = split_pairs(pairs, 12, "ranked", seed)
        held, trained = ({pair.prompt for pair in side} for side in (data.heldout, data.train))
        assert len(held) == 2 and not held & trained and len(data.heldout) == 12, seed
        assert split_pairs(pairs, 12, "ranked", seed) == data  # deterministic per seed
    assert split_pairs(pairs, 12, "ranked", 0).heldout != split_pairs(pairs, 12, "ranked", 1).heldout
    one_each = pairs[::6]  # one pair per prompt: the split by row's rows, as before
    shuffled = list(one_each)
    random.Random("preference-split-3").shuffle(shuffled)
    assert split_pairs(one_each, 5, "one", 3) == PreferenceData(shuffled[:-5], shuffled[-5:], "one")


def test_the_record_counts_held_out_prompts_seen_in_training(tmp_path: Path):
    """Before: `heldout_dropped_as_training_pairs: 0` while 56 of 60 held-out chosen answers were trained on
    for the same prompt; now none is, and the record says how many held-out prompts training has (pairs
    built from cipher: all of them, honestly)."""
    path = write(tmp_path / "ranked.jsonl", RANKED)
    run = SimpleNamespace(
        spec=SimpleNamespace(
            preference=PreferenceSpec(jsonl=str(path), heldout_size=12), task=SimpleNamespace(name="cipher"), seed=0
        ),
        budget={},
    )
    data = load_preference_data(run)
    trained = {(pair.prompt, pair.chosen) for pair in data.train}
    assert not any((pair.prompt, pair.chosen) in trained for pair in data.heldout)
    assert run.budget["preference"] | {"source": None} == {
        "source": None, "train_pairs": 108, "heldout": 12, "heldout_distinct": 12, "heldout_prompts": 2,
        "heldout_prompts_in_training": 0, "format": "standard",
    }  # fmt: skip
    run.spec.preference = PreferenceSpec(from_task=True, train_size=100, heldout_size=20)
    load_preference_data(run)
    recorded = run.budget["preference"]
    assert 0 < recorded["heldout_prompts_in_training"] <= recorded["heldout_prompts"]


# 4. validation runs each seed's split as the run will


def test_validate_passes_only_data_every_seeds_run_can_split(tmp_path: Path):
    """Before: one pair repeated 100 times was `valid`, then every run (sft too) failed with "all 20
    held-out pairs are also training pairs". Now a suite that validates splits in every run, and one that
    would leave a run less than a batch of pairs is refused naming the file, the seed and what to do."""
    rows = pair_rows(["code a ="] * 100) + pair_rows(["code b ="])
    path = write(tmp_path / "dup.jsonl", rows)
    preference = {"jsonl": str(path), "heldout_size": 20}
    for strategies in (["lora"], ["lora", "dpo"]):
        suite = parse_suite(fast_suite("dup", strategies, preference=preference, seeds=[0, 1, 2, 3]))
        problems = data_problems(suite)
        splits = {}
        for spec in plan(suite):
            run = SimpleNamespace(spec=spec, budget={})
            splits[spec.seed] = len(load_preference_data(run).train)  # before: ValueError, every seed
        short = [seed for seed, train in sorted(splits.items()) if train < suite.budget.batch_size]
        if "dpo" not in strategies or not short:
            assert problems == []
            continue
        (problem,) = problems
        assert problem.startswith(
            f"{path}: preference.heldout_size: 1 training pair(s) (101 rows less the 100 pairs of the 1 prompt(s) "
            f"seed {short[0]} holds out, heldout_size 20: the pairs of a prompt are held out together)"
        )
        assert "add pairs with other prompts" in problem and "\n" not in problem


def test_a_file_of_one_prompt_is_refused_before_any_run(tmp_path: Path):
    """Before: `valid`; its pairs can no longer be split by prompt, which the run would fail on."""
    path = write(tmp_path / "one.jsonl", pair_rows(["code a ="] * 12))
    suite = parse_suite(fast_suite("one", ["dpo"], preference={"jsonl": str(path), "heldout_size": 2}))
    (problem,) = data_problems(suite)
    assert problem.startswith(f"{path}: preference.jsonl: all 12 rows have one prompt ('code a =')")


def test_a_stored_run_from_before_the_split_by_prompt_runs_again():
    """review: a run stored before the split by prompt was reused (same run id, same data), its align.*
    metrics on held-out pairs of trained prompts beside new runs' on unseen ones."""

    from bench.plan import plan
    from bench.suite import parse_suite
    from tests.synthetic_records import make_record

    def stored(suite: str, preference: dict) -> RunResult:
        spec = plan(parse_suite(yaml.safe_load(Path(f"suites/{suite}.yaml").read_text())))[0]
        record = make_record("full", 0)
        return record.model_copy(update={"spec": spec.model_dump(mode="json"), "budget": {"preference": preference}})

    assert stored("alignment-chat", {"train_pairs": 80, "heldout": 40}).preference_split_by_row
    assert not stored("alignment-chat", {"heldout": 40, "heldout_prompts": 7}).preference_split_by_row
    # pairs built from a task: their split did not change
    assert not stored("alignment", {"train_pairs": 80, "heldout": 40}).preference_split_by_row


def test_the_report_says_which_runs_scored_align_metrics_on_a_split_by_row(tmp_path: Path):
    """The committed smollm2-instruct-pc records hold align.* metrics from the split by row; their report showed
    them as any other run's, beside a newer run's on unseen prompts."""
    import re

    from bench.report.html import write_report
    from tests.synthetic_records import make_record

    spec = plan(parse_suite(yaml.safe_load(Path("suites/alignment-chat.yaml").read_text())))[0].model_dump(mode="json")
    old, new = ({"heldout": 40}, {"heldout": 40, "heldout_prompts": 7})
    runs = [
        make_record("lora", 0).model_copy(update={"spec": spec, "budget": {"preference": old}}),
        make_record("lora", 1).model_copy(update={"spec": spec, "budget": {"preference": new}}),
        make_record("full", 0),
    ]
    page = write_report(runs, tmp_path / "report.html").read_text()
    said = re.search(r'<p class="warning" id="split-by-row">(.*?)</p>', page, re.S).group(1)
    assert said.startswith("⚠ The align.* metrics of lora seed 0 scored held-out preference pairs split")
    assert "seed 1" not in said and "full" not in said
    clean = write_report(runs[1:], tmp_path / "clean.html").read_text()
    assert 'id="split-by-row"' not in clean


def test_a_run_split_by_row_stands_where_every_prompt_has_one_pair(tmp_path: Path):
    """audit user19: with one pair per prompt the split by prompt holds out the rows the split by row held out,
    yet the committed instruct records (every prompt distinct) were run again and their report warned."""
    from bench.report.html import write_report
    from bench.tasks.preference import split_by_row_differs
    from tests.synthetic_records import make_record

    distinct = write(tmp_path / "distinct.jsonl", pair_rows([f"code {letter} =" for letter in LETTERS[:12]]))
    repeated = write(tmp_path / "repeated.jsonl", pair_rows(["code a =", "code b ="] * 6))

    def stored(path: Path) -> RunResult:
        record = make_record("lora", 0)
        spec = {**record.spec, "preference": {"jsonl": str(path)}}
        return record.model_copy(update={"spec": spec, "budget": {"preference": {"heldout": 4}}})

    assert not split_by_row_differs(stored(distinct))
    assert split_by_row_differs(stored(repeated))
    assert split_by_row_differs(stored(tmp_path / "gone.jsonl"))  # cannot tell: said
    assert 'id="split-by-row"' not in write_report([stored(distinct)], tmp_path / "distinct.html").read_text()
    assert 'id="split-by-row"' in write_report([stored(repeated)], tmp_path / "repeated.html").read_text()


def test_a_preference_file_is_read_once_for_its_records_and_again_once_changed(tmp_path: Path, monkeypatch):
    """A report asks of each record whether its file repeats a prompt: one read per version of the file."""
    from bench.tasks import preference

    reads: list[str] = []
    real = preference.read_jsonl
    monkeypatch.setattr(preference, "read_jsonl", lambda path: reads.append(str(path)) or real(path))
    path = write(tmp_path / "pairs.jsonl", pair_rows([f"code {letter} =" for letter in LETTERS[:12]]))
    assert [preference.prompts_repeat(path) for _ in range(50)] == [False] * 50
    assert reads == [str(path)]
    write(path, pair_rows(["code a =", "code b ="] * 6 + ["code c ="]))  # another size: another version
    assert preference.prompts_repeat(path) is True and len(reads) == 2
