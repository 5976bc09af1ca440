"""The report's and the site's HTML escaping holds (issue 26 item 9): records whose labels, strategy
and task names, failure reasons, machine and notes carry `<script>` and `onerror=` payloads render
as text; headless Chromium runs the pages and nothing executes (a payload that ran would log to the
console, which the detector in test_report_browser.py is shown to catch)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.records.results import RunResult
from bench.records.store import ResultStore
from bench.report.html import write_report
from bench.report.publish import publish
from tests.synthetic_records import TASK, make_record
from tests.test_report_browser import CHROMIUM, chromium

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed: run scripts/install-browser")


def payloads(where: str) -> str:
    return (
        f"<script>console.error('XSS-{where}-script')</script>"
        f"<img src=x onerror=\"console.error('XSS-{where}-onerror')\">"
        f"\"><svg onload=console.error('XSS-{where}-svg')>"
    )


def hostile(label: str, seed: int, status: str = "ok") -> RunResult:
    """A record with a payload in its label, strategy, task name, reason and machine."""
    base = make_record(label, seed, status=status, reason=payloads("reason") if status == "failed" else None)
    task = f"cipher{payloads('task')}"
    metrics = {name.replace(TASK, task): metric for name, metric in base.metrics.items()}
    spec = {**base.spec, "task": {**base.spec["task"], "name": task}}
    environment = base.environment.model_copy(update={"machine": f"m{payloads('machine')}"})
    return base.model_copy(
        update={
            "label": f"{label}{payloads('label')}",
            "strategy": f"{label}{payloads('strategy')}",
            "metrics": metrics,
            "spec": spec,
            "environment": environment,
        }
    )


def _assert_inert(page: Path, profile: Path) -> str:
    dom, messages = chromium(page, profile, "--dump-dom")
    assert not [m for m in messages if "XSS" in m], f"a payload executed in {page.name}: {messages}"
    assert "XSS-label-script" in dom  # the payload is on the page, as text
    return dom


def test_payloads_in_records_and_notes_never_execute_in_the_report(tmp_path):
    records = [hostile(label, seed) for label in ("full", "lora") for seed in (0, 1)]
    records.append(hostile("lora", 2, status="failed"))
    page = write_report(records, tmp_path / "report.html", notes=f"# Findings\n\n{payloads('notes')}\n")
    dom = _assert_inert(page, tmp_path / "profile")
    assert "XSS-notes-script" in dom and "XSS-reason-onerror" in dom and "XSS-task-svg" in dom


def test_payloads_never_execute_on_the_published_site(tmp_path):
    root = tmp_path / "results"
    for label in ("full", "lora"):
        for seed in (0, 1):
            record = hostile(label, seed)
            ResultStore(root).write(record.model_copy(update={"environment": make_record(label, seed).environment}))
    (root / "smoke" / "FINDINGS.txt").write_text(f"Question: {payloads('question')}?\n\n{payloads('findings')}\n")
    index = publish(root, tmp_path / "site")
    dom = _assert_inert(index, tmp_path / "profile")
    assert "XSS-findings-onerror" in dom and "XSS-question-script" in dom
    for page in ("report.html", "records.html"):
        _assert_inert(next((tmp_path / "site").rglob(page)), tmp_path / "profile")
