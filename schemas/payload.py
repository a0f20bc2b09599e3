"""The base of every event payload, the field types they share, and the catalog that names them.

A payload is the ``data`` of an event. Each event type is one :class:`Payload`
subclass registered in a :class:`Catalog` under its type name; see
``schemas/catalog.py`` for how to add one.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from datetime import time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

__all__ = [
    "Catalog",
    "Category",
    "Clock",
    "Money",
    "Name",
    "Payload",
]


def _matching(pattern: str, hint: str) -> tuple[AfterValidator, WithJsonSchema]:
    """A text constraint whose error says what to write, not which regex failed."""
    compiled = re.compile(pattern)

    def check(value: str) -> str:
        if not compiled.fullmatch(value):
            raise PydanticCustomError("string_pattern_mismatch", hint)
        return value

    return AfterValidator(check), WithJsonSchema({"type": "string", "pattern": f"^{pattern}$"})


#: A role, a user id or an instance name: it becomes part of a routing key, whose
#: AMQP limit is 255 bytes, so it is short printable ASCII without spaces.
Name = Annotated[
    str,
    *_matching(
        r"[A-Za-z0-9_.@+\-]{1,128}",
        "use 1 to 128 letters, digits or _ . @ + - (no spaces)",
    ),
]


def _decimal_as_float(value: object) -> object:
    # Django's DecimalField hands out Decimal; JSON has only numbers.
    return float(value) if isinstance(value, Decimal) else value


#: An amount of money: a JSON number. A ``Decimal`` from Django is accepted too.
Money = Annotated[float, BeforeValidator(_decimal_as_float)]


def _time_as_text(value: object) -> object:
    # Django's TimeField hands out datetime.time; the seed sends str(time).
    return value.isoformat() if isinstance(value, time) else value


#: A time of day as the seed writes it, "14:30" or "14:30:00". Kept as text so
#: that browsers receive exactly what the producer sent.
Clock = Annotated[
    str,
    BeforeValidator(_time_as_text),
    *_matching(
        r"([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d{1,6})?)?",
        "expected a time of day such as '14:30' or '14:30:00'",
    ),
]


class Category(StrEnum):
    """What an event type is for; browsers subscribe by category too."""

    BUSINESS = "business"
    NOTIFICATION = "notification"
    DASHBOARD = "dashboard"


class Payload(BaseModel):
    """The ``data`` of an event.

    Fields are snake_case in Python and camelCase on the wire, as the seed
    writes them. Values are checked strictly: ``"1"`` is not an integer. Fields
    a producer leaves out stay out of what browsers receive.
    """

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    #: Set by :meth:`Catalog.register` on each registered subclass.
    event_type: ClassVar[str]
    category: ClassVar[Category]


P = TypeVar("P", bound=type[Payload])

_TYPE_NAME = re.compile(r"^[a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)*$")


class Catalog(Mapping[str, type[Payload]]):
    """Every known event type, by name, in the order they were registered."""

    def __init__(self) -> None:
        self._types: dict[str, type[Payload]] = {}

    def register(self, name: str, category: Category) -> Callable[[P], P]:
        """Class decorator: make ``name`` an event type whose data is the class."""

        def add(cls: P) -> P:
            if not _TYPE_NAME.match(name):
                raise ValueError(
                    f"event type {name!r} must be lowercase words joined by ':', "
                    "like 'reserva:creada'"
                )
            if name in self._types:
                raise ValueError(f"event type {name!r} is registered twice")
            cls.event_type = name
            cls.category = category
            self._types[name] = cls
            return cls

        return add

    def __getitem__(self, name: str) -> type[Payload]:
        return self._types[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._types)

    def __len__(self) -> int:
        return len(self._types)
