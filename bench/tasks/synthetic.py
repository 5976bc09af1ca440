"""Built-in synthetic tasks over a small letter world, learnable by a tiny model in seconds.

The tiny preset is pretrained on `next-letter` and `copy` (its retained skills) and has never
seen `cipher` (the task to learn), so fine-tuning shows real gain and real forgetting.
`prev-letter` is kept as a harder case: a base that knows next-letter scores below chance on it.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable

from bench.tasks.base import ChoiceItem, Example, TaskData

LETTERS = list(string.ascii_lowercase)
CHOICES = 4  # multiple-choice width: chance is 0.25
COPY_LENGTH = 3


def _next_letter(rng: random.Random) -> tuple[str, str]:
    index = rng.randrange(len(LETTERS) - 1)
    return f"next of {LETTERS[index]} :", LETTERS[index + 1]


def _prev_letter(rng: random.Random) -> tuple[str, str]:
    index = rng.randrange(1, len(LETTERS))
    return f"prev of {LETTERS[index]} :", LETTERS[index - 1]


def _secret_cipher() -> dict[str, str]:
    """A fixed substitution that maps no letter to itself or to a neighbour, so a model that knows
    the alphabet has no head start (a base that knows next-letter scores near chance on it)."""
    rng = random.Random("cipher")
    while True:
        image = rng.sample(LETTERS, len(LETTERS))
        if all(abs(ord(a) - ord(b)) > 1 for a, b in zip(LETTERS, image)):
            return dict(zip(LETTERS, image))


CIPHER = _secret_cipher()


def _cipher(rng: random.Random) -> tuple[str, str]:
    letter = rng.choice(LETTERS)
    return f"code {letter} =", CIPHER[letter]


def _copy(rng: random.Random) -> tuple[str, str]:
    word = " ".join(rng.choice(LETTERS) for _ in range(COPY_LENGTH))
    return f"copy {word} :", word


def _letter_distractors(answer: str, rng: random.Random) -> list[str]:
    return rng.sample([letter for letter in LETTERS if letter != answer], CHOICES - 1)


def _sequence_distractors(answer: str, rng: random.Random) -> list[str]:
    """Plausible wrong copies: one position changed, or the order shuffled."""
    letters = answer.split()
    wrong: set[str] = set()
    while len(wrong) < CHOICES - 1:
        candidate = list(letters)
        if rng.random() < 0.5 and len(set(letters)) > 1:
            rng.shuffle(candidate)
        else:
            position = rng.randrange(len(candidate))
            candidate[position] = rng.choice([x for x in LETTERS if x != letters[position]])
        text = " ".join(candidate)
        if text != answer:
            wrong.add(text)
    return sorted(wrong)


Generator = Callable[[random.Random], tuple[str, str]]
Distractors = Callable[[str, random.Random], list[str]]

SYNTHETIC_TASKS: dict[str, tuple[Generator, Distractors, str]] = {
    "next-letter": (_next_letter, _letter_distractors, "the letter after a letter"),
    "prev-letter": (_prev_letter, _letter_distractors, "the letter before a letter"),
    "copy": (_copy, _sequence_distractors, f"repeat {COPY_LENGTH} letters"),
    "cipher": (_cipher, _letter_distractors, "a fixed secret letter substitution (memorised facts)"),
}


def wrong_answers(task: str, answer: str, rng: random.Random) -> list[str]:
    """Plausible wrong answers for `answer` (used for choices and for preference pairs)."""
    return SYNTHETIC_TASKS[task][1](answer, rng)


def build_synthetic(name: str, train_size: int, eval_size: int, seed: int = 0) -> TaskData:
    """Train and eval items come from separate random streams of the same fixed seed."""
    generate, distractors, description = SYNTHETIC_TASKS[name]
    train_rng = random.Random(f"{name}-train-{seed}")
    eval_rng = random.Random(f"{name}-eval-{seed}")
    train = [Example(*generate(train_rng)) for _ in range(train_size)]
    items = []
    for index in range(eval_size):
        prompt, answer = generate(eval_rng)
        choices = [answer, *distractors(answer, eval_rng)]
        eval_rng.shuffle(choices)
        items.append(ChoiceItem(f"{name}-{index}", prompt, choices, choices.index(answer)))
    return TaskData(name=name, train=train, eval=items, description=description)


def vocabulary_corpus() -> list[str]:
    """Every word the synthetic world uses, for training the tiny tokenizer."""
    words = ["next", "prev", "copy", "code", "of", ":", "=", *LETTERS]
    return [" ".join(words)]
