"""The documentation matches the tool: users read README.md and docs/*.md and type what they read.

Cheap checks (no torch, no run): every option of every `bench` subcommand is documented beside its
command, with the default a synopsis shows; every suite field is in the README's suite block with its
default; every relative link, anchor, repository path and `bench.` name in the docs resolves; every
shipped suite is listed; docs/architecture.md names every module of the folders it enumerates."""

from __future__ import annotations

import argparse
import functools
import re
import typing
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bench.cli.main import build_parser
from bench.suite import Suite

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# example paths the docs name on purpose: git-ignored output folders, placeholders
EXAMPLE_PATHS = ("results/local/", "reports/local/")
# suite fields the README's suite block fills with an example rather than the default (a source, a task)
EXAMPLE_FIELDS = {"model.preset", "retain"}


def _text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


def _paragraphs() -> list[str]:
    """Every paragraph of README and docs; each table row is a paragraph of its own."""
    return [part for page in PAGES for part in re.split(r"\n\s*\n|\n(?=\|)", _text(page))]


@functools.cache
def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The actions with a long option, --help left out."""
    return [a for a in parser._actions if any(o.startswith("--") and o != "--help" for o in a.option_strings)]


def _long(action: argparse.Action) -> str:
    return next(o for o in action.option_strings if o.startswith("--"))


def test_every_option_is_documented_beside_its_command() -> None:
    """A paragraph (or table row) that names `bench CMD` also names each of CMD's options somewhere."""
    paragraphs = _paragraphs()
    missing = []
    for name, parser in _subparsers().items():
        mentions = [p for p in paragraphs if re.search(rf"\bbench {name}\b", p)]
        for action in _options(parser):
            option = _long(action)
            if not any(re.search(rf"{re.escape(option)}(?![\w-])", p) for p in mentions):
                missing.append(f"bench {name} {option}")
    assert not missing, f"options no doc page names beside their command: {missing}"


def _command_lines(text: str) -> list[str]:
    """Each `bench CMD ...` a page shows: inline code, fenced code-block lines (continuations joined, comments
    cut) and indented synopses (their continuation lines joined)."""
    lines = re.findall(r"`(bench [a-z]+[^`]*)`", text)
    lines += [" ".join(m.split()) for m in re.findall(r"^ {4}(bench [a-z]+.*(?:\n {5,}\[.*)*)", text, re.M)]
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = re.sub(r"^\$\s*|\s+#.*$", "", line.strip())
            if command.startswith("bench "):
                lines.append(command)
    return lines


def test_every_option_a_page_shows_exists() -> None:
    """`bench CMD ... --option`: the option is one of CMD's (a renamed or removed option leaves no stale docs)."""
    unknown = []
    for page in PAGES:
        for line in _command_lines(_text(page)):
            name = line.split()[1]
            parser = _subparsers().get(name)
            known = {o for action in (parser._actions if parser else []) for o in action.option_strings}
            unknown += [
                f"{page.name}: bench {name} {o}" for o in re.findall(r"(?<![\w-])--[a-z][\w-]*", line) if o not in known
            ]
    assert not unknown, unknown


def _same(shown: str, default: object) -> bool:
    try:
        return float(shown) == float(default)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return shown == str(default)


def _shown_defaults(line: str, name: str) -> list[str]:
    """`[--option VALUE]` of a `bench NAME` synopsis line whose VALUE is not its option's default."""
    wrong = []
    for action in _options(_subparsers()[name]):
        if action.default in (None, False, True) or isinstance(action.default, (list, Path)):
            continue  # no default a synopsis could show (a flag, a path, a placeholder)
        for shown in re.findall(rf"\[{re.escape(_long(action))} ([^\]\s|]+)\]", line):
            if not shown.isupper() and not _same(shown, action.default):
                wrong.append(f"bench {name} {_long(action)} {shown} (default {action.default})")
    return wrong


def test_a_synopsis_shows_each_option_at_its_default() -> None:
    """`bench ab SUITE [--rounds 7]`: a value shown in brackets for an option with a default is that default."""
    wrong = [
        f"{page.name}: {problem}"
        for page in PAGES
        for line in _command_lines(_text(page))
        if line.split()[1] in _subparsers()
        for problem in _shown_defaults(line, line.split()[1])
    ]
    assert not wrong, wrong


def _readme_suite_block() -> str:
    match = re.search(r"Every\s+field, with its default:\s*```yaml\n(.*?)```", _text(ROOT / "README.md"), re.S)
    assert match, "README.md: the suite block ('Every field, with its default:') is gone"
    return match.group(1)


def _models(annotation: object) -> list[type[BaseModel]]:
    found = []
    for part in typing.get_args(annotation) or (annotation,):
        if isinstance(part, type) and issubclass(part, BaseModel):
            found.append(part)
        elif typing.get_args(part):
            found.extend(_models(part))
    return found


def _fields(model: type[BaseModel], prefix: str = "") -> list[tuple[str, FieldInfo]]:
    """(dotted path, field info) of every field of the suite schema, depth first."""
    rows = []
    for name, info in model.model_fields.items():
        rows.append((prefix + name, info))
        for sub in _models(info.annotation):
            rows.extend(_fields(sub, prefix + name + "."))
    return rows


def _lookup(data: object, path: str) -> tuple[bool, object]:
    for key in path.split("."):
        if isinstance(data, list):  # retain: a list of tasks, written as one example
            data = data[0] if data and isinstance(data[0], dict) else {}
        if not isinstance(data, dict) or key not in data:
            return False, None
        data = data[key]
    return True, data


def test_readme_suite_block_has_every_field_with_its_default() -> None:
    """Every field of bench/suite.py and bench/spec.py is named in the block; a key it sets shows the default."""
    block = _readme_suite_block()
    data = yaml.safe_load(block)
    absent, wrong = [], []
    for path, info in _fields(Suite):
        leaf = path.rsplit(".", 1)[-1]
        if not re.search(rf"\b{leaf}\b", block):
            absent.append(path)
            continue
        present, shown = _lookup(data, path)
        if not present or path in EXAMPLE_FIELDS or info.is_required():
            continue
        default = info.get_default(call_default_factory=True)
        if not isinstance(default, BaseModel) and shown != default:
            wrong.append(f"{path}: README {shown!r}, code {default!r}")
    assert not absent, f"suite fields missing from README.md's suite block: {absent}"
    assert not wrong, wrong


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_and_anchors_resolve() -> None:
    broken = []
    for page in PAGES:
        text = _text(page)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            if not linked.exists():
                broken.append(f"{page.name}: {target}")
            elif anchor and anchor not in {_slug(h) for h in re.findall(r"^#+ (.*)$", _text(linked), re.M)}:
                broken.append(f"{page.name}: {target} (no such heading)")
    assert not broken, broken


def _defines(source: str, name: str) -> bool:
    name = re.escape(name)
    defined = rf"^\s*(?:async\s+)?(?:def|class)\s+{name}\b|^{name}\s*[:=]"
    imported = rf"^\s*from\s+\S+\s+import\s+(?:\([^)]*\b{name}\b|[^\n]*\b{name}\b)"
    return bool(re.search(f"{defined}|{imported}", source, re.M))


def test_repository_paths_and_symbols_in_backticks_exist() -> None:
    """`bench/x.py`, `bench/x.py:function`, `scripts/...`, `suites/...`: what a reader opens is there."""
    pattern = r"`((?:bench|scripts|suites|results|reports|tests|docs|constraints|\.github|\.ci)/[^`\s]*)`"
    missing = []
    for page in PAGES:
        for ref in re.findall(pattern, _text(page)):
            path, _, symbol = ref.partition(":")
            if any(mark in path for mark in "<*{") or "..." in path or path.startswith(EXAMPLE_PATHS):
                continue
            file = ROOT / path
            if not file.exists():
                missing.append(f"{page.name}: {ref}")
            elif symbol and file.is_file() and not _defines(_text(file), symbol.split(".")[-1]):
                missing.append(f"{page.name}: {ref} (no such name)")
    assert not missing, missing


def _module_file(parts: list[str]) -> tuple[Path, list[str]] | None:
    """The file of the longest module prefix of a dotted name, and the names after it."""
    for end in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:end])
        for file in (base.with_suffix(".py"), base / "__init__.py"):
            if file.is_file():
                return file, parts[end:]
    return None


def test_dotted_bench_names_resolve() -> None:
    """`bench.training.train.train`, `bench.registry.Registry`: each module exists and defines the name."""
    unresolved = []
    for page in PAGES:
        for ref in re.findall(r"`(bench(?:\.\w+)+)`", _text(page)):
            found = _module_file(ref.split("."))
            if found is None or any(not _defines(_text(found[0]), name) for name in found[1][:2]):
                unresolved.append(f"{page.name}: {ref}")
    assert not unresolved, unresolved


def test_every_shipped_suite_is_in_the_readme() -> None:
    readme = _text(ROOT / "README.md")
    unlisted = [s.name for s in sorted((ROOT / "suites").glob("*.yaml")) if f"`suites/{s.name}`" not in readme]
    assert not unlisted, f"README.md's table of shipped suites misses {unlisted}"


# the folders whose bullet in docs/architecture.md enumerates their modules
ENUMERATED = (
    "cli", "report", "recommend", "executors", "backends", "run", "estimate", "training", "analysis", "records",
)  # fmt: skip


@pytest.mark.parametrize("folder", ENUMERATED)
def test_architecture_names_every_module_of_the_folders_it_enumerates(folder: str) -> None:
    text = _text(ROOT / "docs" / "architecture.md")
    bullet = re.search(rf"^- \*\*`{folder}/`\*\*.*?(?=^- |^#|\Z)", text, re.M | re.S)
    assert bullet, f"docs/architecture.md has no bullet for {folder}/"
    modules = [p.stem for p in (ROOT / "bench" / folder).glob("*.py") if not p.stem.startswith("__")]
    unnamed = [m for m in sorted(modules) if not re.search(rf"`{m}(?:\.py|\.\w+)?`|\b{m}\.py\b", bullet.group(0))]
    assert not unnamed, f"docs/architecture.md's {folder}/ bullet does not name {unnamed}"
