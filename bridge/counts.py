"""Events accepted, by type, with typed and untyped ones apart: what stats and metrics show.

Untyped event types are whatever names callers send, so the number of names
kept is bounded: past ``limit`` names, new ones are counted together as
:data:`OTHER`. The catalog's own types always have their own count.
"""

from __future__ import annotations

import collections
from collections.abc import Collection
from enum import StrEnum

from schemas import Event

__all__ = ["OTHER", "Kind", "TypeCounts"]

#: The name that stands for every type past the limit.
OTHER = "(other)"


class Kind(StrEnum):
    """Why an event is typed or not."""

    TYPED = "typed"
    #: Its type is not in the catalog.
    UNKNOWN = "unknown"
    #: Its type is in the catalog but its data does not fit the type's model.
    MISFIT = "misfit"


class TypeCounts:
    """Counts events by type name (at most ``limit`` names besides ``catalog``'s) and kind."""

    def __init__(self, catalog: Collection[str], *, limit: int) -> None:
        self._catalog = catalog
        self._limit = limit
        self._others: set[str] = set()
        #: Events by type name, typed or not.
        self.by_type: collections.Counter[str] = collections.Counter()
        #: Untyped events by type name.
        self.untyped: collections.Counter[str] = collections.Counter()

    def kind(self, event: Event) -> Kind:
        """Whether ``event`` is typed, of an unknown type, or a misfit of a known one."""
        if event.typed:
            return Kind.TYPED
        return Kind.MISFIT if event.type in self._catalog else Kind.UNKNOWN

    def name(self, event_type: str) -> str:
        """The name ``event_type`` is counted under: itself, or :data:`OTHER` past the limit."""
        if event_type in self._catalog or event_type in self._others:
            return event_type
        if len(self._others) < self._limit:
            self._others.add(event_type)
            return event_type
        return OTHER

    def count(self, event: Event, kind: Kind) -> str:
        """Count ``event``; the name it was counted under, for metric labels."""
        name = self.name(event.type)
        self.by_type[name] += 1
        if kind is not Kind.TYPED:
            self.untyped[name] += 1
        return name
