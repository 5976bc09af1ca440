"""The front page of a published site: the comparisons first, the validation experiments apart.

For each comparison (a result set outside results/validation/): its question, the report's one-line
answer (bench/report/aggregate.py) and the author's findings, from a FINDINGS.txt, FINDINGS.md or
README.md in the set's folder or a folder above it (within the results root), else the suite's
description. Sets with findings lead. Validation experiments (results/validation/<name>/, see its
README.md) are listed under their own heading with what each validates, its README and its archive.
Nothing git-ignored is listed or copied. Every text an author wrote that reaches the site (findings, a suite's
description, a set's suite file, a validation page) and every file in a validation archive is read by the same
leak check as records (`front_leaks`, `suite_leaks`, `validation_leaks`): `bench publish` refuses, naming the
file, rather than rewrite an author's notes. Never imports torch.
"""

from __future__ import annotations

import html
import json
import lzma
import re
import shutil
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote

from bench.records.leaks import leaks, text_leaks

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
    sources: list[tuple[str, str]] = field(default_factory=list)  # (file it came from, text) for each text shown


def git_ignored(root: Path, paths: list[Path]) -> set[Path]:
    """The paths git ignores, where `root` is in a git work tree (none otherwise)."""
    if not paths:
        return set()
    try:
        found = subprocess.run(
            ["git", "-C", str(root), "check-ignore", "--stdin", "-z"],
            input="\0".join(str(path.resolve()) for path in paths) + "\0",
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.SubprocessError):
        return set()
    if found.returncode not in (0, 1):  # 128: not a git repository
        return set()
    names = {name for name in found.stdout.split("\0") if name}
    return {path for path in paths if str(path.resolve()) in names}


def shared(root: Path, paths: list[Path]) -> list[Path]:
    """The paths git does not ignore (all of them outside a git work tree), in their order."""
    ignored = git_ignored(root, paths)
    return [path for path in paths if path not in ignored]


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


def _suite_file(suite: str, root: Path) -> Path:
    return root.resolve().parent / "suites" / f"{suite}.yaml"


def suite_file(suite: str, root: Path) -> Path | None:
    """suites/<suite>.yaml beside the results root (as `bench report` finds it), where it exists and git does
    not ignore it: the file `bench publish` ships beside the set's records."""
    path = _suite_file(suite, root)
    return path if path.is_file() and not git_ignored(root, [path]) else None


def _comment(line: str) -> str:
    """The YAML comment on a line (`# ...` alone, or after a value and a space), else ''."""
    stripped = line.lstrip()
    return stripped if stripped.startswith("#") else line.partition(" #")[2]


def suite_leaks(path: Path, hosts: list[str] | None = None) -> list[str]:
    """`suites/<name>.yaml: field: what` for each value (and key) that would leak, and `line N (a comment)`
    for each comment that would; a file that is not YAML is read line by line. The check records get."""
    import yaml

    text, where = path.read_text(encoding="utf-8", errors="replace"), f"suites/{path.name}"
    try:
        loaded, lines = yaml.safe_load(text), [(n, _comment(line)) for n, line in enumerate(text.splitlines(), 1)]
        found = [f"{where}: {field or '(the document)'}: {what}" for field, what in leaks(loaded, hosts)]
        label = " (a comment)"
    except yaml.YAMLError:
        found, lines, label = [], list(enumerate(text.splitlines(), 1)), ""
    return found + [f"{where}: line {n}{label}: {what}" for n, line in lines for what in text_leaks(line, hosts)]


def _suite_description(suite: str, root: Path) -> str | None:
    path = _suite_file(suite, root)
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
    from bench.report.scales import fmt

    if first.runner_up is None:
        return f"{first.question}: {first.winner} ({first.note or 'alone'})"
    verdict = {True: "beyond noise", False: "within noise", None: "noise unknown"}[first.beyond_noise]
    winner, runner_up = fmt(first.winner_mean), fmt(first.runner_up_mean)  # as the report's answer table
    margin = ""
    if winner == runner_up and first.margin is not None:  # equal to 3 digits: say by how much, or that they tie
        margin = f" (margin {fmt(first.margin)})" if abs(first.margin) >= 1e-12 else " (tied)"
    return f"{first.question}: {first.winner} {winner} vs {first.runner_up} {runner_up} {first.unit}{margin}, {verdict}"


def summarize_set(folder: Path, root: Path, records: list[RunResult]) -> Summary:
    """Question, one-line answer and findings of one result set (folder: absolute), with the file each
    text came from (`sources`, for the leak check)."""
    found = findings_file(folder, root)
    paragraphs = _paragraphs(found.read_text(encoding="utf-8", errors="replace")) if found else []
    question = ""
    if paragraphs and paragraphs[0].lower().startswith("question:"):
        asked, mark, rest = paragraphs.pop(0).split(":", 1)[1].strip().partition("?")
        question = re.sub(r"\s+", " ", asked + mark)
        paragraphs[:0] = [rest.strip()] if rest.strip() else []  # the design, told after the question
    elif paragraphs and paragraphs[0].startswith("#"):
        question = re.sub(r"\s+", " ", paragraphs.pop(0).lstrip("# "))
    keep = 2 if found is not None and found.name == "README.md" else 4  # a README says more than findings
    where = found.relative_to(root).as_posix() if found is not None else ""
    sources = [(where, text) for text in [question, *paragraphs[:keep]] if text]
    suites = sorted({record.suite for record in records})
    if not question:
        question = _suite_description(suites[0], root) or ""
        sources += [(f"{_suite_file(suites[0], root).name} (its description)", question)] if question else []
    question = question or f"What do the strategies of {suites[0]} trade?"
    return Summary(question, one_line_answer(records), paragraphs[:keep], sources)


def front_leaks(summaries: list[Summary], hosts: list[str] | None = None) -> list[str]:
    """`file: what` for each text of the front page that would leak (the same check as records')."""
    return [f"{where}: {what}" for one in summaries for where, text in one.sources for what in text_leaks(text, hosts)]


def validation_experiments(root: Path) -> list[tuple[str, str, str, Path | None]]:
    """(name, title, what it validates, archive) for each results/validation/<name>/ with a README.md that
    git does not ignore (its archive too)."""
    found = []
    readmes = shared(root, sorted((root / VALIDATION).glob("*/README.md")))
    archives = set(shared(root, [readme.parent / "records.tar.xz" for readme in readmes]))
    for readme in readmes:
        paragraphs = _paragraphs(readme.read_text(encoding="utf-8", errors="replace"))
        title = paragraphs[0].lstrip("# ") if paragraphs else readme.parent.name
        what = paragraphs[1] if len(paragraphs) > 1 else ""
        archive = readme.parent / "records.tar.xz"
        found.append((readme.parent.name, title, what, archive if archive in archives and archive.is_file() else None))
    return found


def _pages(root: Path, name: str) -> list[Path]:
    """The markdown pages of one experiment that the site shows (each one, less what git ignores)."""
    return shared(root, sorted((root / VALIDATION / name).glob("*.md")))


def archive_leaks(archive: Path, hosts: list[str] | None = None) -> list[str]:
    """`member: field: what` for each file in an archive that would leak: a JSON file is read as a record
    is (every string, keys too), any other file as text; an archive that cannot be read cannot be checked."""
    found = []
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                found += [f"{member.name} (its name): {what}" for what in text_leaks(member.name, hosts)]
                data = tar.extractfile(member).read() if member.isfile() else None
                if data is None:
                    continue
                try:
                    raw = json.loads(data) if member.name.endswith(".json") else None
                except ValueError:
                    raw = None
                if raw is not None:
                    found += [f"{member.name}: {where}: {what}" for where, what in leaks(raw, hosts)]
                else:
                    text = data.decode("utf-8", errors="replace")
                    found += [f"{member.name}: {what}" for what in text_leaks(text, hosts)]
    except (OSError, EOFError, tarfile.TarError, lzma.LZMAError) as error:
        return [f"cannot be read to check it ({error})"]
    return found


def validation_leaks(root: Path, hosts: list[str] | None = None) -> list[str]:
    """`file: what` for each validation page or archive member the site would copy that would leak."""
    found = []
    for name, _, _, archive in validation_experiments(root):
        for page in _pages(root, name):
            where = page.relative_to(root).as_posix()
            found += [
                f"{where}: {what}" for what in text_leaks(page.read_text(encoding="utf-8", errors="replace"), hosts)
            ]
        if archive is not None:
            found += [f"{archive.relative_to(root).as_posix()}: {what}" for what in archive_leaks(archive, hosts)]
    return found


def copy_validation(root: Path, out: Path) -> None:
    """Each experiment's pages (README and summaries, as HTML) and archive into the site; nothing git-ignored.
    `bench publish` checks them first (validation_leaks)."""
    for name, title, _, archive in validation_experiments(root):
        target = out / VALIDATION / name
        target.mkdir(parents=True, exist_ok=True)
        for text in _pages(root, name):
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
