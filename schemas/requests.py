"""The bodies of the four POST endpoints of the HTTP API, as the seed sends them.

``ENDPOINTS["emit-event"].read(body)`` returns the event a raw body asks for,
or says what is wrong with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.audience import Everyone, Role, User
from schemas.catalog import DashboardUpdate
from schemas.envelope import UNION_TAGS, Event, EventId, Timestamp, discriminated, tagged_union
from schemas.exceptions import SchemaError
from schemas.payload import Name, Payload

__all__ = ["ENDPOINTS", "EmitEvent", "Endpoint", "NotifyRole", "NotifyUser"]

_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


class EmitEvent(BaseModel):
    """``POST /api/dashboard/emit-event``: a business event for every connection."""

    model_config = _CONFIG

    type: str
    data: Payload
    timestamp: Timestamp | None = None
    id: EventId | None = Field(
        default=None, description="Send the same id twice and it is delivered once."
    )

    def to_event(self) -> Event:
        return Event.of(self.data, audience=Everyone(), id=self.id, timestamp=self.timestamp)


class NotifyRole(BaseModel):
    """``POST /api/dashboard/notify-role``: an event for every connection with a role."""

    model_config = _CONFIG

    role: Name
    event: str
    payload: Payload

    def to_event(self) -> Event:
        return Event.of(self.payload, audience=Role(role=self.role))


class NotifyUser(BaseModel):
    """``POST /api/dashboard/notify-user``: an event for every connection of one user."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    user_id: Name = Field(alias="userId")
    event: str
    payload: Payload

    def to_event(self) -> Event:
        return Event.of(self.payload, audience=User(user=self.user_id))


@dataclass(frozen=True)
class Endpoint:
    """How one POST endpoint reads its body: its validator, and the event the body asks for."""

    body: TypeAdapter[Any]
    to_event: Callable[[Any], Event]

    def read(self, raw: bytes | str) -> Event:
        """The event to publish for this raw body.

        Raises :class:`~schemas.exceptions.NotJSON` (answer 400) or
        :class:`~schemas.exceptions.InvalidEvent` (answer 422).
        """
        try:
            body = self.body.validate_json(raw)
        except ValidationError as exc:
            raise SchemaError.from_validation(exc, UNION_TAGS) from exc
        return self.to_event(body)


#: Each POST endpoint of ``/api/dashboard/``, by its last path segment.
ENDPOINTS: dict[str, Endpoint] = {
    "emit-event": Endpoint(
        TypeAdapter(
            discriminated(tagged_union(EmitEvent, tag="type", body="data", suffix="Emit"), "type")
        ),
        EmitEvent.to_event,
    ),
    "update-dashboard": Endpoint(TypeAdapter(DashboardUpdate), Event.of),
    "notify-role": Endpoint(
        TypeAdapter(
            discriminated(
                tagged_union(NotifyRole, tag="event", body="payload", suffix="ForRole"), "event"
            )
        ),
        NotifyRole.to_event,
    ),
    "notify-user": Endpoint(
        TypeAdapter(
            discriminated(
                tagged_union(NotifyUser, tag="event", body="payload", suffix="ForUser"), "event"
            )
        ),
        NotifyUser.to_event,
    ),
}
