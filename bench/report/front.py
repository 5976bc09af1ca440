"""The front page of a published site: the comparisons first, the validation experiments apart.

For each comparison (a result set outside results/validation/): its question, the report's one-line
answer (bench/report/aggregate.py) and the author's findings, from a FINDINGS.txt, FINDINGS.md or
README.md in the set's folder or a folder above it (within the results root), else the suite's
description. Sets with findings lead. Validation experiments (results/validation/<name>/, see its
README.md) are listed under their own heading with what each validates, its README and its archive.
Never imports torch.
"""

from __future__ import annotations

import html
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from bench.records.results import RunResult
    from bench.report.aggregate import Answer

FINDINGS = ("FINDINGS.md", "FINDINGS.txt", "README.md")
VALIDATION = "validation"


@dataclass
class Summary:
    question: str
    answer: str
    findings: list[str]  # paragraphs, plain text


def _href(*parts: str) -> str:
    return "/".join(quote(part) for part in parts)


LIST_ITEM = re.compile(r"\n[ \t]*(?=[-*] |\d+[.)] )")  # a line that starts a list item keeps its line break


def fold(block: str) -> str:
    """Whitespace folded to one space, except the line break before a list item ("- ", "* ", "1. ")."""
    items = LIST_ITEM.split(block)
    return "\n".join(folded for item in items if (folded := re.sub(r"\s+", " ", item).strip()))


def _paragraphs(text: str) -> list[str]:
    """Prose paragraphs, whitespace folded (list items keep their own line); markdown tables, code blocks
    and indented blocks left out."""
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    blocks = [block for block in re.split(r"\n\s*\n", text) if not re.match(r"\s*(\||    |\t)", block)]
    return [folded for block in blocks if (folded := fold(block))]


def _prose(text: str) -> str:
    """A paragraph as HTML: escaped, each list item on its own line."""
    return html.escape(text).replace("\n", "<br>")


def findings_file(folder: Path, root: Path) -> Path | None:
    """The nearest FINDINGS/README file from the set's folder up to (not including) the root."""
    for place in [folder, *folder.parents]:
        if place == root or root not in place.parents:
            return None
        for name in FINDINGS:
            if (place / name).is_file():
                return place / name
    return None


def _suite_description(suite: str, root: Path) -> str | None:
    path = root.resolve().parent / "suites" / f"{suite}.yaml"
    if not path.is_file():
        return None
    import yaml

    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return None
    return str(loaded.get("description") or "") or None if isinstance(loaded, dict) else None


def one_line_answer(records: list[RunResult]) -> str:
    """The report's first answer, in one line ("Most accurate: full 0.90 vs lora 0.88, within noise"), from
    the runs the report compares (bench.analysis.selection.comparable)."""
    from bench.analysis.selection import comparable
    from bench.report.aggregate import answers, by_suite

    ok = [record for record in comparable(records).records if record.status == "ok"]
    found = [(suite, answers(subset)) for suite, subset in by_suite(ok)] if ok else []
    said = [f"{suite}: " * bool(suite) + _said(listed[0]) for suite, listed in found if listed]
    return "; ".join(said) or "no strategy measured a compared metric"


def _said(first: Answer) -> str:
    """One answer in one line."""
    from bench.report.charts import fmt

    if first.runner_up is None:
        return f"{first.question}: {first.winner} ({first.note or 'alone'})"
    verdict = {True: "beyond noise", False: "within noise", None: "noise unknown"}[first.beyond_noise]
    winner, runner_up = fmt(first.winner_mean), fmt(first.runner_up_mean)  # as the report's answer table
    margin = ""
    if winner == runner_up and first.margin is not None:  # equal to 3 digits: say by how much, or that they tie
        margin = f" (margin {fmt(first.margin)})" if abs(first.margin) >= 1e-12 else " (tied)"
    return f"{first.question}: {first.winner} {winner} vs {first.runner_up} {runner_up} {first.unit}{margin}, {verdict}"


def summarize_set(folder: Path, root: Path, records: list[RunResult]) -> Summary:
    """Question, one-line answer and findings of one result set (folder: absolute)."""
    found = findings_file(folder, root)
    paragraphs = _paragraphs(found.read_text(encoding="utf-8", errors="replace")) if found else []
    question = ""
    if paragraphs and paragraphs[0].lower().startswith("question:"):
        asked, mark, rest = paragraphs.pop(0).split(":", 1)[1].strip().partition("?")
        question = re.sub(r"\s+", " ", asked + mark)
        paragraphs[:0] = [rest.strip()] if rest.strip() else []  # the design, told after the question
    elif paragraphs and paragraphs[0].startswith("#"):
        question = re.sub(r"\s+", " ", paragraphs.pop(0).lstrip("# "))
    suites = sorted({record.suite for record in records})
    question = question or _suite_description(suites[0], root) or f"What do the strategies of {suites[0]} trade?"
    keep = 2 if found is not None and found.name == "README.md" else 4  # a README says more than findings
    return Summary(question, one_line_answer(records), paragraphs[:keep])


def validation_experiments(root: Path) -> list[tuple[str, str, str, Path | None]]:
    """(name, title, what it validates, archive) for each results/validation/<name>/ with a README.md."""
    found = []
    for readme in sorted((root / VALIDATION).glob("*/README.md")):
        paragraphs = _paragraphs(readme.read_text(encoding="utf-8", errors="replace"))
        title = paragraphs[0].lstrip("# ") if paragraphs else readme.parent.name
        what = paragraphs[1] if len(paragraphs) > 1 else ""
        archive = readme.parent / "records.tar.xz"
        found.append((readme.parent.name, title, what, archive if archive.is_file() else None))
    return found


def copy_validation(root: Path, out: Path) -> None:
    """Each experiment's README (as a page), summary and archive into the site."""
    for name, title, _, archive in validation_experiments(root):
        home, target = root / VALIDATION / name, out / VALIDATION / name
        target.mkdir(parents=True, exist_ok=True)
        for text in sorted(home.glob("*.md")):
            body = (
                f'<nav><a href="../../index.html#validation">All results</a></nav>\n<h1>{html.escape(title)}</h1>\n'
                f'<pre style="white-space: pre-wrap">{html.escape(text.read_text(encoding="utf-8"))}</pre>'
            )
            page = (
                '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<title>{html.escape(name)}: {html.escape(text.stem)}</title>\n</head>\n"
                f"<body>\n{body}\n</body>\n</html>\n"
            )
            (target / f"{text.stem}.html").write_text(page, encoding="utf-8")
        if archive is not None:
            shutil.copyfile(archive, target / archive.name)
        for path in target.rglob("*"):
            path.chmod(0o755 if path.is_dir() else 0o644)


def sections(comparisons: list[tuple[Path, Summary, str]], root: Path) -> str:
    """HTML: "Comparisons" (findings first), then "Validation experiments"."""
    parts = ["<h2>Comparisons</h2>"]
    ordered = sorted(comparisons, key=lambda item: (not item[1].findings, item[0].parts))
    for folder, summary, meta in ordered:
        link = _href(*folder.parts, "report.html")
        findings = "".join(f"<p>{_prose(p)}</p>" for p in summary.findings)
        parts.append(
            f'<section class="set"><h3><a href="{link}">{html.escape("/".join(folder.parts))}</a></h3>'
            f"<p><b>Question:</b> {html.escape(summary.question)}</p>"
            f"<p><b>Answer:</b> {html.escape(summary.answer)}</p>"
            f'{findings}<p class="muted">{meta} · <a href="{link}">report</a> · '
            f'<a href="{_href(*folder.parts, "records.html")}">records</a></p></section>'
        )
    experiments = validation_experiments(root)
    if experiments:
        parts.append(
            '<h2 id="validation">Validation experiments</h2><p>Experiments that check the harness itself '
            "(false alarms, detection power, change points), not a fine-tuning question; records in one archive "
            "each, readable by <code>bench report</code>, <code>compare</code> and <code>history</code>.</p><ul>"
        )
        for name, title, what, archive in experiments:
            links = f'<a href="{_href(VALIDATION, name, "README.html")}">README</a>'
            if archive is not None:
                size = f"{archive.stat().st_size / 1e6:.1f} MB"
                links += f' · <a href="{_href(VALIDATION, name, archive.name)}">records ({size})</a>'
            parts.append(f"<li><b>{html.escape(title)}</b> ({links})<br>{_prose(what)}</li>")
        parts.append("</ul>")
    return "\n".join(parts)
