"""A project's event types: the catalog that names them, and loading one by its module's name.

A project declares its events in a module of its own that does not import
Django, so that the bridge can load it too::

    # shop/events.py
    from schemas import Catalog, Category, Money, Payload

    catalog = Catalog()


    class Order(Payload):
        id: int
        total: Money


    @catalog.register("order:created")
    class OrderCreated(Payload):
        \"\"\"An order was placed.\"\"\"

        order: Order

Django finds it through ``EVENT_BRIDGE["CATALOG"] = "shop.events"``, the
bridge through ``event-bridge serve --catalog shop.events``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import create_model

from schemas.envelope import Event, check_type_name
from schemas.payload import Category, Payload

__all__ = ["Catalog", "CatalogError", "EventType", "load_catalog"]

P = TypeVar("P", bound=type[Payload])


class CatalogError(Exception):
    """A catalog that cannot be loaded or added to; the message says what to do."""


@dataclass(frozen=True)
class EventType:
    """One registered event type."""

    name: str
    category: Category
    payload: type[Payload]
    #: The event whose ``type`` is ``name`` and ``data`` a ``payload``.
    model: type[Event]


class Catalog(Mapping[str, EventType]):
    """A project's event types, by name, in the order they were registered.

    Register every type when its module is imported: once a
    :class:`~schemas.reader.Reader` reads with the catalog, it takes no more.
    """

    def __init__(self) -> None:
        self._types: dict[str, EventType] = {}
        self._frozen = False

    def register(self, name: str, category: Category = Category.BUSINESS) -> Callable[[P], P]:
        """Class decorator: make ``name`` an event type whose data is the class."""

        def add(cls: P) -> P:
            try:
                check_type_name(name)
            except ValueError as exc:
                raise CatalogError(f"cannot register {cls.__name__}: {exc}") from exc
            if name in self._types:
                raise CatalogError(f"event type {name!r} is registered twice")
            if "__event_type__" in cls.__dict__:
                raise CatalogError(
                    f"{cls.__name__} is already the event type {cls.__event_type__.name!r}"  # type: ignore[attr-defined]
                )
            clash = next(
                (t for t in self._types.values() if t.payload.__name__ == cls.__name__), None
            )
            if clash is not None:
                raise CatalogError(
                    f"{name!r} and {clash.name!r} both have a payload class named "
                    f"{cls.__name__}: rename one (the JSON Schema and the browser client's "
                    "helpers are named after it)"
                )
            if self._frozen:
                raise CatalogError(
                    f"cannot register {name!r}: the catalog is in use already; register "
                    "every type in its module, before anything reads events with it"
                )
            model = create_model(
                f"{cls.__name__}Event",
                __base__=Event,
                __module__=cls.__module__,
                __doc__=cls.__doc__,
                **{"type": (Literal[name], ...), "data": (cls, ...)},  # type: ignore[call-overload]
            )
            event_type = EventType(name, category, cls, model)
            cls.__event_type__ = event_type  # type: ignore[attr-defined]
            self._types[name] = event_type
            return cls

        return add

    def freeze(self) -> None:
        """Take no more types: readers are built from what is registered now."""
        self._frozen = True

    def __getitem__(self, name: str) -> EventType:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)

    def __repr__(self) -> str:
        return f"Catalog({', '.join(self._types)})"


def load_catalog(spec: str) -> Catalog:
    """The catalog that ``spec`` names: ``"shop.events"``, or ``"shop.events:catalog"``.

    Without ``:attribute``, the module must hold exactly one :class:`Catalog`.
    Raises :class:`CatalogError` saying what is wrong.
    """
    module_name, _, attribute = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise CatalogError(
            f"cannot import {module_name!r}: {exc}; its folder must be on PYTHONPATH "
            "(or the current directory, for event-bridge)"
        ) from exc
    if attribute:
        found: Any = getattr(module, attribute, None)
        if not isinstance(found, Catalog):
            raise CatalogError(f"{spec!r}: {module_name} has no Catalog named {attribute!r}")
        return found
    names: dict[int, str] = {}
    catalogs: dict[int, Catalog] = {}
    for name, value in vars(module).items():
        if isinstance(value, Catalog):  # one catalog may have several names
            names.setdefault(id(value), name)
            catalogs[id(value)] = value
    if len(catalogs) != 1:
        found_names = ", ".join(sorted(names.values())) or "none"
        raise CatalogError(
            f"{module_name} must hold one Catalog (found: {found_names}); "
            f"name the one to use: '{module_name}:catalog'"
        )
    return next(iter(catalogs.values()))
