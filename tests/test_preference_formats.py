"""Every TRL preference format (issue 25, item 2): standard and conversational rows, each with an
explicit or an implicit prompt. The file check names file:line: field; an implicit prompt is split off
as TRL splits it; DPOTrainer and RewardTrainer, given the raw rows, tokenize them to the very ids the
alignment metrics score (bench/evaluate/rendering.py); the suite's data check refuses bad preference
files and conversational pairs without a chat template before any run."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.spec import Budget, ModelSpec, Training
from bench.suite import parse_suite
from bench.tasks.check import data_problems
from bench.tasks.preference import PreferenceError, build_preference, implicit_prompt, parse_row, read_jsonl
from tests.conftest import fast_suite

# ChatML-like; the end of an assistant turn is the eos token
TEMPLATE = (
    "{%- for m in messages %}{{ m.role }} : {{ m.content }}{% if m.role == 'assistant' %}<eos>{% endif %}\n"
    "{% endfor %}{%- if add_generation_prompt %}assistant : {% endif %}"
)
FORMATS = ("standard", "standard-implicit-prompt", "conversational", "conversational-implicit-prompt")


def _user(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "code"}, {"role": "user", "content": text}]


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text.strip()}]


def rows_in(data_format: str, count: int, seed: int = 0) -> list[dict[str, Any]]:
    """Cipher pairs (chosen = the right letter) written in one of TRL's four preference formats."""
    rows = []
    for pair in build_preference("cipher", count, 1, seed).train:
        if data_format == "standard":
            rows.append({"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected})
        elif data_format == "standard-implicit-prompt":
            rows.append({"chosen": pair.prompt + pair.chosen, "rejected": pair.prompt + pair.rejected})
        elif data_format == "conversational":
            rows.append(
                {"prompt": _user(pair.prompt), "chosen": _assistant(pair.chosen), "rejected": _assistant(pair.rejected)}
            )
        else:
            prompt = _user(pair.prompt)
            rows.append({"chosen": prompt + _assistant(pair.chosen), "rejected": prompt + _assistant(pair.rejected)})
    return rows


def write(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("data_format", FORMATS)
def test_each_format_reads_with_its_prompt(tmp_path: Path, data_format: str):
    pairs = read_jsonl(write(tmp_path / "p.jsonl", rows_in(data_format, 12)))
    assert len(pairs) == 12 and {pair.format for pair in pairs} == {data_format}
    explicit = read_jsonl(write(tmp_path / "s.jsonl", rows_in(data_format.removesuffix("-implicit-prompt"), 12)))
    if data_format.startswith("standard"):  # the implicit prompt is the explicit one, the space goes to the answers
        assert [(p.prompt, p.chosen, p.rejected) for p in pairs] == [(p.prompt, p.chosen, p.rejected) for p in explicit]
    else:
        assert [p.prompt for p in pairs] == [p.prompt for p in explicit]
        assert all(p.prompt[-1]["role"] == "user" and p.chosen[0]["role"] == "assistant" for p in pairs)
    assert [pair.row() for pair in pairs] == rows_in(data_format, 12)  # handed to TRL as the file gave them


CASES = [
    ("copy a b : a b", "copy a b : a c"),  # the shared start runs into the answer, as TRL splits it
    ("q : yes", "q : no"),
    ("q :x", "q :y"),  # no space before the split
    ("abc", "abcd"),  # one is the start of the other: TRL's loop leaves the split one short
    (
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "a"}],
        [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "b"}],
    ),
    (
        [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "v"}],
        [{"role": "user", "content": "u"}, {"role": "assistant", "content": "a"}, {"role": "user", "content": "w"}],
    ),
]


@pytest.mark.parametrize(("chosen", "rejected"), CASES)
def test_the_implicit_prompt_is_split_off_as_trl_splits_it(chosen: Any, rejected: Any):
    from trl.data_utils import extract_prompt

    expected = extract_prompt({"chosen": chosen, "rejected": rejected})
    assert implicit_prompt(chosen, rejected) == (expected["prompt"], expected["chosen"], expected["rejected"])


def test_every_bad_row_is_named_by_file_line_and_field(tmp_path: Path):
    user, bot = [{"role": "user", "content": "x"}], [{"role": "assistant", "content": "y"}]
    rows: list[Any] = [
        {"chosen": user + bot, "rejected": user + [{"role": "assistant", "content": "z"}]},  # 1 fine
        {"prompt": "text prompt", "chosen": bot, "rejected": bot},  # 2
        {"prompt": user, "chosen": [{"role": "bot", "content": "y"}], "rejected": bot},  # 3
        {"prompt": user, "chosen": [{"role": "user", "content": "y"}], "rejected": bot},  # 4
        {"chosen": bot, "rejected": user + bot},  # 5: no shared start
        {"chosen": user + bot, "rejected": user + bot},  # 6
        {"chosen": user + bot, "rejected": user + [{"role": "user", "content": "z"}]},  # 7
        {"chosen": "same : a", "rejected": "same : b"},  # 8: another format
        {"prompt": user, "chosen": bot},  # 9
        "[1, 2",  # 10
        {"chosen": "a", "rejected": "ab"},  # 11: TRL would split off an empty prompt
    ]
    path = write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(PreferenceError) as raised:
        read_jsonl(path)
    problems = raised.value.problems
    expected = [
        f"{path}:2: field 'prompt': expected a list of messages like chosen's, got text",
        f"{path}:3: field 'chosen[0].role': unknown role 'bot'",
        f"{path}:4: field 'chosen': no assistant turn: nothing to learn",
        f"{path}:5: field 'chosen': no prompt: without a 'prompt' field",
        f"{path}:11: field 'chosen': no prompt: without a 'prompt' field",
        f"{path}:6: field 'rejected': equal to 'chosen'",
        f"{path}:7: field 'rejected': no assistant turn after the prompt they share",
        f"{path}:8: mixed formats: a standard-implicit-prompt row, but line 1 is conversational-implicit-prompt",
        f"{path}:9: field 'rejected': required field is missing",
        f"{path}:10: not valid JSON",
    ]
    for start in expected:
        assert sum(problem.startswith(start) for problem in problems) == 1, (start, problems)
    assert len(problems) == len(expected), problems


def _suite(path: Path, template: str | None) -> Any:
    model = {"preset": "tiny-llama", **({"chat_template": template} if template else {})}
    return parse_suite(fast_suite("pref", ["dpo"], model=model, preference={"jsonl": str(path), "heldout_size": 2}))


def test_the_data_check_reads_preference_files_before_any_run(tmp_path: Path):
    good = write(tmp_path / "chat.jsonl", rows_in("conversational-implicit-prompt", 6))
    assert data_problems(_suite(good, TEMPLATE)) == []
    assert data_problems(_suite(good, None)) == [
        "preference.jsonl: conversational-implicit-prompt pairs need a chat template, and model preset "
        "'tiny-llama' has none: give one with model.chat_template"
    ]
    plain = write(tmp_path / "plain.jsonl", rows_in("standard-implicit-prompt", 6))
    assert data_problems(_suite(plain, None)) == []
    bad = write(tmp_path / "bad.jsonl", [*rows_in("standard", 2), {"chosen": " a", "rejected": [{"x": 1}]}])
    assert data_problems(_suite(bad, TEMPLATE)) == [
        f"{bad}:3: field 'rejected': expected text, got list",
    ]


@pytest.fixture(scope="module")
def loaded(tiny_folder: Path):
    from bench.models.load import load_model

    return load_model(ModelSpec(preset="tiny-llama", chat_template=TEMPLATE), "cpu", report=lambda m: None)


def _arguments(tmp_path: Path) -> dict[str, Any]:
    from bench.training.train import trainer_arguments

    return trainer_arguments(Budget(steps=1, batch_size=2, seq_len=64), Training(), 1e-3, 0, "cpu", tmp_path)


@pytest.mark.parametrize("data_format", FORMATS)
def test_trl_trains_on_the_ids_the_metrics_score(tmp_path: Path, loaded: Any, data_format: str):
    """DPOTrainer and RewardTrainer on the raw file (TRL alone) tokenize each pair to the ids of
    bench.evaluate.rendering, and the harness's trainers build the same datasets."""
    from datasets import load_dataset
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    from bench.evaluate.rendering import dpo_ids, reward_ids
    from bench.strategies.dpo import Options as DpoOptions
    from bench.tasks.preference import PreferenceData
    from bench.training.alignment import dpo_trainer

    path = write(tmp_path / "pairs.jsonl", rows_in(data_format, 6))
    pairs = read_jsonl(path)
    raw = load_dataset("json", data_files=str(path), split="train")
    arguments = _arguments(tmp_path)
    model, tokenizer = loaded.model, loaded.tokenizer
    reference = DPOTrainer(model=model, args=DPOConfig(**arguments, max_length=64), train_dataset=raw,
                           processing_class=tokenizer)  # fmt: skip
    data = PreferenceData(train=pairs, heldout=pairs[:1], source="test")
    ours = dpo_trainer(model, tokenizer, None, arguments, Budget(steps=1, batch_size=2, seq_len=64),
                       options=DpoOptions(), preference=data)  # fmt: skip
    rendered = [dpo_ids(tokenizer, pair) for pair in pairs]
    for column, index in (("prompt_ids", 0), ("chosen_ids", 1), ("rejected_ids", 2)):
        assert reference.train_dataset[column] == [ids[index] for ids in rendered], column
        assert ours.train_dataset[column] == reference.train_dataset[column], column
    eos = tokenizer.eos_token_id
    assert all(ids[1][-1] == eos and ids[2][-1] == eos for ids in rendered)  # eos, or the template's end of turn

    from transformers import AutoModelForSequenceClassification

    scorer = AutoModelForSequenceClassification.from_pretrained(loaded.info["folder"], num_labels=1)
    raw = load_dataset("json", data_files=str(path), split="train")
    trainer = RewardTrainer(model=scorer, args=RewardConfig(**arguments, max_length=64), train_dataset=raw,
                            processing_class=tokenizer)  # fmt: skip
    assert trainer.train_dataset["chosen_ids"] == [reward_ids(tokenizer, p.prompt, p.chosen) for p in pairs]
    assert trainer.train_dataset["rejected_ids"] == [reward_ids(tokenizer, p.prompt, p.rejected) for p in pairs]


@pytest.mark.parametrize("data_format", ["conversational-implicit-prompt", "standard-implicit-prompt"])
def test_a_dpo_suite_on_these_rows_runs_ok(tmp_path: Path, data_format: str):
    """The committed suite (conversational rows, implicit prompt, its own chat template), shortened; and
    the same pairs as text with an implicit prompt, on the preset as it is."""
    import yaml

    from bench.plan import plan
    from bench.records.results import RunResult
    from bench.run.worker import run

    suite = yaml.safe_load(Path("suites/alignment-chat.yaml").read_text())
    if data_format.startswith("standard"):
        suite["model"].pop("chat_template")
        rows = rows_in(data_format, 120)
    else:
        rows = [json.loads(line) for line in Path(suite["preference"]["jsonl"]).read_text().splitlines()[:120]]
    suite["preference"]["jsonl"] = str(write(tmp_path / "pairs.jsonl", rows))
    suite.update(
        budget={"steps": 24, "batch_size": 8, "seq_len": 32},
        measure={"accuracy": False, "latency": False, "throughput_warmup_steps": 1},
        strategies=[s for s in suite["strategies"] if s.get("dpo", {}).get("label") == "dpo"],
    )
    parsed = parse_suite(suite)
    assert data_problems(parsed) == []
    (spec,) = plan(parsed)
    result = run(spec, "test-machine", tmp_path / "run")
    assert result.status == "ok", result.reason
    record = RunResult.model_validate_json(result.model_dump_json())
    recorded = record.budget["preference"]
    assert recorded == {
        "source": f"jsonl:{tmp_path / 'pairs.jsonl'}",
        "train_pairs": 79,
        "heldout": 41,  # heldout_size 40: the split holds out every pair of a held-out prompt
        # distinct held-out pairs: cipher's 26 letters x 25 distractors repeat a few pairs within a prompt
        "heldout_distinct": 38 if data_format.startswith("conversational") else 37,
        # 41 pairs of 8 prompts (the committed rows) or 7 (the text rows), none of them in training
        "heldout_prompts": 8 if data_format.startswith("conversational") else 7,
        "heldout_prompts_in_training": 0,
        "format": data_format,
    }
    metrics = {name: record.metrics[name].value for name in record.metrics if name.startswith("align.")}
    # DPO trained: its loss fell from ln 2. The held-out prompts are now unseen in training (the split is by
    # prompt), and on these cipher pairs what DPO learns on some letters does not carry to others: the
    # held-out margins moved (-0.30 and -5.8 nats on the two formats), not towards the chosen answers; until
    # the split was by row, held-out prompts were trained on and this test saw 0.70 -> 0.90 there
    assert record.metrics["train.final_loss"].value < 0.69, record.loss_curve
    assert metrics["align.reward_margin"] != 0, metrics
    for name in ("align.reward_accuracy", "align.preference_accuracy", "align.preference_accuracy_before"):
        assert 0 <= metrics[name] <= 1, metrics
    win = metrics["align.win_rate_vs_base"]  # missing where no greedy answer equals either text of any pair
    assert win is None or 0 <= win <= 1


TEXT = st.sampled_from(["q :", "q : a", "q : b", "q :a", "q :b", "a", "ab", " ", ""])
LEAF = st.none() | st.integers(-2, 2) | TEXT
GOOD_MESSAGE = st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": TEXT})
BAD_MESSAGE = st.dictionaries(st.sampled_from(["role", "content", "x"]), LEAF | st.just("bot"), max_size=3)
TURNS = TEXT | st.lists(GOOD_MESSAGE, min_size=1, max_size=3) | st.lists(GOOD_MESSAGE | BAD_MESSAGE, max_size=2) | LEAF
PAIR = st.fixed_dictionaries({"chosen": TURNS, "rejected": TURNS}, optional={"prompt": TURNS, "id": LEAF})


@st.composite
def valid_rows(draw: Any) -> dict[str, Any]:
    """A well-formed row of any of the four formats (answers may share their start, as in `copy`)."""
    prompt = draw(st.sampled_from(["q :", "code d =", "x"]))
    answers = st.sampled_from(["a", "b", "a b", "a c", "ab"])
    chosen, rejected = draw(st.lists(answers, min_size=2, max_size=2, unique=True))
    if draw(st.booleans()):
        prompt = [{"role": "user", "content": prompt}]
        chosen, rejected = ([{"role": "assistant", "content": text}] for text in (chosen, rejected))
    else:
        chosen, rejected = " " + chosen, " " + rejected
    if draw(st.booleans()):
        return {"chosen": prompt + chosen, "rejected": prompt + rejected}
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


JUNK = st.dictionaries(st.sampled_from(["prompt", "chosen", "rejected", "x"]), TURNS, max_size=3) | LEAF
ROW = st.one_of(valid_rows(), valid_rows(), PAIR, JUNK)
LINES = st.lists(ROW.map(json.dumps) | st.sampled_from(["{", "[1,", ""]), min_size=1, max_size=4)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(LINES)
def test_malformed_preference_files_give_problems_never_a_traceback(lines: list[str]):
    from trl.data_utils import extract_prompt

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "pairs.jsonl"
        path.write_text("\n".join(lines))
        problems = data_problems(_suite(path, TEMPLATE))  # raises nothing, whatever the file holds
        assert all(isinstance(p, str) and p.startswith(str(path)) for p in problems)
        if problems:
            return
        for pair in read_jsonl(path):  # what passes the check is what TRL makes of the row it is handed
            row = pair.row()
            if pair.implicit:
                split = extract_prompt(row)
                assert (split["prompt"], split["chosen"], split["rejected"]) == (
                    pair.prompt,
                    pair.chosen,
                    pair.rejected,
                )
            assert parse_row(row) == (pair, [])


def test_rlhf_trains_and_scores_on_conversational_pairs(tmp_path: Path):
    """The reward model learns from conversational pairs (implicit prompt), RLOO generates answers to the
    conversational prompts and the frozen reward model scores them through the chat template, and every
    align.* metric (reward model accuracy, mean rewards, margins) is measured on the same rendering."""
    import transformers
    import yaml

    from bench.evaluate.alignment import alignment_metrics, measure_base, score_ids
    from bench.evaluate.rendering import reward_ids
    from bench.models.load import load_model
    from bench.strategies import STRATEGIES, PrepareContext
    from bench.suite import TaskSpec
    from bench.tasks import load_task
    from bench.tasks.preference import split_pairs
    from bench.training.alignment import reward_function
    from bench.training.train import TrainRequest, train

    template = yaml.safe_load(Path("suites/alignment-chat.yaml").read_text())["model"]["chat_template"]
    pairs = read_jsonl(write(tmp_path / "p.jsonl", rows_in("conversational-implicit-prompt", 24)))
    preference = split_pairs(pairs, 8, "test")
    transformers.set_seed(0)
    loaded = load_model(ModelSpec(preset="tiny-llama", chat_template=template), "cpu", report=lambda m: None)
    base = measure_base(loaded.model, loaded.tokenizer, preference)
    budget = Budget(steps=3, batch_size=4, seq_len=32)
    strategy = STRATEGIES.get("rlhf")
    options = strategy.Options(num_generations=2, max_new_tokens=3, lora={"r": 4, "alpha": 8})
    model = strategy.prepare(loaded.model, options, PrepareContext(loaded.tokenizer, budget, 0, "cpu"))
    task = load_task(TaskSpec(name="cipher", train_size=8, eval_limit=4))
    outcome = train(
        TrainRequest(
            model, loaded.tokenizer, strategy.objective, task, budget, Training(), options, 0, "cpu",
            tmp_path / "run", preference=preference,
        )
    )  # fmt: skip
    assert [phase.steps for phase in outcome.phases] == [3, 3]
    assert outcome.phases[1].generated_tokens > 0
    metrics = alignment_metrics(model, loaded.tokenizer, preference, base, outcome.artefacts["reward_model"])
    measured = {name: value for name, value in metrics.items() if name != "align.win_rate_vs_base"}
    assert all(value is not None for value, _, _ in measured.values()), metrics
    win, _, why = metrics["align.win_rate_vs_base"]
    assert (win is None) == (why is not None)  # missing only with its reason (the judge decided no pair)
    assert 0 <= metrics["align.reward_model_accuracy"][0] <= 1
    # what RLOO hands the reward function for a conversational prompt (an assistant message) is scored
    # from the message through the template, as RewardTrainer rendered it, not from the generated ids
    pair, reward_model = preference.heldout[0], outcome.artefacts["reward_model"]
    score = reward_function(reward_model, loaded.tokenizer)(
        prompts=[pair.prompt], completions=[pair.chosen], completion_ids=[[loaded.tokenizer.unk_token_id]]
    )
    assert score == score_ids(reward_model, loaded.tokenizer, [reward_ids(loaded.tokenizer, pair.prompt, pair.chosen)])
