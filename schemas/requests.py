"""The bodies of the four POST endpoints of the HTTP API, as the seed sends them.

Each body names an event type and carries its data; a
:class:`~schemas.reader.Reader` picks the model of a catalog type, or the
untyped one for any other name.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from schemas.audience import Audience, Channel, Everyone, Role, User
from schemas.envelope import Event, EventId, Timestamp
from schemas.payload import ChannelName, Name, Payload

__all__ = ["ENDPOINTS", "Body", "EmitEvent", "NotifyRole", "NotifyUser", "Publish"]

#: The POST endpoints of ``/api/dashboard/``, by their last path segment.
ENDPOINTS = ("emit-event", "update-dashboard", "notify-role", "notify-user", "publish")

_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


class Body(BaseModel):
    """A body that names its event type in one field and carries the data in another."""

    model_config = _CONFIG

    def to_event(self) -> Event:
        """The event the body asks for."""
        raise NotImplementedError


def _event(
    type_: str,
    data: object,
    audience: Audience,
    *,
    id: str | None = None,
    timestamp: datetime | None = None,
) -> Event:
    # The reader chose the model: a payload when the catalog types it, JSON as sent otherwise.
    if isinstance(data, Payload):
        return Event.of(data, audience=audience, id=id, timestamp=timestamp)
    return Event.untyped(
        type_, cast(JsonValue, data), audience=audience, id=id, timestamp=timestamp
    )


class EmitEvent(Body):
    """``POST /api/dashboard/emit-event``: an event for every connection."""

    type: str
    data: object
    timestamp: Timestamp | None = None
    id: EventId | None = Field(
        default=None, description="Send the same id twice and it is delivered once."
    )

    def to_event(self) -> Event:
        return _event(self.type, self.data, Everyone(), id=self.id, timestamp=self.timestamp)


class NotifyRole(Body):
    """``POST /api/dashboard/notify-role``: an event for every connection with a role."""

    role: Name
    event: str
    payload: object

    def to_event(self) -> Event:
        return _event(self.event, self.payload, Role(role=self.role))


class NotifyUser(Body):
    """``POST /api/dashboard/notify-user``: an event for every connection of one user."""

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, validate_by_name=True, serialize_by_alias=True
    )

    user_id: Name = Field(alias="userId")
    event: str
    payload: object

    def to_event(self) -> Event:
        return _event(self.event, self.payload, User(user=self.user_id))


class Publish(Body):
    """``POST /api/dashboard/publish``: an event for the subscribers of one channel."""

    channel: ChannelName
    event: str
    payload: object
    id: EventId | None = Field(
        default=None, description="Send the same id twice and it is delivered once."
    )

    def to_event(self) -> Event:
        return _event(self.event, self.payload, Channel(channel=self.channel), id=self.id)
