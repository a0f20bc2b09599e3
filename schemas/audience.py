"""Who may receive an event: everyone, one role, one user on every device, or the
subscribers of one channel."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.payload import ChannelName, Name

__all__ = [
    "EVERYONE_STREAM",
    "Audience",
    "Channel",
    "Everyone",
    "Role",
    "User",
    "channel_stream",
    "role_stream",
    "stream_of",
    "user_stream",
]

_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


class Everyone(BaseModel):
    """Every connection, anonymous ones included."""

    model_config = _CONFIG

    kind: Literal["all"] = "all"


class Role(BaseModel):
    """Connections whose token carries this role."""

    model_config = _CONFIG

    kind: Literal["role"] = "role"
    role: Name


class User(BaseModel):
    """Every connection of this user (the token's ``sub``)."""

    model_config = _CONFIG

    kind: Literal["user"] = "user"
    user: Name


class Channel(BaseModel):
    """Connections subscribed to this channel (``order:42``), each allowed by the backend."""

    model_config = _CONFIG

    kind: Literal["channel"] = "channel"
    channel: ChannelName


Audience = Annotated[Everyone | Role | User | Channel, Field(discriminator="kind")]


#: The stream of the events for everyone.
EVERYONE_STREAM = "all"


def role_stream(role: str) -> str:
    return f"role:{role}"


def user_stream(user: str) -> str:
    return f"user:{user}"


def channel_stream(channel: str) -> str:
    return f"channel:{channel}"


def stream_of(audience: Everyone | Role | User | Channel) -> str:
    """The history stream of an audience's events, as ``bridge:reset`` names it:
    ``all``, ``role:<role>``, ``user:<id>`` or ``channel:<channel>``."""
    match audience:
        case Role(role=role):
            return role_stream(role)
        case User(user=user):
            return user_stream(user)
        case Channel(channel=channel):
            return channel_stream(channel)
        case _:
            return EVERYONE_STREAM
