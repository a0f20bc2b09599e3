"""The base of every event payload and the field types payloads share.

A payload is the ``data`` of an event. Each event type is one :class:`Payload`
subclass registered in a project's :class:`~schemas.catalog.Catalog` under its
type name.
"""

from __future__ import annotations

import re
from datetime import time
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

__all__ = [
    "CHANNEL_HINT",
    "CHANNEL_NAME",
    "Category",
    "ChannelName",
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

#: A channel that clients subscribe to, such as ``order:42``: a :data:`Name` that may
#: also hold ``:``, up to 200 characters (it becomes part of a routing key too).
CHANNEL_NAME = re.compile(r"[A-Za-z0-9_.:@+\-]{1,200}")
#: What :data:`ChannelName` asks for, to say so where a name is refused.
CHANNEL_HINT = "use 1 to 200 letters, digits or _ . : @ + - (no spaces)"
ChannelName = Annotated[str, *_matching(CHANNEL_NAME.pattern, CHANNEL_HINT)]


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
