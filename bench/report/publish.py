"""`bench publish RESULTS --out SITE`: a static site of every result set below a results folder.

The site opens offline (file://, relative links, no scripts, no network) and on GitHub Pages:
index.html lists each result set (suite, machine, run counts, dates, commits) with its HTML report,
a page of its records as JSON files and one zip of them. A result set is the folder named after its
records' machine (results/<suite>/<machine>/) or hardware fingerprint (a history store's
<suite>/<fingerprint>/<night>/); when it holds several nights, its report shows the newest night with
the History section of all of them, as scripts/nightly renders it. A packed set
(<set>/records.tar.xz) is published as the folder it unpacks to (packed_records). JSON that is not a record
(summaries, comparisons, pytest-benchmark output) and logs are left out; a set's suite file
(suites/<suite>.yaml beside the results root) is copied beside its records, its data files never are (they
may be private: the records name each one's sha256). Nothing leaves that would leak:
records are scrubbed (bench/records/portable.py) and then checked, and so is every text an author wrote that
the site shows (findings, a suite's file and description, validation pages) and every file of a validation archive;
anything left that names a path, a host, a person or a secret stops the build (LeakError: `bench publish`
exits 2 naming the file and field), nothing written. Never imports torch.
"""

from __future__ import annotations

import html
import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from bench.records.archives import SUFFIXES
from bench.records.leaks import leaks
from bench.records.portable import machine_hosts, scrub, scrub_text
from bench.records.results import RunResult
from bench.records.store import atomic_write_text, scan_packed, scan_records
from bench.report.front import (
    VALIDATION,
    Summary,
    copy_validation,
    front_leaks,
    git_ignored,
    sections,
    suite_file,
    suite_leaks,
    summarize_set,
    validation_leaks,
)

STATUSES = ("ok", "failed", "skipped")
GENERATOR = '<meta name="generator" content="bench publish">'  # marks a folder this command may replace
STYLE = """body { font: 14px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 1400px; padding: 16px 24px; }
table { border-collapse: collapse; font-size: 13px; } th { background: #f5f5f5; }
th, td { padding: 4px 8px; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
td { white-space: nowrap; }
.muted { color: #666; } .failed { color: #b42318; } .skipped { color: #875a00; } code { font-size: 12px; }"""


@dataclass
class ResultSet:
    folder: Path  # relative to the results root; the site keeps the same path
    nights: dict[Path, list[tuple[Path, RunResult]]]  # record folder (relative to `folder`) -> its records
    suite_files: dict[str, Path] = field(default_factory=dict)  # suite -> its YAML, shipped (find_suite_files)

    @property
    def runs(self) -> list[tuple[Path, RunResult]]:
        return [run for night in sorted(self.nights) for run in self.nights[night]]

    @property
    def records(self) -> list[RunResult]:
        return [record for _, record in self.runs]

    def find_suite_files(self, root: Path) -> list[Path]:
        """Look up the YAML of each suite of the set that has one (front.suite_file); returns them."""
        found = {suite: suite_file(suite, root) for suite in sorted({r.suite for r in self.records})}
        self.suite_files = {suite: path for suite, path in found.items() if path is not None}
        return list(self.suite_files.values())

    def names(self, field: str) -> str:
        values = {r.suite if field == "suite" else r.environment.machine for r in self.records}
        return " + ".join(sorted(values))


class LeakError(ValueError):
    """Records that still hold an absolute path, a host name, a credential... after the scrub, or an author's
    text (findings, a suite's description, a validation page or archive) that holds one; nothing was published."""


def _portable(record: RunResult, root: Path) -> RunResult:
    """The record as the site shows it: scrubbed as a schema 7 record is, never with a host name."""
    return RunResult.model_validate(scrub(record.model_dump(mode="json"), results_root=root))


def check_leaks(sets: list[ResultSet], root: Path) -> list[str]:
    """`file: field: what` for everything absolute or host-like left in the records to publish."""
    return [
        f"{path.relative_to(root)}: {field}: {what}"
        for one in sets
        for path, record in one.runs
        for field, what in leaks(record.model_dump(mode="json"))
    ]


def capped(problems: list[str], per_file: int = 10) -> list[str]:
    """The first `per_file` problems of each file (`file: ...`), then how many more it has."""
    shown: list[str] = []
    counts: dict[str, int] = {}
    for line in problems:
        name = line.split(": ", 1)[0]
        counts[name] = counts.get(name, 0) + 1
        if counts[name] <= per_file:
            shown.append(line)
    return shown + [f"{name}: … and {count - per_file} more" for name, count in counts.items() if count > per_file]


def find_sets(root: Path, skip: Path | None = None) -> list[ResultSet]:
    """Every result set below `root`, in a stable order (suite, machine, folder)."""
    folders: dict[Path, list[tuple[Path, RunResult]]] = {}
    found = list(scan_records(root))  # other JSON is told on stderr with its reason, never fatal
    ignored = git_ignored(root, [path for path, _ in found])
    loose = {path for path, _ in found}
    packed = [(path, record) for path, record in packed_records(root, skip) if path not in loose]
    for path, record in [*found, *packed]:
        if skip is not None and skip in path.resolve().parents:
            continue  # an earlier site inside the results root
        if path in ignored:
            continue  # local, git-ignored results (results/local, unpacked archives) stay local
        folders.setdefault(path.parent.relative_to(root), []).append((path, _portable(record, root)))
    sets: dict[Path, ResultSet] = {}
    for folder, runs in folders.items():
        names = {r.environment.machine for _, r in runs} | {r.environment.fingerprint for _, r in runs}
        home = next(
            (Path(*folder.parts[:i]) for i in range(len(folder.parts), 0, -1) if folder.parts[i - 1] in names), folder
        )
        sets.setdefault(home, ResultSet(home, {})).nights[folder.relative_to(home)] = runs
    return sorted(sets.values(), key=lambda s: (s.names("suite"), s.names("machine"), s.folder.parts))


def packed_records(root: Path, skip: Path | None = None) -> list[tuple[Path, RunResult]]:
    """The records of each packed result set (a committed `<set>/records.tar.xz` outside validation/,
    bench/records/archives.py), each at the path it has once unpacked (results.scan_packed). Validation
    archives are experiments: the index lists them apart (front.validation_experiments), never as result sets."""
    archives = [
        path
        for suffix in SUFFIXES
        for path in sorted(root.rglob(f"*{suffix}"))
        if path.is_file()
        and path.relative_to(root).parts[:1] != (VALIDATION,)
        and not (skip is not None and skip in path.resolve().parents)
    ]
    ignored = git_ignored(root, archives)
    return [found for archive in archives if archive not in ignored for found in scan_packed(archive)]


def _href(*parts: str) -> str:
    return html.escape("/".join(quote(p) for p in parts))


def _page(title: str, body: str) -> str:
    return (
        f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n{GENERATOR}\n'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">\n<title>{html.escape(title)}</title>\n'
        f"<style>\n{STYLE}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def _write(path: Path, text: str) -> None:
    atomic_write_text(path, text)
    path.chmod(0o644)  # the atomic temp file starts private; a site is for reading


def _table(head: str, rows: list[list[str]]) -> str:
    """A table of HTML cells; `head` names the columns, separated by |."""
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head.split("|"))
    body = "\n".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{header}</tr></thead><tbody>\n{body}\n</tbody></table>"


def _counts(records: list[RunResult], named: bool = False) -> str:
    """ok / failed / skipped run counts; `named`: each count says what it counts (outside the table's header)."""
    return " / ".join(
        f'<span class="{s}">{sum(r.status == s for r in records)}{" " + s if named else ""}</span>' for s in STATUSES
    )


def _commit(record: RunResult) -> str:
    """`abc1234567`, `abc1234567+dirty` or, with the digest of its uncommitted changes, `abc1234567+dirty:1a2b3c4d`."""
    env = record.environment
    dirty = "+dirty" + (f":{env.git_diff_sha256[:8]}" if env.git_diff_sha256 else "") if env.git_dirty else ""
    return (env.git_commit or "unknown")[:10] + dirty


def _commits(records: list[RunResult]) -> str:
    commits = sorted({_commit(r) for r in records})
    more = f' <span class="muted" title="{html.escape(", ".join(commits))}">+{len(commits) - 3} more</span>'
    return ", ".join(f"<code>{html.escape(c)}</code>" for c in commits[:3]) + more * (len(commits) > 3)


def _suite_links(one: ResultSet) -> str:
    """` · suite file x.yaml` links for the navigation of the set's pages (the files _records copies)."""
    return "".join(
        f' · <a href="{_href(p.name)}">suite file {html.escape(p.name)}</a>' for p in one.suite_files.values()
    )


def _report(one: ResultSet, root: Path, site: Path, up: str) -> None:
    from bench.analysis.history import build
    from bench.report.html import render

    newest = max(one.nights, key=lambda night: (max(r.started_at for _, r in one.nights[night]), night.parts))
    records = [record for _, record in one.nights[newest]]
    suites = sorted({r.suite for r in one.records})
    history = build(root / one.folder, suites[0] if len(suites) == 1 else None) if len(one.nights) > 1 else None
    label = "/".join(one.folder.parts) + f", newest of {len(one.nights)} nights: {newest}" * (len(one.nights) > 1)
    title = f"{one.names('suite')} on {one.names('machine')} ({label})"
    suite_files = list(one.suite_files.values())
    suite_text = suite_files[0].read_text(encoding="utf-8") if len(suite_files) == 1 else None  # checked: suite_leaks
    nav = f'<nav><a href="{up}index.html">All results</a> · <a href="records.html">records of this report</a>'
    nav += _suite_links(one) + "</nav>"
    page = render(records, suite_text=suite_text, title=title, history=history)
    _write(site / "report.html", page.replace("<body>", f"<body>\n{nav}", 1))


def _records(one: ResultSet, root: Path, site: Path, up: str) -> None:
    """Copy the record files (nothing else) beside the report, zip them, and list them on records.html."""
    rows = []
    with zipfile.ZipFile(site / "records.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        for path, record in one.runs:
            relative = path.relative_to(root / one.folder)
            target = site / "records" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            text = record.model_dump_json(indent=2) + "\n"  # the scrubbed record, not the file as found
            target.write_text(text, encoding="utf-8")
            target.chmod(0o644)
            entry = zipfile.ZipInfo("/".join((*one.folder.parts, *relative.parts)), date_time=(1980, 1, 1, 0, 0, 0))
            entry.external_attr = 0o644 << 16  # a fixed date and mode: the same records give the same zip
            archive.writestr(entry, text.encode("utf-8"), zipfile.ZIP_DEFLATED)
            cells = (record.suite, record.label, record.seed, record.status, record.started_at[:19])
            link = f'<a href="{_href("records", *relative.parts)}">{html.escape(str(relative))}</a>'
            commit = record.environment.git_commit or "unknown"
            rows.append([link, *(html.escape(str(c)) for c in cells), f"<code>{html.escape(commit)}</code>"])
    (site / "records.zip").chmod(0o644)
    for path in one.suite_files.values():  # leak-checked before anything was written (suite_leaks)
        shutil.copyfile(path, site / path.name)
        (site / path.name).chmod(0o644)
    body = (
        f'<nav><a href="{up}index.html">All results</a> · <a href="report.html">report</a> · '
        f'<a href="records.zip">all {len(rows)} records (zip)</a>{_suite_links(one)}</nav>\n'
        f"<h1>Records: {html.escape(str(one.folder))}</h1>\n<p>One JSON file per run, as <code>bench run</code> "
        "stored it; <code>bench report</code> and <code>bench compare</code> read them back.</p>\n"
        '<p class="muted" id="data">Data files are not published (they may be private): each record names the '
        "sha256 of every file it read (<code>model.data_sha256</code>).</p>\n"
        + _table("record|suite|strategy|seed|status|started|commit", rows)
    )
    _write(site / "records.html", _page(f"Records: {one.folder}", body))


def summaries(sets: list[ResultSet], root: Path) -> list[tuple[Path, Summary, str]]:
    """(folder, summary, meta) of each comparison on the front page (the sets outside validation/)."""
    comparisons = []
    for one in sets:
        if one.folder.parts[:1] != (VALIDATION,):
            meta = f"{html.escape(one.names('machine'))}, {_counts(one.records, named=True)} runs"
            comparisons.append((one.folder, summarize_set(root / one.folder, root, one.records), meta))
    return comparisons


def _index(sets: list[ResultSet], command: str, root: Path, comparisons: list[tuple[Path, Summary, str]]) -> str:
    rows = []
    for one in sets:
        records, base = one.records, one.folder.parts
        fingerprints = ", ".join(sorted({r.environment.fingerprint or "unknown" for r in records}))
        dates = sorted(r.started_at[:10] for r in records)
        links = f'<a href="{_href(*base, "records.html")}">{len(records)} JSON</a>'
        rows.append(
            [
                html.escape(one.names("suite")),
                f'{html.escape(one.names("machine"))}<br><span class="muted">{html.escape(fingerprints)}</span>',
                f"<code>{html.escape('/'.join(base) or '.')}</code>",
                _counts(records),
                str(len(one.nights)),
                dates[0] if dates[0] == dates[-1] else f"{dates[0]} – {dates[-1]}",
                _commits(records),
                f'<a href="{_href(*base, "report.html")}">report</a>',
                f'{links} · <a href="{_href(*base, "records.zip")}">zip</a>',
            ]
        )
    suites = {r.suite for one in sets for r in one.records}
    machines = {r.environment.machine for one in sets for r in one.records}
    return _page(
        "Fine-tuning benchmark results",
        "<h1>Fine-tuning benchmark results</h1>\n"
        "<p>Each suite trains its fine-tuning strategies under a matched budget and records accuracy, "
        "forgetting, memory, throughput and latency per run. The comparisons come first, with their question, "
        "answer and findings; the experiments that validate the harness itself are listed apart below them.</p>\n"
        + sections(comparisons, root)
        + "\n<h2>All result sets</h2>\n<p>A row is one results folder on one machine; its report compares the "
        "strategies (with trend charts when the folder holds several nights), and its records are the raw JSON, "
        "one file per run.</p>\n"
        f"<p>{len(sets)} result sets, {len(suites)} suites, {len(machines)} machines, "
        f"{sum(len(one.records) for one in sets)} records.</p>\n"
        + _table("suite|machine|results folder|runs ok / failed / skipped|nights|dates|commits|report|records", rows)
        + f'\n<p class="muted" id="about">About: this site is rebuilt by <code>{html.escape(command)}</code> '
        "(fine-tune-bench, docs/report-and-compare.md); it needs no network and opens from disk."
        + " …/ stands for a folder outside the one it was built from, named by its last part only." * ("…" in command)
        + "</p>",
    )


def shown_path(path: Path) -> str:
    """A folder as the site's About line names it: relative to the current folder when inside it (as the
    command was typed there), else `…/<name>`, its name only: an absolute path would tell the author's
    machine, and cutting some of its parts off (user2/r for /tmp/user2/r) would name a folder that is not it."""
    full, here = Path(os.path.abspath(path)), Path(os.path.abspath(Path.cwd()))
    if full == here or here in full.parents:
        return full.relative_to(here).as_posix()
    return f"…/{full.name}" if full.name else "…"


def publish(results_root: Path | str, out_dir: Path | str, command: str | None = None) -> Path:
    """Build the site of every result set below `results_root` in `out_dir`; returns index.html.

    `out_dir` must be empty, absent, or a site this function built (which it replaces)."""
    root, out = Path(results_root), Path(out_dir)
    if out.resolve() == root.resolve() or out.resolve() in root.resolve().parents:
        raise FileExistsError(f"--out {out} holds the results root {root}; choose another --out")
    sets = find_sets(root, skip=out.resolve()) if root.is_dir() else []
    if not sets:
        raise FileNotFoundError(f"no result records under {root}")
    comparisons, hosts = summaries(sets, root), machine_hosts()
    problems = check_leaks(sets, root)
    problems += front_leaks([summary for _, summary, _ in comparisons], hosts) + validation_leaks(root, hosts)
    problems += [
        line
        for path in sorted({p for one in sets for p in one.find_suite_files(root)})
        for line in suite_leaks(path, hosts)
    ]
    if problems:
        raise LeakError("records or texts would leak; nothing published:\n" + "\n".join(capped(problems)))
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        index = out / "index.html"
        if not (index.is_file() and GENERATOR in index.read_text(encoding="utf-8", errors="replace")):
            raise FileExistsError(f"{out} is not empty and not a site built by bench publish; choose another --out")
        shutil.rmtree(out)
    for one in sets:
        site = out.joinpath(*one.folder.parts)
        site.mkdir(parents=True, exist_ok=True)
        up = "../" * len(one.folder.parts)
        _report(one, root, site, up)
        _records(one, root, site, up)
    index = out / "index.html"
    copy_validation(root, out)
    command = scrub_text(command) if command else f"bench publish {shown_path(root)} --out {shown_path(out)}"
    _write(index, _index(sets, command, root, comparisons))  # no absolute path
    return index
