"""Task accuracy through lm-eval, on task YAML and local JSONL data that the harness writes."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.tasks.base import TaskData, completion_join


@dataclass(frozen=True)
class Score:
    acc: float
    acc_stderr: float | None
    acc_norm: float | None
    items: int
    # per item, in the task's evaluation order: "1" scored correct, "0" not (bench.analysis.items uses it)
    correct: str | None = None
    # generative tasks: answers that ran to max_new_tokens unfinished (_reached_limit); None otherwise
    reached_limit: int | None = None


def lmeval_task_name(task: TaskData) -> str:
    return "bench_" + re.sub(r"[^A-Za-z0-9_]", "_", task.name)


def write_task(task: TaskData, folder: Path, root: Path | None = None) -> str:
    """Write the items as JSONL and a multiple-choice task YAML scored by log-likelihood (its data file
    named relative to `root` where given, data_file_name)."""
    from bench.evaluate.generation import data_file_name

    folder.mkdir(parents=True, exist_ok=True)
    name = lmeval_task_name(task)
    data = folder / f"{name}.jsonl"
    with data.open("w", encoding="utf-8") as stream:
        for item in task.eval:
            # each choice carries its own join to the context (target_delimiter ""): one space, none where
            # the context or the choice already has whitespace there, as training joins them (completion_join)
            choices = [completion_join(item.context, choice) + choice for choice in item.choices]
            row = {"id": item.id, "context": item.context, "choices": choices, "label": item.label}
            stream.write(json.dumps(row) + "\n")
    yaml_text = "\n".join(
        [
            f"task: {name}",
            "dataset_path: json",
            f"dataset_kwargs: {{data_files: {{test: {json.dumps(data_file_name(data, root))}}}}}",
            "test_split: test",
            "output_type: multiple_choice",
            'doc_to_text: "{{context}}"',
            'doc_to_choice: "{{choices}}"',
            'doc_to_target: "{{label}}"',
            'target_delimiter: ""',
            "metric_list:",
            "  - {metric: acc, aggregation: mean, higher_is_better: true}",
            "  - {metric: acc_norm, aggregation: mean, higher_is_better: true}",
            "",
        ]
    )
    (folder / f"{name}.yaml").write_text(yaml_text, encoding="utf-8")
    return name


def write_tasks(tasks: list[TaskData], folder: Path, tokenizer: Any, root: Path | None = None) -> dict[str, TaskData]:
    """Every task's lm-eval YAML and JSONL: multiple choice here, generative in bench/evaluate/generation.py.
    `root`: the folder the YAML files name their data relative to (a kept artefact folder); None: absolute."""
    from bench.evaluate.generation import write_generative_task

    names = {}
    for task in tasks:
        if task.generative:
            names[lmeval_task_name(task)] = task
            write_generative_task(task, folder, lmeval_task_name(task), tokenizer, root)
        else:
            names[write_task(task, folder, root)] = task
    return names


def evaluate_accuracy(
    model: Any, tokenizer: Any, tasks: list[TaskData], folder: Path, batch_size: int, fast: bool = True
) -> dict[str, Score]:
    """Score each task with lm-eval on the in-memory model (adapters included). `fast`: the output
    head only at scored positions (bench/evaluate/scorer.py) and generation that drops finished rows
    (bench/evaluate/generation.py), where the model allows; same scores. A generative task's `acc` is
    its exact match (acc_norm None)."""
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager, get_task_dict

    import bench.evaluate.answers  # noqa: F401 (registers the answer filter with lm-eval)
    from bench.evaluate.generation_pool import language_model_class

    for noisy in ("lm_eval", "lm-eval"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    names = write_tasks(tasks, folder, tokenizer)
    model.eval()
    language_class = language_model_class(model, fast)
    language_model = language_class(
        pretrained=model, tokenizer=tokenizer, batch_size=batch_size, device=str(model.device)
    )
    # lm-eval's `evaluate`, not `simple_evaluate`: the latter also describes the environment (a `pip
    # list` and a `git` in subprocesses, 0.37 s a call) and seeds every random generator
    task_dict = get_task_dict(list(names), TaskManager(include_path=str(folder), include_defaults=False))
    for lm_eval_task in task_dict.values():
        lm_eval_task.set_config(key="num_fewshot", value=0)  # zero-shot, as simple_evaluate sets it
    output = evaluate(
        lm=language_model,
        task_dict=task_dict,
        log_samples=True,  # per-item correctness, for paired statistics (bench/analysis/items.py)
        verbosity="ERROR",
    )
    scores = {}
    for name, task in names.items():
        result = output["results"][name]
        metric, kept = ("exact_match", "extract") if task.generative else ("acc", "none")
        stderr = result.get(f"{metric}_stderr,{kept}")
        scores[task.name] = Score(
            acc=float(result[f"{metric},{kept}"]),
            acc_stderr=float(stderr) if isinstance(stderr, (int, float)) else None,
            acc_norm=float(result["acc_norm,none"]) if "acc_norm,none" in result else None,
            items=len(task.eval),
            correct=_correct(task, output.get("samples", {}).get(name, []), metric),
            reached_limit=_reached_limit(task, output.get("samples", {}).get(name, []), tokenizer),
        )
    return scores


def _reached_limit(task: TaskData, samples: list[dict[str, Any]], tokenizer: Any) -> int | None:
    """How many of a generative task's answers ran to `max_new_tokens` with no stop sequence and no
    end-of-sequence token: they are scored as they stand, unfinished. lm-eval keeps only the text, so it
    is tokenised again; a text the model spelt in more tokens than the tokenizer would can count one
    short. None for multiple choice, or when the samples do not cover every item."""
    if not task.generative or len(samples) != len(task.eval):
        return None
    limit = task.generation.max_new_tokens
    texts = [(sample.get("resps") or [[None]])[0][0] for sample in samples]
    if not all(isinstance(text, str) for text in texts):
        return None
    return sum(len(tokenizer(text, add_special_tokens=False)["input_ids"]) >= limit for text in texts)


def _correct(task: TaskData, samples: list[dict[str, Any]], metric: str = "acc") -> str | None:
    """The items' correctness in evaluation order, or None when lm-eval's samples do not cover them.
    A sample is placed by its `doc_id` (its row in the task's file, written in evaluation order) and must
    carry that item's id: ids alone would give items that share one (HellaSwag's `ind`) the same mark."""
    marks: list[Any] = [None] * len(task.eval)
    for sample in samples:
        doc, position = sample.get("doc"), sample.get("doc_id")
        if isinstance(doc, dict) and isinstance(position, int) and 0 <= position < len(task.eval):
            if doc.get("id") == task.eval[position].id:
                marks[position] = sample.get(metric)
    if any(mark is None for mark in marks):
        return None
    return "".join("1" if float(mark) > 0 else "0" for mark in marks)
