"""Behaviour of the report's settings and quality tables and its family of tests that no other test held (the
mutation audit and its totals: tests/test_mutants_report_records.py; each test fails on one or more mutants of the
code it names)."""

from __future__ import annotations

from tests.synthetic_records import make_record, make_set
from tests.test_mutants_report_records import _answer
from tests.test_paired import _with_items

# bench/report/settings.py


def test_options_are_spelled_as_a_suite_file_would_spell_them():
    """alpha 32.0 is "32", dropout 0.1 against a default of 0.0 is "(default 0)", a flag is "true"."""
    from bench.report.settings import settings_section
    from tests.test_report_settings import with_options

    lora = [with_options(r, alpha=32.0, dropout=0.1, use_dora=True) for r in make_set(labels=("lora",))]
    rows = {row["strategy"]: row for row in settings_section(make_set(labels=("full",)) + lora)["rows"]}
    assert rows["lora"]["others"] == ["alpha=32 (default 16)", "dropout=0.1 (default 0)", "use_dora=true (no default)"]
    assert (rows["lora"]["rate_text"], rows["lora"]["default_text"]) == ("0.003", "default 0.0002")


def test_an_option_one_run_of_a_plugin_strategy_lacks_counts_as_differing():
    """A plugin's strategy (no defaults known): mine-a set `extra`, mine-b did not; that differs, so it is shown."""
    from bench.report.settings import settings_section
    from tests.test_report_settings import with_options

    runs = [
        with_options(make_record("full", 0), width=4, extra=1).model_copy(update={"label": "mine-a"}),
        with_options(make_record("full", 1), width=4).model_copy(update={"label": "mine-b"}),
    ]
    runs = [r.model_copy(update={"strategy": "mine", "spec": {**r.spec, "strategy": "mine"}}) for r in runs]
    rows = {row["strategy"]: row for row in settings_section(runs)["rows"]}
    assert rows["mine-a"]["others"] == ["extra=1"] and rows["mine-b"]["others"] == []
    assert rows["mine-a"]["default"] is None and rows["mine-a"]["rate_text"] == "0.003"


def test_the_settings_of_a_strategy_are_those_of_its_ok_runs():
    """lora's seed 3 failed: the table's row holds the seeds that ended ok, as the results table does."""
    from bench.report.settings import rates_line, settings_section

    records = make_set() + [make_record("lora", 3, status="failed", reason="out of memory")]
    rows = {row["strategy"]: row for row in settings_section(records)["rows"]}
    assert rows["lora"]["seeds"] == [0, 1, 2] and rows["lora"]["steps"] == [60, 60, 60]
    failed = settings_section([make_record("lora", 3, status="failed", reason="out of memory")])["rows"]
    assert [(row["strategy"], row["seeds"]) for row in failed] == [("lora", [3])]  # none ok: what the failed ran
    assert rates_line(records) == "learning rates: full 0.003, lora 0.003"


def test_training_settings_said_once_are_those_every_run_shares():
    """lr_scheduler is the same in every run: said once under the table; the optimizer differs: said per row."""
    from bench.report.settings import settings_section

    def trained(records, optimizer):
        training = {"optimizer": optimizer, "lr_scheduler": "constant"}
        return [r.model_copy(update={"spec": {**r.spec, "training": training}}) for r in records]

    records = trained(make_set(labels=("full",)), "adamw_torch") + trained(make_set(labels=("lora",)), "sgd")
    section = settings_section(records)
    assert section["training"] == ["lr_scheduler=constant"]
    assert [row["others"] for row in section["rows"]] == [
        ["training.optimizer=adamw_torch"],
        ["training.optimizer=sgd"],
    ]


def test_dpo_runs_of_other_loss_types_minimise_different_losses():
    """DPO's sigmoid and IPO losses are not one scale: the table stars no final loss between them."""
    from bench.report.html import losses_differ
    from bench.report.settings import loss_kind

    def dpo(loss_type):
        record = make_record("lora", 0)
        spec = {**record.spec, "strategy": "dpo", "options": {"loss_type": loss_type}}
        return record.model_copy(update={"strategy": "dpo", "spec": spec})

    assert (loss_kind(dpo("ipo")), loss_kind(dpo("sigmoid")), loss_kind(make_record("lora", 0))) == (
        "dpo:ipo",
        "dpo:sigmoid",
        "sft",
    )
    assert losses_differ([dpo("ipo"), dpo("sigmoid")]) and not losses_differ([dpo("ipo"), dpo("ipo")])


# bench/report/quality.py


def test_the_quality_table_with_a_retained_task():
    """full learns cipher (100%) and forgets next-letter (-50 points); lora reaches 60% and forgets nothing. The
    table: every figure with its interval and detectable effect, lora against full (the most accurate) on
    accuracy and mean forgetting, both decided together."""
    from bench.analysis.items import item_record
    from bench.report.quality import quality_section

    def run(label, seed, after, kept):
        record = _with_items(label, seed, after, "0000011111" * 3)
        retained = item_record([f"next-letter/{i}" for i in range(30)], "1111111111" * 3, kept)
        return record.model_copy(update={"items": {**record.items, "next-letter": retained}})

    runs = [run("full", s, "1111111111" * 3, "0000011111" * 3) for s in (0, 1, 2)]
    runs += [run("lora", s, "0000111111" * 3, "1111111111" * 3) for s in (0, 1, 2)]
    section = quality_section(runs)
    assert section["metrics"] == ["accuracy.cipher", "gain.cipher", "forgetting.next-letter", "forgetting.mean"]
    assert (section["reference"], section["compared"]) == ("full", ["accuracy.cipher", "forgetting.mean"])
    assert (section["tests"], section["one_seed"]) == (2, 0)
    rows = {row["strategy"]: row for row in section["rows"]}
    assert rows["full"]["seeds"] == 3
    assert [(c["text"], c["interval"], c["mde"]) for c in rows["full"]["cells"]] == [
        ("100.0", "95.9 to 100.0", "4.2"),
        ("50.0", "31.0 to 69.0", "26.9"),
        ("-50.0", "-69.0 to -31.0", "26.9"),
        ("-50.0", "-69.0 to -31.0", "26.9"),
    ]
    [lora] = section["comparisons"]
    assert lora["strategy"] == "lora"
    cells = {metric: (c["text"], c["mde"], c["beyond"], c["why"]) for metric, c in lora["cells"].items()}
    assert cells == {"accuracy.cipher": ("-40.0", "26.4", True, None), "forgetting.mean": ("50.0", "26.9", True, None)}


def test_the_quality_table_and_the_answers_are_one_family():
    """Three strategies: the table's four differences (lora and ia3 against full, on accuracy and mean
    forgetting) and "Least forgetting"'s lora against ia3 are five tests decided together, in the table too."""
    from bench.analysis.items import item_record
    from bench.report.quality import quality_section

    def run(label, seed, after, kept, forgetting):
        base = make_record(
            "lora", seed, values={"forgetting.mean": forgetting, "accuracy.cipher": after.count("1") / 30}
        )
        spec = {**base.spec, "strategy": label, "label": label}
        items = {
            "cipher": item_record([f"cipher/{i}" for i in range(30)], "0000011111" * 3, after),
            "next-letter": item_record([f"next-letter/{i}" for i in range(30)], "1111111111" * 3, kept),
        }
        update = {"run_id": f"{label}-{seed}", "strategy": label, "label": label, "spec": spec, "items": items}
        return base.model_copy(update=update)

    runs = [run("full", s, "1111111111" * 3, "0000011111" * 3, -0.5) for s in (0, 1, 2)]
    runs += [run("lora", s, "0000111111" * 3, "1111111111" * 3, 0.0) for s in (0, 1, 2)]
    runs += [run("ia3", s, "0001111111" * 3, "1111111110" * 3, -0.1) for s in (0, 1, 2)]
    forgetting = _answer(runs, "Least forgetting")
    assert (forgetting.winner, forgetting.runner_up, forgetting.by_item) == ("lora", "ia3", True)
    assert forgetting.note.endswith("q = 0.0831 over the report's 5 quality differences (Benjamini-Hochberg)")
    assert quality_section(runs)["tests"] == 5


# bench/report/family.py


def test_a_q_value_of_exactly_alpha_is_beyond_noise():
    """At most REPORT_ALPHA is beyond noise, as bench compare's gate decides (q = 0.05 is not "within noise")."""
    from bench.report.family import judge

    [alone] = judge([0.05])
    assert (alone.beyond, alone.q) == (True, 0.05)
    assert [verdict.beyond for verdict in judge([0.025, 0.05])] == [True, True]  # q = 0.05 and 0.05
