"""Behaviour of the report's answers and notes and the front page that no other test held (a mutation audit of
bench/report/ aggregate, answer_rows, front, settings, quality and family: 114 mutants, 63 killed before, 9
equivalent, 42 closed by this file and tests/test_mutants_report_settings.py; each test fails on one or more mutants
of the code it names)."""

from __future__ import annotations

import pytest

from bench.report.aggregate import answers, cell, summarize
from bench.report.front import _said
from tests.synthetic_records import make_record, make_set
from tests.test_paired import _with_items


def _answer(records, question: str):
    (found,) = [a for a in answers(records) if a.question == question]
    return found


# bench/report/aggregate.py


def test_the_table_spread_is_the_sample_standard_deviation_over_seeds():
    """0.5, 0.6, 0.7 over three seeds: "0.6 ± 0.1" (the standard deviation, n - 1), not the variance 0.01."""
    from bench.report.html import _cell_text

    records = [make_record("full", s, values={"accuracy.cipher": v}) for s, v in enumerate((0.5, 0.6, 0.7))]
    found = cell(summarize(records + make_set(labels=("lora",))), "full", "accuracy.cipher")
    assert found["mean"] == pytest.approx(0.6) and found["std"] == pytest.approx(0.1)
    assert _cell_text(found)["text"] == "0.6 ± 0.1"


def test_a_tie_is_won_by_the_first_strategy_by_name():
    """Equal sizes on every seed: a tie, and the winner is the first by name (full), the same on every report."""
    found = _answer(make_set(values={"storage.bytes": 8000.0}), "Smallest to store")
    assert (found.winner, found.runner_up, found.note, found.beyond_noise) == ("full", "lora", "tie", False)
    swapped = _answer(make_set(labels=("lora", "full"), values={"storage.bytes": 8000.0}), "Smallest to store")
    assert (swapped.winner, swapped.runner_up) == ("full", "lora")


def test_a_tie_with_one_seed_on_a_side_is_noise_unknown():
    """strategies-h200 (one seed a strategy) was published as "freeze 1 vs full 1 acc (tied), within noise" (audit
    user20): with one seed a side the seed noise is unknown, as for any other answer of one seed."""
    found = _answer(make_set(seeds=(0,), values={"accuracy.cipher": 1.0}), "Most accurate")
    assert (found.winner, found.runner_up, found.beyond_noise) == ("full", "lora", None)
    assert found.note == "tie; one seed on a side: noise unknown"
    assert _said(found) == "Most accurate: full 1 vs lora 1 acc (tied), noise unknown"


def test_the_relative_margin_is_a_share_of_the_runner_up():
    """lora stores 8000 bytes, full 355912: lora is smaller by 347912 bytes, 97.8% of full's (not 43x lora's)."""
    found = _answer(make_set(), "Smallest to store")
    assert (found.winner, found.runner_up, found.margin) == ("lora", "full", 347912.0)
    assert found.margin_relative == pytest.approx(347912 / 355912)


def test_sizes_one_byte_apart_are_no_tie():
    """10000 vs 10001 bytes on every seed: a difference of 1e-4, measured exactly, is no rounding tie."""
    records = make_set(labels=("full",), values={"storage.bytes": 10000.0})
    records += make_set(labels=("lora",), values={"storage.bytes": 10001.0})
    found = _answer(records, "Smallest to store")
    assert (found.winner, found.margin, found.beyond_noise) == ("full", 1.0, True)
    assert found.note == "the same on every seed of either (3 vs 3): no seed noise, exact"


def test_one_seed_a_side_is_not_called_exact():
    """One run a side shows no seed noise because there is only one seed: too few to tell, not "exact"."""
    found = _answer(make_set(seeds=(0,)), "Smallest to store")
    assert found.beyond_noise is None
    assert found.note == "1 vs 1 seeds: too few to tell at two-sided p<=0.05"


def test_a_quality_metric_the_same_on_every_seed_is_still_tested_over_seeds():
    """Accuracy 0.70 vs 0.55 on each of three seeds: accuracy has seed noise even when three runs agree, so
    three seeds a side are too few to tell (only measurements such as sizes are exact)."""
    records = make_set(labels=("full",), values={"accuracy.cipher": 0.7})
    records += make_set(labels=("lora",), values={"accuracy.cipher": 0.55})
    found = _answer(records, "Most accurate")
    assert found.winner == "full" and found.beyond_noise is None
    assert found.note == "3 vs 3 seeds: too few to tell at two-sided p<=0.05"


def test_a_size_that_varies_on_one_side_is_not_exact():
    """Either side's size varying over seeds is seed noise to test against, the winner's (lora) or the
    runner-up's (full)."""
    lora = [make_record("lora", s, values={"storage.bytes": 8000.0 + s}) for s in range(3)]
    full = [make_record("full", s, values={"storage.bytes": 355912.0 + s}) for s in range(3)]
    for records in (make_set(labels=("full",)) + lora, full + make_set(labels=("lora",))):
        found = _answer(records, "Smallest to store")
        assert found.winner == "lora" and found.beyond_noise is None
        assert found.note == "3 vs 3 seeds: too few to tell at two-sided p<=0.05"


def test_costs_and_quality_are_separate_families():
    """Six seeds a side: accuracy and forgetting are decided together (2 quality differences), memory, speed and
    latency together (3 cost differences); a size is exact and tested by none."""
    notes = {a.question: a.note for a in answers(make_set(seeds=tuple(range(6))))}
    for question in ("Most accurate", "Least forgetting"):
        assert notes[question].endswith("q = 0.0312 over the report's 2 quality differences (Benjamini-Hochberg)")
    for question in ("Least memory (training peak)", "Fastest to train", "Lowest latency"):
        assert notes[question].endswith("q = 0.0312 over the report's 3 cost differences (Benjamini-Hochberg)")


def test_the_quality_table_leaves_out_retained_tasks_without_items():
    """Items recorded for the learned task only: the table shows its accuracy and gain, no forgetting columns
    (the retained tasks had no items to pair)."""
    from bench.report.quality import quality_section

    before = "0000011111" * 3
    runs = [_with_items("full", s, "1111111111" * 3, before) for s in (0, 1, 2)]
    runs += [_with_items("lora", s, "0000111111" * 3, before) for s in (0, 1, 2)]
    section = quality_section(runs)
    assert section["metrics"] == ["accuracy.cipher", "gain.cipher"]
    assert section["compared"] == ["accuracy.cipher"]


# bench/report/answer_rows.py


def _unchanged(label: str, gain: float = 0.0) -> list:
    """A strategy whose runs changed nothing: gain exactly `gain`, nothing forgotten."""
    values = {"gain.cipher": gain, "forgetting.mean": 0.0, "accuracy.cipher": 0.05}
    return [make_record(label, seed, values=values, noise=0.0) for seed in (0, 1, 2)]


def test_a_gain_of_exactly_zero_is_not_learning():
    """lora's gain is 0.0 points: it changed nothing and forgets nothing for it, so it is not ranked on
    forgetting; where no strategy's gain is above 0, the most accurate is only the least harmed."""
    found = _answer(make_set(labels=("full",)) + _unchanged("lora"), "Least forgetting")
    assert found.winner == "full" and found.runner_up is None
    assert "did not learn cipher, not ranked: lora +0.0 points gain" in found.note
    none = _answer(_unchanged("full") + _unchanged("lora"), "Most accurate")
    assert none.note.startswith(
        "no strategy learned cipher: no mean gain over the base model is above 0 (the best +0.0 points)"
    )
    harmed = _answer(_unchanged("full", -0.01) + _unchanged("lora", -0.03), "Most accurate")
    assert "no mean gain over the base model is above 0 (the best -1.0 points)" in harmed.note


def test_a_retained_task_at_zero_in_some_runs_only_is_no_floor():
    """next-letter scored 0 before training in one run and 0.2 in the other: something could be forgotten
    there, so mean forgetting is answered without a floor note."""
    from tests.test_answers_audit import at_floor

    records = [at_floor(label, 0, {"next-letter": 0.0, "copy": 0.6}) for label in ("full", "lora")]
    records += [at_floor(label, 1, {"next-letter": 0.2, "copy": 0.6}) for label in ("full", "lora")]
    found = _answer(records, "Least forgetting")
    assert found.winner is not None and "floor" not in found.note


def _merged(record, value: float):
    from bench.records.results import Metric

    metric = Metric(value=value, unit="ms", higher_is_better=False)
    return record.model_copy(update={"metrics": {**record.metrics, "latency.merged.ttft_ms.p50": metric}})


def test_a_merged_latency_equal_to_the_winners_is_not_called_lower():
    """full wins lowest latency at 9 ms; lora merged runs at 9 ms too: not lower, so not said."""
    records = make_set(labels=("full",), values={"latency.ttft_ms.p50": 9.0})
    records += [_merged(r, 9.0) for r in make_set(labels=("lora",))]
    found = _answer(records, "Lowest latency")
    assert found.winner == "full" and found.winner_mean == 9.0
    assert "merged" not in found.note
    lower = make_set(labels=("full",), values={"latency.ttft_ms.p50": 9.0})
    lower += [_merged(r, 8.0) for r in make_set(labels=("lora",))]
    assert "merged, lora is lower by means (untested): 8 ms" in _answer(lower, "Lowest latency").note


def test_the_lowest_merged_latency_is_named():
    """Merged, full runs at 8.5 ms and lora at 5 ms, both below full's unmerged 9 ms: lora is named."""
    records = [_merged(r, 8.5) for r in make_set(labels=("full",), values={"latency.ttft_ms.p50": 9.0})]
    records += [_merged(r, 5.0) for r in make_set(labels=("lora",))]
    assert "merged, lora is lower by means (untested): 5 ms" in _answer(records, "Lowest latency").note


def test_a_merged_latency_counts_the_clean_runs_only():
    """lora merged: 12 ms on its two clean runs, 1 ms on a run whose timing was contaminated. By its clean
    runs it is not below full's 9 ms, so nothing is said (the contaminated 1 ms would have pulled it to 8.3)."""
    full = make_set(labels=("full",), values={"latency.ttft_ms.p50": 9.0})
    lora = [_merged(make_record("lora", s), 12.0) for s in (0, 1)]
    lora.append(_merged(make_record("lora", 2, contaminated="train: other processes used 0.75 cores"), 1.0))
    found = _answer(full + lora, "Lowest latency")
    assert found.winner == "full" and "merged" not in found.note


# bench/report/front.py


def test_findings_keep_each_list_item_on_its_line_and_leave_indented_blocks_out():
    from bench.report.front import _paragraphs

    text = "Intro line\n1. first\n2) second\n- third\n\n    indented code\n\n\ttabbed\n\nEnd."
    assert _paragraphs(text) == ["Intro line\n1. first\n2) second\n- third", "End."]


def test_findings_come_from_the_nearest_file_below_the_results_root(tmp_path):
    """FINDINGS.md before a README.md in the same folder; the results root's own README is no set's findings."""
    from bench.report.front import findings_file

    root, folder = tmp_path / "results", tmp_path / "results" / "smoke" / "x86_64-2c-cpu"
    folder.mkdir(parents=True)
    (root / "README.md").write_text("# All results\n")
    assert findings_file(folder, root) is None
    (root / "smoke" / "README.md").write_text("# Smoke\n")
    (root / "smoke" / "FINDINGS.md").write_text("Question: which?\n")
    assert findings_file(folder, root) == root / "smoke" / "FINDINGS.md"


def test_a_comment_after_a_value_in_a_suite_file_is_leak_checked(tmp_path):
    from bench.report.front import suite_leaks

    path = tmp_path / "s.yaml"
    path.write_text("name: s  # copied from /home/alice/notes/s.yaml\nlr: 0.01\n")
    assert suite_leaks(path, hosts=[]) == [
        "suites/s.yaml: line 1 (a comment): absolute path '/home/alice/notes/s.yaml'"
    ]


def test_the_one_line_answer_says_noise_unknown_and_how_close_equal_looking_means_are():
    from dataclasses import replace

    from bench.report.aggregate import Answer
    from bench.report.front import _said

    said = Answer("Most accurate", "accuracy.cipher", "acc", True, "full", 0.7, "lora", 0.55, 0.15, 0.27, None)
    assert _said(said) == "Most accurate: full 0.7 vs lora 0.55 acc, noise unknown"
    close = replace(said, runner_up_mean=0.70001, margin=0.00001, beyond_noise=False)
    assert _said(close) == "Most accurate: full 0.7 vs lora 0.7 acc (margin 1.00e-05), within noise"
    tied = replace(said, runner_up_mean=0.7, margin=0.0, beyond_noise=False)
    assert _said(tied) == "Most accurate: full 0.7 vs lora 0.7 acc (tied), within noise"


def test_the_one_line_answer_compares_the_newest_spec_and_names_each_suite():
    """lora's runs of an older spec (another rate, 0.99 accuracy) are left out, as the report leaves them."""
    from bench.report.front import one_line_answer

    old = make_set(labels=("lora",), learning_rate=1e-3, values={"accuracy.cipher": 0.99})
    old = [r.model_copy(update={"started_at": "2026-11-22T17:00:00+00:00"}) for r in old]
    assert one_line_answer(make_set() + old) == "Most accurate: full 0.701 vs lora 0.555 acc, noise unknown"
    two = make_set() + [r.model_copy(update={"suite": "other"}) for r in make_set()]
    said = "Most accurate: full 0.701 vs lora 0.555 acc, noise unknown"
    assert one_line_answer(two) == f"other: {said}; smoke: {said}"


def _set_folder(tmp_path):
    root = tmp_path / "results"
    (root / "smoke").mkdir(parents=True)
    return root


def test_findings_question_design_and_how_many_paragraphs_are_shown(tmp_path):
    """A FINDINGS file: "question:" in any case, the design after the question kept as the first finding, four
    paragraphs; a README says more than findings: its title is the question and two paragraphs are shown."""
    from bench.report.front import summarize_set

    root = _set_folder(tmp_path)
    findings = root / "smoke" / "FINDINGS.txt"
    findings.write_text("question: does LoRA forget less? Two seeds each.\n\nP1\n\nP2\n\nP3\n\nP4\n\nP5\n")
    summary = summarize_set(root / "smoke", root, make_set())
    assert summary.question == "does LoRA forget less?"
    assert summary.findings == ["Two seeds each.", "P1", "P2", "P3"]
    assert summary.answer == "Most accurate: full 0.701 vs lora 0.555 acc, noise unknown"
    findings.unlink()
    (root / "smoke" / "README.md").write_text("# Title\n\nP1\n\nP2\n\nP3\n")
    summary = summarize_set(root / "smoke", root, make_set())
    assert (summary.question, summary.findings) == ("Title", ["P1", "P2"])


def test_a_suite_description_shown_as_the_question_is_leak_checked(tmp_path):
    from bench.report.front import front_leaks, summarize_set

    root = _set_folder(tmp_path)
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "smoke.yaml").write_text("description: Which forgets less, as /home/alice/plan.md asks?\n")
    summary = summarize_set(root / "smoke", root, make_set())
    assert summary.question == "Which forgets less, as /home/alice/plan.md asks?"
    assert front_leaks([summary], hosts=[]) == ["smoke.yaml (its description): absolute path '/home/alice/plan.md'"]


def _validation_experiment(root):
    import io
    import json
    import tarfile

    home = root / "validation" / "exp"
    home.mkdir(parents=True)
    (home / "README.md").write_text("# exp: planted A/A\n\nValidates that nothing is planted.\n")
    members = {
        "records/alice@example.org.txt": b"plain",
        "records/r.json": json.dumps({"/home/alice/data": 1}).encode(),
        "records/n.txt": b"see /home/bob/notes",
    }
    with tarfile.open(home / "records.tar.xz", "w:xz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return home / "records.tar.xz"


def test_a_validation_experiment_is_listed_and_its_archive_is_leak_checked_member_by_member(tmp_path):
    """Each member's name, a JSON member as a record (keys too), any other member as text."""
    from bench.report.front import archive_leaks, validation_experiments, validation_leaks

    root = _set_folder(tmp_path)
    archive = _validation_experiment(root)
    assert validation_experiments(root) == [("exp", "exp: planted A/A", "Validates that nothing is planted.", archive)]
    found = [
        "records/alice@example.org.txt (its name): user@host 'alice@example.org.txt'",
        "records/r.json: (a key): absolute path '/home/alice/data'",
        "records/n.txt: absolute path '/home/bob/notes'",
    ]
    assert archive_leaks(archive, hosts=[]) == found
    assert validation_leaks(root, hosts=[]) == [f"validation/exp/records.tar.xz: {what}" for what in found]


def test_sets_with_findings_lead_the_front_page(tmp_path):
    """ "a-plain" comes first by name, but "z-found" has findings: it leads."""
    from pathlib import Path

    from bench.report.front import Summary, sections

    plain = (Path("a-plain"), Summary("Q a?", "A a", []), "2 runs")
    found = (Path("z-found"), Summary("Q z?", "A z", ["What we found."]), "2 runs")
    page = sections([plain, found], tmp_path)
    assert page.index("z-found/report.html") < page.index("a-plain/report.html")
    assert "<p>What we found.</p>" in page


def test_a_git_ignored_validation_archive_is_not_listed(tmp_path):
    import subprocess

    root = _set_folder(tmp_path)
    _validation_experiment(root)
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / ".gitignore").write_text("*.tar.xz\n")
    from bench.report.front import validation_experiments

    assert validation_experiments(root) == [("exp", "exp: planted A/A", "Validates that nothing is planted.", None)]
