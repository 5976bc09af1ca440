"""docs/architecture.md lists bench's folders "in the order the arrows point: a folder imports only folders
listed after it". tests/test_architecture.py holds the folder graph acyclic; this holds it to that order."""

from __future__ import annotations

import re

from tests.test_architecture import BENCH, _folder, _graph

ARCHITECTURE = BENCH.parent / "docs" / "architecture.md"


def documented_order(text: str) -> list[str]:
    """The folders (bench.<name>) in the order the section's bullets name them in bold."""
    section = text.split("One sentence per folder", 1)[1].split("\n## ", 1)[0]
    bold = re.findall(r"^- \*\*(.+?)\*\*", section, flags=re.MULTILINE)
    return [f"bench.{name}" for names in bold for name in re.findall(r"`(\w+)/`", names)]


def backward_imports(order: list[str], graph: dict[str, set[str]]) -> list[str]:
    """Every import from a folder to a folder listed before it, as 'module -> module'."""
    place = {folder: index for index, folder in enumerate(order)}
    found = []
    for name, targets in sorted(graph.items()):
        for target in sorted(targets):
            source, destination = _folder(name), _folder(target)
            if source in place and destination in place and place[destination] < place[source]:
                found.append(f"{name} -> {target}")
    return found


def test_every_folder_is_in_the_documented_order():
    folders = {f"bench.{path.name}" for path in BENCH.iterdir() if (path / "__init__.py").is_file()}
    order = documented_order(ARCHITECTURE.read_text())
    assert sorted(order) == sorted(folders), (order, folders)


def test_folders_import_only_folders_listed_after_them():
    assert not backward_imports(documented_order(ARCHITECTURE.read_text()), _graph())


def test_a_backward_import_is_found():
    graph = {"bench.analysis.stats": {"bench.measure.components"}, "bench.measure.components": {"bench.records.x"}}
    order = ["bench.measure", "bench.analysis", "bench.records"]
    assert backward_imports(order, graph) == ["bench.analysis.stats -> bench.measure.components"]
