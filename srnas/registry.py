"""A tiny explicit registry filled by decorators (models, ops, search spaces, papers)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from srnas.errors import SrnasError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps names to objects; an unknown name raises an error listing the known ones.

    ``loader``: called before every lookup, for registries that plug-in modules fill when
    imported (``srnas.catalog.load``), so a lookup never misses one that was not loaded yet."""

    def __init__(self, kind: str, loader: Callable[[], None] | None = None):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loader = loader

    def _load(self) -> None:
        if self._loader is not None:
            self._loader()

    def register(self, name: str | None = None) -> Callable[[T], T]:
        def decorator(obj: T) -> T:
            key = name or obj.__name__
            if key in self._items:
                raise ValueError(f"{self.kind} {key!r} is registered twice")
            self._items[key] = obj
            return obj

        return decorator

    def get(self, name: str) -> T:
        self._load()
        # names come from files too: a list or a number is unknown, not a TypeError
        if isinstance(name, str) and name in self._items:
            return self._items[name]
        known = ", ".join(sorted(self._items)) or "(none)"
        raise SrnasError(f"unknown {self.kind} {name!r}; known: {known}")

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        self._load()
        return len(self._items)
