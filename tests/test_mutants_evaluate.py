"""Mutation audit of bench/evaluate/ (scorer, answers, accuracy, generation; alignment in
tests/test_mutants_alignment_metrics.py): each test here fails on a mutant that the rest of the suite let through (which
models the fast scorer takes, how long a packed row may grow, what the answer rule extracts and what exact match
ignores, which numbers a task's score keeps, which generation settings the fast path refuses)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import GenerationConfig, PretrainedConfig

from bench.evaluate.accuracy import _correct, _reached_limit, evaluate_accuracy, lmeval_task_name
from bench.evaluate.answers import AnswerFilter, canonical_number
from bench.evaluate.generation import (
    generation_unsupported,
    greedy_generate,
    lmeval_generation_config,
    rendered_context,
)
from bench.evaluate.generation_pool import FastLM, PooledGenerator, language_model_class
from bench.evaluate.scorer import ContinuationScorer, _packable, supported, uses_alibi
from bench.models.load import load_model
from bench.spec import ModelSpec, TaskSpec
from bench.tasks import load_task
from bench.tasks.base import ChoiceItem, Generation, GenItem, TaskData
from tests.test_evaluation_audit import _matches

# ---- bench/evaluate/scorer.py ------------------------------------------------------------------------------------


class _Model:
    """What `supported` and `_packable` read of a model: its config and its output head."""

    def __init__(self, head: object | None = "head", **config) -> None:
        self.config = SimpleNamespace(**config)
        self.head = head

    def get_output_embeddings(self):
        return self.head


def test_a_model_the_fast_scorer_cannot_score_goes_to_the_plain_path():
    """scorer.supported: logits capped after the head, an encoder-decoder or no head to bypass is said, and the
    fast path falls back to lm-eval's scoring (PooledGenerator has no ContinuationScorer)."""
    assert supported(_Model(model_type="llama")) is None and language_model_class(_Model(), True) is FastLM
    capped = _Model(final_logit_softcapping=30.0)
    assert supported(capped) == "the model caps its logits after the head"
    assert supported(_Model(is_encoder_decoder=True)) == "encoder-decoder model"
    assert supported(_Model(head=None)) == "no output head to bypass"
    for model in (capped, _Model(is_encoder_decoder=True), _Model(head=None)):
        assert language_model_class(model, True) is PooledGenerator


def test_choices_are_packed_only_where_the_attention_takes_a_4d_mask():
    """scorer._packable: SDPA and eager take the branch mask; flash-attention kernels (and an unknown
    implementation) would ignore it and let every choice see the others."""
    assert _packable(_Model(_attn_implementation="sdpa")) and _packable(_Model(_attn_implementation="eager"))
    assert not _packable(_Model(_attn_implementation="flash_attention_2"))
    assert not _packable(_Model(_attn_implementation=None))


def test_alibi_is_told_from_a_position_embedding_type():
    """scorer.uses_alibi: `position_embedding_type: alibi` (not only an `alibi` flag) means ALiBi biases."""
    assert uses_alibi(PretrainedConfig(position_embedding_type="alibi"))
    assert not uses_alibi(PretrainedConfig(position_embedding_type="rotary"))
    assert not _packable(_Model(_attn_implementation="sdpa", position_embedding_type="alibi"))


def _scorer(max_length: int) -> ContinuationScorer:
    """A scorer whose `_rows` reads only its model's config and max_length (no weights)."""
    scorer = ContinuationScorer.__new__(ContinuationScorer)
    scorer._max_length = max_length
    scorer._model = _Model(_attn_implementation="sdpa", model_type="llama")
    return scorer


def test_a_packed_row_is_never_longer_than_max_length():
    """scorer._rows: the context once plus every distinct choice but its last token must fit max_length; an
    item whose choices would not fit together is scored one row per choice, as lm-eval scores it."""
    context = [1, 2, 3, 4, 5, 6]
    two = [(("c", "a"), context, [7, 8, 9]), (("c", "b"), context, [10, 11, 12])]
    (row,) = _scorer(10)._rows(two)  # 6 + 2 + 2 = 10 tokens
    assert row.tokens == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]
    assert row.scored == [(0, [5, 6, 7], [7, 8, 9]), (1, [5, 8, 9], [10, 11, 12])]
    three = [*two, (("c", "d"), context, [13, 14, 15])]  # 6 + 3 * 2 = 12 tokens: not packed
    rows = _scorer(10)._rows(three)
    assert [row.tokens for row in rows] == [context + [7, 8], context + [10, 11], context + [13, 14]]
    assert not any(row.branches for row in rows) and max(len(row.tokens) for row in rows) <= 10


# ---- bench/evaluate/answers.py -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "kind", "answer"),
    [
        # a marker in any case: its line's first number, not the text's last one
        ("THE ANSWER IS 12, not 15 as 3 * 5 says", "number", "12"),
        ("The answer is 12, not 15 as 3 * 5 says", "number", "12"),
        ("First 3 apples.\nThen 4 more, so 7", "number", "7"),  # no marker: the last number of the whole text
        ("The answer is -3", "number", "-3"),  # the sign is kept
        ("It fell to -4 degrees", "number", "-4"),
        ("The answer is -0.0", "number", "0"),  # one spelling of zero
        ("The answer is: Paris", "text", "Paris"),  # the colon after a marker is not the answer
        ("the answer is Paris\nBecause it is the capital", "text", "Paris"),  # to the end of the marker's line
        ("The final answer is $$. I hope it is correct.", "math", "[invalid]"),  # nothing after the marker
    ],
)
def test_the_answer_the_filter_writes(text, kind, answer):
    assert AnswerFilter(kind).answer(text) == answer


def test_a_number_in_another_notation_is_kept_as_written():
    """answers.canonical_number: "1e3" and "inf" are not how answers are written; they stay, not "1000"."""
    assert canonical_number("1e3") == "1e3" and canonical_number("inf") == "inf"
    assert canonical_number("$-3") == "-3" and canonical_number("1,000.50") == "1000.5"


def test_an_unknown_answer_kind_is_refused():
    with pytest.raises(ValueError, match="kind 'numeric' is not one of text, number, math, phrase"):
        AnswerFilter("numeric")


@pytest.mark.parametrize(
    ("kind", "generated", "gold", "correct"),
    [
        ("text", "The answer is U.S.", ["U.S."], True),  # a trailing full stop on either side is ignored
        ("text", "The answer is 1,000", ["1000"], True),  # commas are ignored on text tasks too
        ("text", "The answer is $5", ["5"], True),
        ("phrase", " The Beatles", ["Beatles"], True),  # a capitalised article is ignored as well
        ("phrase", " An apple", ["apple"], True),
        ("number", "The answer is -3", ["3"], False),  # a sign is not ignored
    ],
)
def test_answers_match_their_gold_as_the_docs_say(kind, generated, gold, correct):
    assert _matches(kind, generated, gold) is correct


# ---- bench/evaluate/accuracy.py ----------------------------------------------------------------------------------


def test_a_task_name_becomes_one_lm_eval_name():
    """accuracy.lmeval_task_name: anything but letters, digits and `_` is `_` (a `/` would be a folder)."""
    task = TaskData("mmlu/college physics-v2", [], [ChoiceItem("a", "The sky is", ["blue", "green"], 0)])
    assert lmeval_task_name(task) == "bench_mmlu_college_physics_v2"


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)
    return loaded.model, loaded.tokenizer


def test_a_multiple_choice_score_keeps_acc_its_stderr_and_acc_norm_apart(tiny, tmp_path: Path):
    """accuracy.evaluate_accuracy: `acc` is lm-eval's unnormalised accuracy, `acc_stderr` its sample standard
    error (recorded beside accuracy.<task>), `acc_norm` the length-normalised one. The tiny model copies
    `copy` answers; a second choice of the right answer and one more " h" is the label: the single wrong
    token "h" outscores it summed on one item of six, never per byte."""
    model, tokenizer = tiny
    items = []
    for number, item in enumerate(load_task(TaskSpec(name="copy", eval_limit=6)).eval):
        items.append(ChoiceItem(f"i{number}", item.context, ["h", item.choices[item.label] + " h"], 1))
    score = evaluate_accuracy(model, tokenizer, [TaskData("mine", [], items)], tmp_path, 16)["mine"]
    assert (score.correct, score.items, score.acc_norm, score.reached_limit) == ("111011", 6, 1.0, None)
    assert score.acc == pytest.approx(5 / 6)
    assert score.acc_stderr == pytest.approx(math.sqrt(5 / 6 * 1 / 6 / 5))


class _Words:
    """A tokenizer of one token a word that puts a begin-of-sequence token in front unless told not to."""

    def __call__(self, text: str, add_special_tokens: bool = True) -> dict[str, list[int]]:
        return {"input_ids": [0] * add_special_tokens + [len(word) for word in text.split()]}


def test_answers_that_ran_to_max_new_tokens_are_counted_in_their_own_tokens():
    """accuracy._reached_limit: as many tokens as max_new_tokens (no begin-of-sequence token) reached it;
    fewer samples than items, or a sample without text, give no count rather than a wrong one."""
    task = TaskData("t", [], [GenItem(f"g{n}", "q", "a") for n in range(3)], generation=Generation(3, ("\n",), "text"))
    samples = [{"resps": [[text]]} for text in ("a b c", "a b", "a b c d")]
    assert _reached_limit(task, samples, _Words()) == 2
    assert _reached_limit(task, samples[:2], _Words()) is None
    assert _reached_limit(task, [*samples[:2], {"resps": [[None]]}], _Words()) is None
    choice = TaskData("c", [], [ChoiceItem("a", "q", ["x", "y"], 0)])
    assert _reached_limit(choice, [{"resps": [["x"]]}], _Words()) is None


def test_a_sample_of_another_item_at_an_items_row_gives_no_marks():
    """accuracy._correct: a sample placed at a row whose item has another id is not that item's mark."""
    task = TaskData("t", [], [ChoiceItem("a", "c", ["x", "y"], 0), ChoiceItem("b", "c", ["x", "y"], 0)])
    samples = [{"doc_id": 0, "doc": {"id": "a"}, "acc": 1.0}, {"doc_id": 1, "doc": {"id": "b"}, "acc": 0.0}]
    assert _correct(task, samples) == "10"
    assert _correct(task, [samples[0], {"doc_id": 1, "doc": {"id": "z"}, "acc": 0.0}]) is None


# ---- bench/evaluate/generation.py --------------------------------------------------------------------------------

GREEDY = {"do_sample": False, "temperature": 0.0, "attention_mask": None}


@pytest.mark.parametrize(
    "setting",
    [
        {"no_repeat_ngram_size": 3},
        {"num_beams": 4},
        {"min_new_tokens": 2},
        {"bad_words_ids": [[5]]},
        {"suppress_tokens": [1]},
    ],
)
def test_a_generation_config_that_is_not_plain_argmax_goes_to_lm_evals_path(setting):
    """generation.generation_unsupported: a processor set in the model's generation config is named (the fast
    path would ignore it); the defaults and lm-eval's greedy arguments are not."""
    plain = SimpleNamespace(config=SimpleNamespace(), generation_config=GenerationConfig())
    assert generation_unsupported(plain, GREEDY) is None
    model = SimpleNamespace(config=SimpleNamespace(), generation_config=GenerationConfig(**setting))
    assert generation_unsupported(model, GREEDY) == f"generation_config.{next(iter(setting))} is set"


def test_an_encoder_decoder_model_is_generated_by_lm_eval():
    model = SimpleNamespace(config=SimpleNamespace(is_encoder_decoder=True), generation_config=GenerationConfig())
    assert generation_unsupported(model, GREEDY) == "encoder-decoder model"


def test_a_generative_task_config_asks_lm_eval_for_what_the_task_says(tmp_path: Path):
    """generation.lmeval_generation_config: every stop sequence, max_new_tokens as lm-eval's max_gen_toks, the
    task's answer kind for the filter, and the data named relative to a kept artefact folder."""
    task = TaskData("t", [], [GenItem("a", "q", "1")], generation=Generation(7, ("\n\n", "Question:"), "number"))
    config = lmeval_generation_config(task, "bench_t", tmp_path / "tasks" / "t.jsonl", tmp_path)
    assert config["dataset_kwargs"] == {"data_files": {"test": "tasks/t.jsonl"}}
    assert config["generation_kwargs"] == {
        "until": ["\n\n", "Question:"],
        "max_gen_toks": 7,
        "do_sample": False,
        "temperature": 0.0,
    }
    assert config["filter_list"][0]["filter"][0] == {"function": "bench_answer", "kind": "number"}
    absolute = lmeval_generation_config(task, "bench_t", tmp_path / "t.jsonl")
    assert absolute["dataset_kwargs"]["data_files"]["test"] == str((tmp_path / "t.jsonl").resolve())


def test_a_text_answer_matches_its_gold_in_any_case():
    assert _matches("text", "The answer is paris", ["Paris"]) and not _matches("text", "The answer is Rome", ["Paris"])


class _Templated:
    """A chat template: each turn in tags, then an open assistant turn where a generation prompt is asked."""

    chat_template = "{{ messages }}"

    def apply_chat_template(self, messages, tokenize, add_generation_prompt, continue_final_message):
        turns = "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in messages)
        return turns + ("<assistant>" if add_generation_prompt else "")


def test_a_context_is_rendered_with_the_chat_template_only_where_the_task_asks():
    """generation.rendered_context: a tokenizer with a template is not enough, generation.chat_template asks; the
    prompt then ends with the generation prompt, as lm-eval's apply_chat_template renders it."""
    item = GenItem("a", "2+2=", "4")
    plain = TaskData("t", [], [item], generation=Generation(4, ("\n",), "number"))
    chat = TaskData("t", [], [item], generation=Generation(4, ("\n",), "number", chat_template=True))
    assert rendered_context(plain, item, _Templated()) == "2+2="
    assert rendered_context(chat, item, _Templated()) == "<user>2+2=</user><assistant>"


def test_greedy_generation_ends_a_row_at_any_of_the_models_end_of_sequence_ids(tiny):
    """generation.greedy_generate: a row ends at every id of generation_config.eos_token_id (instruct models
    list several, as model.generate reads them), not only at a stop sequence; its place after that is padding.
    The tiny model writes "a a b h a a" after "copy a b :" and ": c d e <eos>" after "copy c d e": with "h"
    (15) an end-of-sequence id too, the first row ends at it."""
    model, tokenizer = tiny
    context = torch.tensor([[10, 6, 7, 4], [10, 8, 11, 12]])
    before = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 15]
    try:
        output = greedy_generate(model, tokenizer, context, None, 4 + 6, [])
    finally:
        model.generation_config.eos_token_id = before
    assert output[:, 4:].tolist() == [[6, 6, 7, 15, 0], [4, 8, 11, 12, 3]]


def test_a_left_padded_row_generates_what_it_generates_alone_on_learned_positions(tiny):
    """generation.greedy_generate: position ids count from a row's first real token, as `generate` counts them.
    A rotary model (the tiny preset) cannot tell, a model with learned absolute positions (GPT-2) can: a short
    row padded on the left beside a longer one must write what it writes alone."""
    from transformers import AutoConfig, AutoModelForCausalLM

    _, tokenizer = tiny  # its decode is all greedy_generate asks of a tokenizer
    torch.manual_seed(0)
    shape = {"n_embd": 32, "n_layer": 2, "n_head": 2, "n_positions": 64, "initializer_range": 0.5}
    config = AutoConfig.for_model("gpt2", vocab_size=37, pad_token_id=0, bos_token_id=2, eos_token_id=3, **shape)
    model = AutoModelForCausalLM.from_config(config).eval()
    model.generation_config.eos_token_id = 3
    short, long = [10, 8, 4], [10, 6, 7, 4, 9, 5]
    mask = torch.tensor([[1] * 6, [0, 0, 0, 1, 1, 1]])
    both = greedy_generate(model, tokenizer, torch.tensor([long, [0, 0, 0, *short]]), mask, 6 + 5, [])
    alone = greedy_generate(model, tokenizer, torch.tensor([short]), None, 3 + 5, [])
    assert both[1, 6:].tolist() == alone[0, 3:].tolist() and len(set(alone[0, 3:].tolist())) > 1
