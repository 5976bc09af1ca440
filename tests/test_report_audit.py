"""Reader-facing faults of the report and the site, found in an audit (2026-12-06): each test failed
before its fix. Chart colours and contrast, legends, axes, the findings' list items, the front page's
answer line, the validation pages, and the layout in a narrow window and in print (headless chromium,
skipped without it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from bench.report import charts, colors
from bench.report.html import TEMPLATES, write_report
from tests.synthetic_records import make_record, make_set
from tests.test_report_browser import CHROMIUM, chromium


def contrast(color: str, background: str = "#ffffff") -> float:
    """WCAG 2 contrast ratio of two #rrggbb colours, written here apart from colors.contrast."""

    def luminance(value: str) -> float:
        channels = [int(value[i : i + 2], 16) / 255 for i in (1, 3, 5)]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    high, low = sorted((luminance(color), luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


needs_browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: run scripts/install-browser")


def test_every_strategy_gets_its_own_colour_with_contrast_on_white():
    """Eleven strategies (results/strategies) drew qlora in adapter's colour and vera in bitfit's; orange,
    pink and cyan points were under 3:1 against the white plot."""
    palette = colors.colors([f"strategy-{i}" for i in range(30)])
    assert len(set(palette.values())) == 30
    for name, color in palette.items():
        assert re.fullmatch(r"#[0-9a-f]{6}", color), (name, color)
        assert contrast(color) >= 3.0, (name, color, contrast(color))


def test_bar_legend_lists_only_the_series_drawn():
    """latency.merged.* is measured by merging strategies only: full had no bar but a legend entry."""
    svg = charts.bars("b", "t", ["p50", "p90"], {"full": [None, None], "lora": [1.0, 2.0]}, "ms", {"full": "#111111"})
    assert ">lora</text>" in svg and ">full</text>" not in svg


def test_loss_axis_does_not_go_below_zero():
    """A loss that ends near 0 drew its axis from -2."""
    svg = charts.lines("loss", "t", {"a": [(1, 7.2), (30, 1.0), (60, 0.1)]}, "step", "loss", {})
    y_ticks = [float(t) for t in re.findall(r'text-anchor="end" class="tick">([^<]+)</text>', svg)]
    assert y_ticks and min(y_ticks) == 0, y_ticks


def _text_colors(css: str) -> dict[str, str]:
    found = {}
    for selector, body in re.findall(r"([^{}]+)\{([^{}]*)\}", css):
        for color in re.findall(r"(?<![-\w])color:\s*(#[0-9a-fA-F]{3,6})", body):
            full = color if len(color) == 7 else "#" + "".join(c * 2 for c in color[1:])
            found[selector.strip()] = full.lower()
    return found


def test_text_colours_reach_aa_contrast():
    """Muted text (#777: units under the column names, notes, the site's fingerprints) was under 4.5:1 on
    the table headers' #f5f5f5 and on white."""
    from bench.report.publish import STYLE

    css = re.search(r"<style>(.*?)</style>", (TEMPLATES / "report.html.j2").read_text(), re.S).group(1)
    for selector, color in {**_text_colors(css), **_text_colors(STYLE)}.items():
        for background in ("#ffffff", "#f5f5f5"):
            assert contrast(color, background) >= 4.5, (selector, color, background)


NOTES = "Question: does it work?\n\nForgetting, per strategy:\n- full +2.4\n- lora +1.7\nthe rest."


def test_findings_keep_their_list_items_on_their_own_lines(tmp_path):
    """The findings' "- item" lines ran together into one paragraph, in the report and on the index."""
    text = write_report(make_set(seeds=(0, 1)), tmp_path / "r.html", notes=NOTES).read_text()
    findings = re.search(r'<section id="findings">(.*?)</section>', text, re.S).group(1)
    assert "per strategy:\n- full +2.4\n- lora +1.7 the rest." in findings
    assert re.search(r"#findings p \{[^}]*white-space: pre-line", text)

    from bench.report.front import Summary, sections

    html = sections([(Path("s/m"), Summary("q?", "a", ["Forgetting:\n- full +2.4\n- lora <1"]), "")], tmp_path)
    assert "<p>Forgetting:<br>- full +2.4<br>- lora &lt;1</p>" in html


def test_front_page_answer_reads_as_the_report_does(monkeypatch):
    """The index wrote 12,500 tokens/s as 1.25e+04 (the report: 12.5k), and two values equal to 3 digits
    as "full 0.903 vs ia3 0.903" with no margin, which reads as a tie the winner did not have."""
    from bench.report import aggregate, front

    found = [
        aggregate.Answer("Fastest to train", "train.tokens_per_s", "tokens/s", True, "full", 12500.0, "lora", 9826.0,
                         2674.0, 0.27, True),
    ]  # fmt: skip
    monkeypatch.setattr(aggregate, "answers", lambda records: found)
    runs = make_set(seeds=(0,))
    assert front.one_line_answer(runs) == "Fastest to train: full 12.5k vs lora 9,826 tokens/s, beyond noise"
    found[0] = aggregate.Answer("Most accurate", "accuracy.x", "acc", True, "full", 0.9034, "ia3", 0.9031, 0.0003)
    assert front.one_line_answer(runs) == "Most accurate: full 0.903 vs ia3 0.903 acc (margin 0.0003), noise unknown"
    found[0] = aggregate.Answer("Most accurate", "accuracy.x", "acc", True, "full", 0.9, "ia3", 0.9, 0.0)
    assert front.one_line_answer(runs) == "Most accurate: full 0.9 vs ia3 0.9 acc (tied), noise unknown"


def test_validation_pages_are_html_documents_with_a_way_back(tmp_path):
    """results/validation/*/README.html had no <html lang>, no <body> and no link to the index."""
    from bench.report.front import copy_validation

    home = tmp_path / "results" / "validation" / "aa"
    home.mkdir(parents=True)
    (home / "README.md").write_text("# A/A\n\nValidates <nothing> & more.\n")
    copy_validation(tmp_path / "results", tmp_path / "site")
    page = (tmp_path / "site" / "validation" / "aa" / "README.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and '<html lang="en">' in page and "<body>" in page
    assert '<a href="../../index.html#validation">' in page and "&lt;nothing&gt; &amp; more" in page


def test_answer_margin_percent_is_not_rounded_up_to_twice_its_value():
    """A margin of 0.52% of the runner-up showed as "(1%)" (smollm2-forgetting-sized, most accurate)."""
    from bench.report import aggregate
    from bench.report.html import context, template

    base = context(make_set(seeds=(0, 1)))
    one = aggregate.Answer(
        "Lowest latency", "latency.ttft_ms.p50", "ms", False, "full", 0.8814, "ia3", 0.886, 0.0046, 0.0052
    )
    two = aggregate.Answer("Fastest", "train.tokens_per_s", "tokens/s", True, "a", 12511, "b", 9826, 2685, 0.273)
    three = aggregate.Answer("Most accurate", "accuracy.x", "acc", True, "full", 0.886, "ia3", 0.8814, 0.0046, 0.0052)
    text = template().render(**{**base, "answers": [one, two, three]})
    assert "0.0046 (0.52%)" in text and "2,685 (27%)" in text
    assert "0.5 points" in text  # accuracy: in points (test_accuracy_margins_are_in_points_never_a_share_of_the_value)


def _measure(page: Path, tmp_path: Path, width: int, script: str, css: str = "") -> dict:
    """Open a copy of the page with `script` appended (it sets document.title to JSON) at `width` px."""
    probe = tmp_path / f"probe-{width}.html"
    text = page.read_text().replace("</style>", css + "</style>", 1)
    probe.write_text(text.replace("</body>", f"<script>{script}</script></body>"))
    dom, messages = chromium(probe, tmp_path / "profile", "--dump-dom", f"--window-size={width},900")
    assert messages == [], messages
    return json.loads(re.search(r"<title>(.*?)</title>", dom, re.S).group(1).replace("&quot;", '"'))


MEASURE = """
const e = document.documentElement, answers = document.querySelector('#answers tr:nth-child(2)');
document.title = JSON.stringify({page: e.scrollWidth, view: e.clientWidth,
  charts: Math.max(...[...document.querySelectorAll('svg.chart')].map(s => s.getBoundingClientRect().right)),
  answer_row: answers.getBoundingClientRect().height,
  clipped: [...document.querySelectorAll('.scroll, .wide')].filter(d => d.scrollWidth > d.clientWidth + 1).length});
"""


@needs_browser
def test_report_fits_a_phone_width_window(tmp_path):
    """At 400 px the answer table pushed the page sideways with rows ~400 px tall, and every chart
    (a fixed 560 px) ran off the right edge."""
    page = write_report(make_set(), tmp_path / "r.html")
    found = _measure(page, tmp_path, 400, MEASURE)
    assert found["page"] <= found["view"], found
    assert found["charts"] <= found["view"], found
    assert found["answer_row"] < 250, found


@needs_browser
def test_print_shows_the_whole_results_table(tmp_path):
    """Printed, the results table's scroll box clipped every column past the page's width (a PDF does
    not scroll). The print rules are applied as screen rules at an A4 page's width (about 720 px)."""
    page = write_report(make_set(), tmp_path / "r.html")
    css = re.search(r"@media print \{(.*)\}\s*</style>", page.read_text(), re.S)
    assert css, "no print rules"
    found = _measure(page, tmp_path, 720, MEASURE, css.group(1))
    assert found["clipped"] == 0, found


def test_the_html_report_says_which_training_rows_were_cut_at_seq_len(tmp_path):
    """The terminal said so and the record kept it, but the HTML report never did (4 of 8 rows dropped, unsaid)."""
    cut = {"seq_len": 16, "rows": 8, "truncated": 8, "dropped": 4, "longest": 45}
    runs = [make_record("lora", seed) for seed in (0, 1)] + [make_record("full", 0)]
    runs = [r.model_copy(update={"budget": {**r.budget, "truncation": cut}}) if r.label == "lora" else r for r in runs]
    page = write_report(runs, tmp_path / "report.html").read_text()
    said = re.search(r'<ul class="warning" id="truncated-rows">(.*?)</ul>', page, re.S).group(1)
    assert "lora: 8 of 8 training rows longer than seq_len 16 (the longest 45 tokens) were truncated" in said
    assert "4 dropped" in said and "full" not in said
    clean = write_report([make_record("full", 0)], tmp_path / "clean.html").read_text()
    assert 'id="truncated-rows"' not in clean


def test_accuracy_margins_are_in_points_never_a_share_of_the_value(tmp_path):
    """audit user19: "0.0417 (14%)" for 4.2 points of accuracy (docs/statistics.md: accuracy is compared in points)."""
    runs = make_set(labels=("full", "lora"))
    page = write_report(runs, tmp_path / "report.html").read_text()
    answers = re.search(r'<table class="answers" id="answers">(.*?)</table>', page, re.S).group(1)
    accurate = next(row for row in answers.split("<tr>") if "Most accurate" in row)
    cells = re.findall(r'<td class="num">(.*?)</td>', accurate, re.S)
    margins = [cell for cell in cells if "points" in cell]
    assert len(margins) == 1 and re.fullmatch(r"\d+\.\d points", margins[0].strip()), cells
    assert "%" not in margins[0]
    fastest = next(row for row in answers.split("<tr>") if "Fastest to train" in row)
    assert "points" not in fastest and "%)" in fastest  # a throughput margin keeps its share


def test_a_cell_over_fewer_runs_says_how_many_were_measured_and_why_not_the_others(tmp_path):
    """audit user19: hover text "1 of 2 runs: left out: timing contaminated ...; nan" (the runs kept read as left
    out, and pandas' NaN of the runs with no reason joined as text)."""
    runs = [make_record("full", 0), make_record("full", 1, contaminated="planted neighbour"), make_record("lora", 0)]
    page = write_report(runs, tmp_path / "report.html").read_text()
    hovers = re.findall(r'title="(1 of 2 runs[^"]*)"', page)
    assert hovers and all(
        h.startswith("1 of 2 runs measured; the others: left out: timing contaminated") for h in hovers
    )
    assert "nan" not in " ".join(hovers)


def test_charts_of_timing_left_out_as_contaminated_say_so_not_nothing_measured(tmp_path):
    """audit user19: smollm2-instruct-pc's latency charts said "nothing measured" and its throughput chart "no
    strategy has both metrics", where every run's timing was measured and left out as contaminated."""
    from bench.report.html import context

    runs = [make_record(label, seed, contaminated="planted neighbour") for label in ("full", "lora") for seed in (0, 1)]
    notes = context(runs)["chart_notes"]
    said = "every run's timing was left out as contaminated (see Timing quality)"
    assert any(note.startswith("No chart of accuracy.") and said in note for note in notes), notes
    assert any(note.startswith("No chart of latency.") and said in note for note in notes), notes
    clean = context([make_record(label, seed) for label in ("full", "lora") for seed in (0, 1)])
    assert not any(said in note for note in clean["chart_notes"])


def test_the_table_legend_says_whom_a_forgetting_column_does_not_star(tmp_path):
    """audit user19: forgetting.gsm8k starred 0 while prompt had 0.125 in the same column, the legend saying only
    "the best value per column"."""
    learned = make_set(labels=("full",))
    flat = [make_record("lora", seed, values={"accuracy.cipher": 0.05, "gain.cipher": 0.0}) for seed in (0, 1, 2)]
    page = write_report(learned + flat, tmp_path / "report.html").read_text()
    legend = re.search(r"<h2>All metrics</h2>\s*<p class=\"meta\">(.*?)</p>", page, re.S).group(1)
    assert "a forgetting column stars none of lora,\n  which did not learn the task" in legend
    assert "stars none" not in write_report(learned, tmp_path / "clean.html").read_text()
