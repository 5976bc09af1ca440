"""Fault: 10% of the learned task's training completions are replaced by a wrong answer (another
example's completion that differs from the right one): a data-pipeline bug. Evaluation items are
untouched. Applied where the worker builds its tasks (bench.tasks.base.TaskData)."""

import random

from _hook import after_import, run_spec, targeted

SHARE = 0.10


def _patch(module) -> None:
    original = module.TaskData.__post_init__

    def corrupt(self) -> None:
        original(self)
        if not targeted("wrong_completions") or self.name != (run_spec().get("task") or {}).get("name"):
            return
        rng = random.Random(f"wrong-completions-{self.name}")
        answers = [example.completion for example in self.train]
        for index in rng.sample(range(len(self.train)), round(SHARE * len(self.train))):
            right = self.train[index].completion
            wrong = next((a for a in rng.sample(answers, min(len(answers), 20)) if a != right), None)
            if wrong is not None:
                self.train[index] = module.Example(self.train[index].prompt, wrong)

    module.TaskData.__post_init__ = corrupt


after_import("bench.tasks.base", _patch)
