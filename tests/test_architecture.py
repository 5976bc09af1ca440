"""The shape of the package (docs/architecture.md), read from the source with ast: few loose modules,
imports that point one way (between modules and between folders), functions that fit on a screen,
and a run's worker that reads as its phase order."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"
MAX_LOOSE = 8  # modules directly in bench/, __init__.py included
MAX_FUNCTION_LINES = 80
MAX_WORKER_LINES = 150


def _module_name(path: Path) -> str:
    parts = path.relative_to(BENCH.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(BENCH.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The bench modules `name` imports, anywhere in its body (lazy imports included: an arrow is an arrow)."""
    found: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names} & known
            found.update(submodules or {module})
    return {module for module in found if module in known and module != name}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def _folder(module: str) -> str:
    """The node a module counts as in the folder graph: bench.<folder>, or the loose module itself."""
    return ".".join(module.split(".")[:2])


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle in the graph, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return stack[stack.index(target) :] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_few_modules_are_loose_in_bench():
    loose = sorted(path.name for path in BENCH.glob("*.py"))
    assert len(loose) <= MAX_LOOSE, loose


def test_no_import_cycle_among_bench_modules():
    # a package's __init__ that re-exports its own submodules is not an arrow back up
    graph = {
        name: {target for target in targets if not name.startswith(target + ".")} for name, targets in _graph().items()
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_folders_import_one_way():
    folders: dict[str, set[str]] = {}
    for name, targets in _graph().items():
        if name == "bench":
            continue
        edges = folders.setdefault(_folder(name), set())
        edges.update(_folder(target) for target in targets if target != "bench" and _folder(target) != _folder(name))
    assert _cycle(folders) is None, " -> ".join(_cycle(folders) or [])


def test_no_function_over_80_lines():
    long = [
        f"{path.relative_to(BENCH.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for path in sorted(BENCH.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, long


def test_the_worker_reads_in_one_screen():
    lines = len((BENCH / "run" / "worker.py").read_text().splitlines())
    assert lines <= MAX_WORKER_LINES, lines


def test_the_modules_that_name_this_checkout_find_it_from_their_folder():
    """A module that locates the checkout from its own file must count its folder's depth (a move
    into a stage folder adds one level)."""
    from bench.analysis import ab
    from bench.measure import env
    from bench.records import portable

    assert portable.SOURCE_ROOT == ab.SOURCE == env.SOURCE_ROOT == BENCH.parent
