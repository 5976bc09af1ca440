"""One generic registry: names map to lazily imported objects, unknown names get a suggestion."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


def unknown_name_message(kind: str, name: str, names: list[str]) -> str:
    """`unknown backend 'wram'; did you mean 'warm'? (known: local, warm)`."""
    import difflib  # only for a name that is not known: keeps `import bench.<kind>` light

    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}{hint} (known: {', '.join(names)})"


class UnknownNameError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0])


def _defined_as(target: str) -> tuple[str, str]:
    """("module", "attribute") of a "package.module:attribute" target: its last module name and attribute,
    which a module imported under two package paths shares."""
    module, _, attribute = target.partition(":")
    return module.rpartition(".")[2], attribute


class Registry(Generic[T]):
    """Maps a name to "module:attribute"; the module is imported only when the name is used."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str) -> None:
        if self._targets.get(name) == target:  # the same line run again
            return
        self._refuse_taken(name, _defined_as(target))
        self._targets[name] = target
        self._loaded.pop(name, None)

    def add(self, name: str, obj: T) -> None:
        """Register an already imported object (plugins, tests)."""
        kind = obj if isinstance(obj, type) else type(obj)
        self._refuse_taken(name, (kind.__module__.rpartition(".")[2], kind.__qualname__))
        self._targets[name] = f"<object {name}>"
        self._loaded[name] = obj

    def _refuse_taken(self, name: str, defined: tuple[str, str]) -> None:
        """A name stands for one thing: a plugin that reused a built-in's (or another plugin's) name would
        replace it without a word (runs labelled `lora` training something else). The same definition again
        (a module imported twice, under two names, or reloaded) is no clash."""
        if name not in self._targets:
            return
        loaded = self._loaded.get(name)
        if loaded is not None:
            kind = loaded if isinstance(loaded, type) else type(loaded)
            before = (kind.__module__.rpartition(".")[2], kind.__qualname__)
        else:
            before = _defined_as(self._targets[name])
        if before != defined:
            raise ValueError(f"{self.kind} {name!r} is already registered; register yours under a name of its own")

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def unknown_message(self, name: str) -> str:
        return unknown_name_message(self.kind, name, self.names())

    def get(self, name: str) -> T:
        if name not in self._targets:
            raise UnknownNameError(self.unknown_message(name))
        if name not in self._loaded:
            module_name, _, attribute = self._targets[name].partition(":")
            self._loaded[name] = getattr(importlib.import_module(module_name), attribute)
        return self._loaded[name]
