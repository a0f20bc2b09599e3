"""The event envelope: what travels through RabbitMQ and reaches browsers.

::

    {"id": "…", "type": "reserva:creada", "data": {…},
     "timestamp": "2024-11-15T14:30:00Z", "audience": {"kind": "all"}}

Read events with :func:`parse_event`; build them with :meth:`Event.of`; write
them with :meth:`Event.to_json`.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    create_model,
    field_serializer,
)

from schemas.audience import Audience, Everyone
from schemas.catalog import CATALOG
from schemas.exceptions import SchemaError
from schemas.payload import Payload

__all__ = [
    "EVENTS",
    "EVENT_VARIANTS",
    "UNION_TAGS",
    "AnyEvent",
    "Event",
    "EventId",
    "Timestamp",
    "discriminated",
    "parse_event",
    "tagged_union",
]

#: An event id: printable ASCII, no spaces. Producers may choose it (for
#: idempotency); otherwise it is a random UUID.
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$")]


def _assume_utc(moment: datetime) -> datetime:
    # Legacy callers send naive ISO times meaning UTC ("2024-11-15T14:30:00").
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


#: An ISO 8601 time; one without a zone is taken as UTC.
Timestamp = Annotated[datetime, AfterValidator(_assume_utc)]


def _new_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(UTC)


class Event(BaseModel):
    """One event. Each type in the catalog has a subclass whose ``data`` is its payload."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: EventId = Field(default_factory=_new_id)
    type: str
    data: Payload
    timestamp: Timestamp = Field(default_factory=_now)
    audience: Audience = Field(default_factory=Everyone)

    @field_serializer("data")
    def _given_fields_only(self, data: Payload, info: SerializationInfo) -> dict[str, Any]:
        # Browsers get what the producer wrote, not nulls for every optional field.
        return data.model_dump(mode=info.mode, exclude_unset=True)

    @classmethod
    def of(
        cls,
        data: Payload,
        *,
        audience: Audience | None = None,
        id: str | None = None,
        timestamp: datetime | None = None,
    ) -> Event:
        """Wrap a payload; its class says the type. Omitted fields get a new id, now, everyone."""
        fields: dict[str, Any] = {"type": data.event_type, "data": data}
        for name, value in (("audience", audience), ("id", id), ("timestamp", timestamp)):
            if value is not None:
                fields[name] = value
        return EVENT_VARIANTS[data.event_type](**fields)

    def to_json(self) -> bytes:
        """The event as UTF-8 JSON, as RabbitMQ and browsers receive it."""
        return self.model_dump_json().encode()


B = TypeVar("B", bound=BaseModel)


def tagged_union(base: type[B], *, tag: str, body: str, suffix: str) -> dict[str, type[B]]:
    """One subclass of ``base`` per event type: ``tag`` is the type name, ``body`` its payload.

    Validating against the union of these picks the payload model by the tag
    and, for a tag it does not know, lists the known ones.
    """
    return {
        name: create_model(
            f"{payload.__name__}{suffix}",
            __base__=base,
            __module__=base.__module__,
            __doc__=payload.__doc__,
            **{tag: (Literal[name], ...), body: (payload, ...)},  # type: ignore[call-overload]
        )
        for name, payload in CATALOG.items()
    }


def discriminated(variants: dict[str, type[B]], tag: str) -> Any:
    """The union of ``variants``, told apart by their ``tag`` field, as an annotation."""
    union: Any = Union[tuple(variants.values())]  # noqa: UP007 - built at run time
    return Annotated[union, Field(discriminator=tag)]


#: Every name that picks a model inside a union, for error messages.
UNION_TAGS = frozenset(CATALOG) | {"all", "role", "user"}

#: The model of each event type, by name.
EVENT_VARIANTS = tagged_union(Event, tag="type", body="data", suffix="Event")

#: Any event, its payload model chosen by ``type``: an annotation for larger models.
AnyEvent: Any = discriminated(EVENT_VARIANTS, "type")

#: Validates any event.
EVENTS: TypeAdapter[Event] = TypeAdapter(AnyEvent)


def parse_event(raw: bytes | str) -> Event:
    """Read one event from JSON.

    Raises :class:`~schemas.exceptions.NotJSON` or
    :class:`~schemas.exceptions.InvalidEvent`; the latter lists every field
    that is wrong and, for an unknown ``type``, the known ones.
    """
    try:
        return EVENTS.validate_json(raw)
    except ValidationError as exc:
        raise SchemaError.from_validation(exc, UNION_TAGS) from exc
