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


class Registry(Generic[T]):
    """Maps a name to "module:attribute"; the module is imported only when the name is used."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._targets: dict[str, str] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str) -> None:
        self._refuse_taken(name, target)
        self._targets[name] = target

    def add(self, name: str, obj: T) -> None:
        """Register an already imported object (plugins, tests)."""
        if self._loaded.get(name) is obj:
            return
        self._refuse_taken(name, f"<object {name}>")
        self._targets[name] = f"<object {name}>"
        self._loaded[name] = obj

    def _refuse_taken(self, name: str, target: str) -> None:
        """A name stands for one thing: a plugin that reused a built-in's name would replace it without a word
        (runs labelled `lora` training something else)."""
        if name in self._targets and self._targets[name] != target:
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
