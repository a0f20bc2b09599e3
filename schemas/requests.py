"""The bodies of the four POST endpoints of the HTTP API, as the seed sends them.

Each ``read_*`` function takes the raw body and returns the event to publish,
or raises :class:`~schemas.exceptions.NotJSON` (answer 400) or
:class:`~schemas.exceptions.InvalidEvent` (answer 422).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from schemas.audience import Everyone, Role, User
from schemas.catalog import DashboardUpdate
from schemas.envelope import UNION_TAGS, Event, EventId, Timestamp, discriminated, tagged_union
from schemas.exceptions import SchemaError
from schemas.payload import Name, Payload

__all__ = [
    "REQUEST_BODIES",
    "EmitEvent",
    "NotifyRole",
    "NotifyUser",
    "read_emit_event",
    "read_notify_role",
    "read_notify_user",
    "read_update_dashboard",
]

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


#: The validator of each POST endpoint's body, by the endpoint's last path segment.
REQUEST_BODIES: dict[str, TypeAdapter[Any]] = {
    "emit-event": discriminated(
        tagged_union(EmitEvent, tag="type", body="data", suffix="Emit"), "type"
    ),
    "update-dashboard": TypeAdapter(DashboardUpdate),
    "notify-role": discriminated(
        tagged_union(NotifyRole, tag="event", body="payload", suffix="ForRole"), "event"
    ),
    "notify-user": discriminated(
        tagged_union(NotifyUser, tag="event", body="payload", suffix="ForUser"), "event"
    ),
}


def _reader(endpoint: str, to_event: Callable[[Any], Event]) -> Callable[[bytes | str], Event]:
    adapter = REQUEST_BODIES[endpoint]

    def read(raw: bytes | str) -> Event:
        try:
            body = adapter.validate_json(raw)
        except ValidationError as exc:
            raise SchemaError.from_validation(exc, UNION_TAGS) from exc
        return to_event(body)

    read.__doc__ = (
        f"Read the body of ``POST /api/dashboard/{endpoint}`` into the event it asks for."
    )
    return read


read_emit_event = _reader("emit-event", EmitEvent.to_event)
read_update_dashboard = _reader("update-dashboard", Event.of)
read_notify_role = _reader("notify-role", NotifyRole.to_event)
read_notify_user = _reader("notify-user", NotifyUser.to_event)
