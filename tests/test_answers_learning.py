"""The report's answers and strategies that did not learn the task (audit user16): "Least forgetting" went to
an RLHF run below the base model's accuracy, and to five strategies tied at 0 whose loss never moved;
"Most accurate" named a winner where no strategy beat the base model."""

from __future__ import annotations

from bench.report.aggregate import answers
from tests.synthetic_records import make_record, make_set

SEEDS = (0, 1, 2)


def _answer(records, question: str):
    (found,) = [a for a in answers(records) if a.question == question]
    return found


def _stuck(label: str) -> list:
    """A strategy that changed nothing: no gain on the learned task, nothing forgotten."""
    values = {"gain.cipher": -0.01, "forgetting.mean": 0.0, "accuracy.cipher": 0.04}
    return [make_record(label, seed, values=values, noise=0.0) for seed in SEEDS]


def test_a_strategy_that_did_not_learn_does_not_win_least_forgetting():
    """lora changed nothing (forgetting 0.0, gain -1 point); full learned (forgetting -0.5): full is the answer,
    the only strategy that learned, and lora is named as left out."""
    found = _answer(make_set(labels=("full",)) + _stuck("lora"), "Least forgetting")
    assert found.winner == "full"
    assert found.note.startswith("only one strategy learned cipher")
    assert "did not learn cipher, not ranked: lora -1.0 points gain" in found.note
    both = _answer(make_set(labels=("full", "lora")), "Least forgetting")
    assert both.winner == "lora" and "did not learn" not in both.note  # both learned: ranked as before


def test_least_forgetting_is_not_ranked_when_no_strategy_learned():
    found = _answer(_stuck("full") + _stuck("lora"), "Least forgetting")
    assert found.winner is None
    assert found.note.startswith("not ranked: no strategy learned cipher (mean gain full -1.0, lora -1.0 points)")


def test_most_accurate_says_when_no_strategy_learned():
    found = _answer(_stuck("full") + _stuck("lora"), "Most accurate")
    assert found.note.startswith("no strategy learned cipher: no mean gain over the base model is above 0")
    learned = _answer(make_set(labels=("full", "lora")), "Most accurate")
    assert "no strategy learned" not in learned.note


def test_a_chained_winner_says_its_parent_trained_first():
    """audit user16: dpo-after-sft won "Most accurate" with no word that sft-lora's 60 steps came first."""
    parent = {"strategy": "lora", "label": "sft-lora", "options": {}, "run_id": "p"}
    chained = [r.model_copy(update={"spec": {**r.spec, "parent": parent}}) for r in make_set(labels=("full",))]
    found = _answer(chained + make_set(labels=("lora",)), "Most accurate")
    assert found.winner == "full"
    assert "full trained after sft-lora (60 steps of it first, not in its own budget)" in found.note
    plain = _answer(make_set(labels=("full", "lora")), "Most accurate")
    assert "trained after" not in plain.note


def test_recommend_rejects_a_strategy_that_did_not_learn():
    """bench recommend chose among strategies whatever their gain: one that changed nothing is the lightest and
    forgets nothing. Now it is rejected, saying so; where none learned, nothing is recommended."""
    from bench.recommend import recommend

    rec = recommend(make_set(labels=("full",)) + _stuck("lora"), 24 * 2**30, objective="throughput")
    assert rec.rejected["lora"] == "did not learn cipher: mean gain -1.0 points over the base model"
    assert rec.choice == "full"
    none = recommend(_stuck("full") + _stuck("lora"), 24 * 2**30)
    assert none.choice is None
    assert none.reason == "no strategy meets the constraints: 2 of 2 did not learn the task (best: full, -1.0 points)"


def test_the_table_stars_no_forgetting_of_a_strategy_that_did_not_learn():
    from bench.report.html import context

    columns = {c["name"]: c["best"] for c in context(make_set(labels=("full",)) + _stuck("lora"))["columns"]}
    assert columns["forgetting.mean"] == ["full"]  # lora's 0.0 is no star: it changed nothing
    columns = {c["name"]: c["best"] for c in context(_stuck("full") + _stuck("lora"))["columns"]}
    assert columns["forgetting.mean"] == []


def test_the_budget_line_names_a_chained_strategy():
    from bench.report.html import render

    parent = {"strategy": "lora", "label": "sft-lora", "options": {}, "run_id": "p"}
    chained = [r.model_copy(update={"spec": {**r.spec, "parent": parent}}) for r in make_set(labels=("full",))]
    page = render(chained + make_set(labels=("lora",)))
    assert 'id="chained-budget">(full trained after sft-lora (60 steps of it first, not in its own budget))' in page


def test_a_lone_strategy_that_did_not_learn_is_said_so():
    """review: with one strategy, Most accurate returned before saying that it did not learn."""
    found = _answer(_stuck("full"), "Most accurate")
    assert found.note.startswith("no strategy learned cipher") and "only one strategy measured this" in found.note


def test_the_star_asks_each_suite_its_own_task():
    """review: the table's forgetting star took one learned task for a folder of several suites, so a strategy
    that did not learn its own suite's task kept the star its suite's answer denied it."""
    from bench.report.html import context

    def other(records):
        moved = []
        for r in records:
            spec = {**r.spec, "suite": "other", "task": {**r.spec["task"], "name": "dates"}}
            metrics = {("gain.dates" if k == "gain.cipher" else k): v for k, v in r.metrics.items()}
            moved.append(r.model_copy(update={"suite": "other", "spec": spec, "metrics": metrics}))
        return moved

    records = _stuck("lora") + other(make_set(labels=("full", "lora")))
    stars = {c["name"]: c["best"] for c in context(records)["columns"]}["forgetting.mean"]
    assert "smoke/lora" not in stars, stars


def test_best_aligned_asks_the_metric_every_strategy_measured():
    """review: a folder of new records (align.reward_accuracy) and reused older ones (only
    align.preference_accuracy) ranked the new ones alone on reward_accuracy, the others dropped unnamed."""
    from bench.records.results import Metric

    def aligned(records, names):
        return [
            r.model_copy(
                update={
                    "metrics": {
                        **r.metrics,
                        **{n: Metric(value=v, unit="acc", higher_is_better=True) for n, v in names.items()},
                    }
                }
            )
            for r in records
        ]

    new = aligned(make_set(labels=("full",)), {"align.reward_accuracy": 0.6, "align.preference_accuracy": 0.7})
    old = aligned(make_set(labels=("lora",)), {"align.preference_accuracy": 0.9})
    found = _answer(new + old, "Best aligned")
    assert found.metric == "align.preference_accuracy" and found.winner == "lora" and found.runner_up == "full"
    both = aligned(make_set(labels=("lora",)), {"align.reward_accuracy": 0.8, "align.preference_accuracy": 0.1})
    assert _answer(new + both, "Best aligned").metric == "align.reward_accuracy"
