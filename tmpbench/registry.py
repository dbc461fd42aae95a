"""One registry type for models, pruners, suites and metrics.

Entries are registered by decorator (``@PRUNERS.register("tmp")``) or lazily by a
``"module:attr"`` string, so that importing the registry never imports torch-heavy modules.
Duplicates are rejected; an unknown name answers with a "did you mean" suggestion. Outside
packages add entries through the entry-point group ``tmpbench.<kind>`` (e.g. ``tmpbench.pruners``).

The project's own tables (``MODELS``, ``PRUNERS``, ``SUITES``, ``METRICS``, ``SCORERS``) and
their built-in entries live in :mod:`tmpbench.catalog`; this module holds only the type.

Example::

    >>> from tmpbench.registry import Registry
    >>> COLOURS = Registry("colour")
    >>> @COLOURS.register("red")
    ... def red():
    ...     return (255, 0, 0)
    >>> COLOURS.get("red")()
    (255, 0, 0)
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from tmpbench.errors import TmpbenchError, UnknownNameError, did_you_mean

T = TypeVar("T")


class Registry(Generic[T]):
    """A name -> object table with lazy entries and helpful lookup errors."""

    def __init__(self, kind: str, entry_point_group: str | None = None) -> None:
        self.kind = kind
        self.entry_point_group = entry_point_group or f"tmpbench.{kind}s"
        self._objects: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._entry_points_loaded = False

    # registration -------------------------------------------------------------------------
    def _check_new(self, name: str) -> None:
        if not name or name != name.strip():
            raise TmpbenchError(f"invalid {self.kind} name {name!r}: use a non-empty name without spaces")
        if name in self._objects or name in self._lazy:
            raise TmpbenchError(f"{self.kind} {name!r} is already registered; pick another name")

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``obj`` under ``name``."""

        def decorator(obj: T) -> T:
            self._check_new(name)
            self._objects[name] = obj
            return obj

        return decorator

    def add(self, name: str, obj: T) -> None:
        """Register ``obj`` under ``name`` (non-decorator form)."""
        self._check_new(name)
        self._objects[name] = obj

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"package.module:attr"``; it is imported on first :meth:`get`."""
        if ":" not in target:
            raise TmpbenchError(f"lazy target {target!r} for {self.kind} {name!r} must look like 'module:attr'")
        self._check_new(name)
        self._lazy[name] = target

    # lookup -------------------------------------------------------------------------------
    def _load_entry_points(self) -> None:
        if self._entry_points_loaded:
            return
        self._entry_points_loaded = True
        for ep in metadata.entry_points(group=self.entry_point_group):
            if ep.name not in self._objects and ep.name not in self._lazy:
                self._lazy[ep.name] = ep.value

    def names(self) -> list[str]:
        """All registered names, sorted."""
        self._load_entry_points()
        return sorted(set(self._objects) | set(self._lazy))

    def __contains__(self, name: object) -> bool:
        self._load_entry_points()
        return name in self._objects or name in self._lazy

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def suggest(self, name: str) -> list[str]:
        return difflib.get_close_matches(name, self.names(), n=3, cutoff=0.5)

    def get(self, name: str) -> T:
        """Return the object registered under ``name``; raise UnknownNameError with suggestions."""
        self._load_entry_points()
        if name in self._objects:
            return self._objects[name]
        if name in self._lazy:
            module_name, _, attr = self._lazy[name].partition(":")
            obj = importlib.import_module(module_name)
            for part in attr.split("."):
                obj = getattr(obj, part)
            self._objects[name] = obj  # cache; keep the lazy string for listing
            return obj  # type: ignore[return-value]
        raise UnknownNameError(
            f"unknown {self.kind} {name!r}{did_you_mean(name, self.names())} (known: {', '.join(self.names()) or 'none'})"
        )
