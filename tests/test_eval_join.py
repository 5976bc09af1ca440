"""Multiple-choice scoring joins context and choice as training joins prompt and completion (completion_join):
one space, none where either side already has whitespace at the join. lm-eval's target_delimiter " " made
`The sky is` + ` blue` a double space at scoring, which training no longer had."""

from __future__ import annotations

from pathlib import Path

from lm_eval.tasks import TaskManager, get_task_dict

from bench.evaluate.accuracy import write_task
from bench.tasks.base import ChoiceItem, TaskData


def _requests(task: TaskData, folder: Path) -> list[tuple[str, str]]:
    """The (context, continuation) pairs lm-eval scores for the task bench writes."""
    name = write_task(task, folder)
    built = get_task_dict([name], TaskManager(include_path=str(folder)))[name]
    built.build_all_requests(rank=0, world_size=1)
    return [instance.args for instance in built.instances]


def test_a_choice_is_scored_with_the_join_training_uses(tmp_path):
    task = TaskData(
        "sky",
        [],
        [
            ChoiceItem("plain", "The sky is", ["blue", "green"], 0),  # as before: one space
            ChoiceItem("spaced-choice", "The sky is", [" blue", "green"], 0),  # TRL-style: no second space
            ChoiceItem("spaced-context", "Grass is ", ["green", "red"], 0),
        ],
    )
    assert _requests(task, tmp_path) == [
        ("The sky is", " blue"),
        ("The sky is", " green"),
        ("The sky is", " blue"),
        ("The sky is", " green"),
        ("Grass is ", "green"),
        ("Grass is ", "red"),
    ]
