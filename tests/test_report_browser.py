"""The report in a real browser: Debian's headless chromium loads it with no console messages, the table and
every chart are in the DOM, and a screenshot is saved under test-artifacts/.

Install the browser with scripts/install-browser (CI does). Without chromium the test is skipped, saying so.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from bench.report.html import write_report
from tests.synthetic_records import make_record, make_set

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHART_IDS = ("accuracy-memory", "accuracy-throughput", "forgetting", "loss", "latency-ttft-ms")
# "[pid:tid:date:INFO:CONSOLE:line] "message", source: file:///..." is how chromium logs console output
CONSOLE = re.compile(r":CONSOLE(?::\d+)?\]\s*(.*)")

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: run scripts/install-browser")


def chromium(page: Path, profile: Path, *action: str) -> tuple[str, list[str]]:
    """Run headless chromium on a local file; returns stdout and every console message it logged."""
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={profile}",
        "--enable-logging=stderr", "--v=0", "--hide-scrollbars", *action, page.resolve().as_uri(),
    ]  # fmt: skip
    run = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout, [m.group(1) for m in map(CONSOLE.search, run.stderr.splitlines()) if m]


def test_console_messages_are_detected(tmp_path):
    """The detector itself: a page with a planted error and an invalid SVG attribute is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<!DOCTYPE html><html><body><svg width="9" height="9"><rect width="-5" height="3"/></svg>'
        '<script>console.error("planted console error")</script></body></html>'
    )
    _, messages = chromium(bad, tmp_path / "profile", "--dump-dom")
    assert any("planted console error" in m for m in messages), messages
    assert any("negative value" in m for m in messages), messages


def test_report_in_headless_chromium(tmp_path):
    records = [*make_set(), make_record("lora", 3, status="failed", reason="RuntimeError: planted out of memory")]
    page = write_report(records, tmp_path / "smoke.html", suite_text="name: smoke\n")

    dom, messages = chromium(page, tmp_path / "profile", "--dump-dom")
    assert messages == [], f"console messages in the report: {messages}"
    assert re.search(r'<table id="results-table"', dom)
    rows = re.search(r'<table id="results-table".*?<tbody>(.*?)</tbody>', dom, re.S).group(1)
    assert rows.count("<tr>") == 2  # one row per strategy
    for chart_id in CHART_IDS:
        svg = re.search(rf'<svg id="chart-{chart_id}"[^>]*>(.*?)</svg>', dom, re.S)
        assert svg, f"chart {chart_id} missing from the DOM"
        assert "No data" not in svg.group(1) and re.search(r"<(circle|polyline|rect)", svg.group(1))
    assert "planted out of memory" in dom

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    _, messages = chromium(page, tmp_path / "profile", f"--screenshot={shot}", "--window-size=1280,2400")
    assert messages == [], f"console messages in the report: {messages}"
    assert shot.exists() and shot.stat().st_size > 20_000
    shutil.copy(page, ARTIFACTS / "report.html")
    print(f"screenshot: {shot}")


def test_report_with_history_in_headless_chromium(tmp_path):
    """Twelve nights, the last five 25% slower: trend charts with points, whiskers and a change point."""
    from bench.analysis.history import build
    from bench.records.store import atomic_write_text

    store = tmp_path / "store"
    for night in range(12):
        scale = {"train.tokens_per_s": 0.75 if night >= 7 else 1.0}
        for record in make_set(scale=scale, noise=0.02):
            record.started_at = f"2026-11-{night + 10:02d}T03:17:00+00:00"
            record.environment.git_commit = f"{night:07x}abcdef"
            record.run_id = f"{record.run_id}-{night}"
            atomic_write_text(store / f"night-{night}" / f"{record.run_id}.json", record.model_dump_json())
    history = build(store)
    tonight = [r for r in make_set(scale={"train.tokens_per_s": 0.75})]
    page = write_report(tonight, tmp_path / "nightly.html", history=history)

    dom, messages = chromium(page, tmp_path / "profile", "--dump-dom")
    assert messages == [], f"console messages in the report: {messages}"
    section = re.search(r'<section id="history">(.*?)</section>', dom, re.S)
    assert section, "no history section"
    trend = re.search(r'<svg id="chart-trend-train-tokens-per-s[^"]*"[^>]*>(.*?)</svg>', section.group(1), re.S)
    assert trend and trend.group(1).count("<circle") == 24  # 12 nights x 2 strategies
    assert trend.group(1).count('class="change-point"') == 2  # both strategies, at night 8
    assert "commit 0000007ab" in trend.group(1)  # hover text names the night's commit


def test_memory_and_recommendation_sections_in_headless_chromium(tmp_path):
    """The committed H200 records: the stacked memory chart and the recommendation table render."""
    from bench.records.store import load_records

    records = list(load_records(Path(__file__).resolve().parents[1] / "results" / "smollm2-gpu-memory"))
    page = write_report(records, tmp_path / "gpu.html")
    dom, messages = chromium(page, tmp_path / "profile", "--dump-dom")
    assert messages == [], f"console messages in the report: {messages}"
    svg = re.search(r'<svg id="chart-memory-components"[^>]*>(.*?)</svg>', dom, re.S)
    assert svg and svg.group(1).count("<rect") >= 18
    assert re.search(r'<table class="metrics" id="recommend-table"', dom)
