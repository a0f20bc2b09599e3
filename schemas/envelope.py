"""The event envelope: what travels through RabbitMQ and reaches browsers.

::

    {"id": "…", "type": "order:created", "data": {…},
     "timestamp": "2024-11-15T14:30:00Z", "audience": {"kind": "all"}}

An event is *typed* when its type is in the catalog and its data fits that
type's payload model, and *untyped* otherwise: its data is then the JSON it
was sent with, delivered as is. Build typed events with :meth:`Event.of`,
untyped ones with :meth:`Event.untyped`; read them with a
:class:`~schemas.reader.Reader`; write them with :meth:`Event.to_json`.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    SerializationInfo,
    StringConstraints,
    WithJsonSchema,
    field_serializer,
)
from pydantic_core import PydanticCustomError

from schemas.audience import Audience, Everyone
from schemas.payload import Payload

__all__ = [
    "DASHBOARD",
    "Event",
    "EventId",
    "Timestamp",
    "TypeName",
    "UntypedEvent",
    "check_type_name",
]

#: The type of dashboard snapshots (``POST /api/dashboard/update-dashboard``):
#: each new connection gets the latest one for everyone.
DASHBOARD = "dashboard:update"

#: An event id: printable ASCII, no spaces. Producers may choose it (for
#: idempotency); otherwise it is a random UUID.
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]

# A type becomes part of a routing key (at most 255 bytes) and of every message
# a browser reads; "bridge:" messages come from the bridge itself, never a producer.
_TYPE_NAME = re.compile(r"[!-~]{1,128}")
_RESERVED = "bridge:"
_TYPE_HINT = (
    "an event type is 1 to 128 printable ASCII characters without spaces, "
    "not starting with 'bridge:'"
)


def check_type_name(name: str) -> str:
    """``name`` if it may be an event type; :class:`ValueError` saying why not otherwise."""
    if not _TYPE_NAME.fullmatch(name) or name.startswith(_RESERVED):
        raise ValueError(f"{name!r}: {_TYPE_HINT}")
    return name


def _type_name(name: str) -> str:
    try:
        return check_type_name(name)
    except ValueError:
        raise PydanticCustomError("event_type", _TYPE_HINT) from None


#: Any event type's name, in a catalog or not.
TypeName = Annotated[
    str,
    AfterValidator(_type_name),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": 128,
            "pattern": "^[!-~]+$",
            "not": {"pattern": f"^{_RESERVED}"},
        }
    ),
]


def _assume_utc(moment: datetime) -> datetime:
    # Legacy callers send naive ISO times meaning UTC ("2024-11-15T14:30:00").
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


#: An ISO 8601 time; one without a zone is taken as UTC.
Timestamp = Annotated[datetime, AfterValidator(_assume_utc)]


class _Registered(Protocol):
    """What a catalog leaves on a payload class it registered (``schemas.catalog.EventType``)."""

    name: str
    model: type[Event]


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One event. Each catalog type has a subclass whose ``data`` is its payload model;
    :class:`UntypedEvent` carries any other type, its data as sent."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: EventId = Field(default_factory=_new_id)
    type: str
    #: The payload model of a typed event; the JSON it was sent with for an untyped one.
    data: Any
    timestamp: Timestamp = Field(default_factory=_now)
    audience: Audience = Field(default_factory=Everyone)

    @property
    def typed(self) -> bool:
        """Whether ``data`` was checked against the catalog's model of ``type``."""
        return isinstance(self.data, Payload)

    @field_serializer("data")
    def _given_fields_only(self, data: Any, info: SerializationInfo) -> Any:
        # Browsers get what the producer wrote, not nulls for every optional field.
        if isinstance(data, Payload):
            return data.model_dump(mode=info.mode, exclude_unset=True)
        return data

    @classmethod
    def of(
        cls,
        data: Payload,
        *,
        audience: Audience | None = None,
        id: str | None = None,
        timestamp: datetime | None = None,
    ) -> Event:
        """Wrap a payload; its class says the type. Omitted fields get a new id, now, everyone.

        Raises :class:`TypeError` when the payload's class is not registered in a catalog.
        """
        event_type: _Registered | None = type(data).__dict__.get("__event_type__")
        if event_type is None:
            raise TypeError(
                f"{type(data).__name__} is not an event type: register it in your catalog "
                "with @catalog.register('your:type')"
            )
        return event_type.model(**_fields(data, event_type.name, audience, id, timestamp))

    @classmethod
    def untyped(
        cls,
        type: str,
        data: JsonValue,
        *,
        audience: Audience | None = None,
        id: str | None = None,
        timestamp: datetime | None = None,
    ) -> Event:
        """An event whose data is delivered as given, whatever the catalog says of ``type``.

        Raises :class:`pydantic.ValidationError` for a type name or id that cannot be.
        """
        return UntypedEvent(**_fields(data, type, audience, id, timestamp))

    def to_json(self) -> bytes:
        """The event as UTF-8 JSON, as RabbitMQ and browsers receive it."""
        return self.model_dump_json().encode()


class UntypedEvent(Event):
    """An event of a type the catalog does not know, or whose data does not fit it."""

    type: TypeName
    data: JsonValue


def _fields(
    data: Any,
    type_: str,
    audience: Audience | None,
    id: str | None,
    timestamp: datetime | None,
) -> dict[str, Any]:
    fields: dict[str, Any] = {"type": type_, "data": data}
    for name, value in (("audience", audience), ("id", id), ("timestamp", timestamp)):
        if value is not None:
            fields[name] = value
    return fields
