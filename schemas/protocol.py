"""The browser protocol besides events: what clients send, the ``bridge:*`` replies,
and why a connection closes (WebSocket close codes; ``bridge:close`` on Server-Sent Events)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

from schemas.envelope import EventId
from schemas.exceptions import SchemaError
from schemas.payload import CHANNEL_HINT, CHANNEL_NAME

__all__ = [
    "CHANNEL_CLAIM",
    "CHANNEL_PATTERN_CLAIM",
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_TOKEN_EXPIRED",
    "CLOSE_TOO_SLOW",
    "CLOSE_UNAUTHORIZED",
    "JWT_ALGORITHM",
    "MIN_SECRET_LENGTH",
    "MONITOR_SCOPE",
    "AuthMessage",
    "ClientMessage",
    "CloseMessage",
    "ErrorMessage",
    "JoinMessage",
    "LeaveMessage",
    "PingMessage",
    "PongMessage",
    "RefreshMessage",
    "RefusedMessage",
    "ResetMessage",
    "ResumeMessage",
    "SubscribeMessage",
    "SubscribedMessage",
    "UnsubscribeMessage",
    "UnsubscribedMessage",
    "WelcomeMessage",
    "parse_client_message",
    "subscription_claims",
    "token_claims",
]

_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)

#: How tokens are signed, by the bridge and by Django alike.
JWT_ALGORITHM = "HS256"
#: HS256 needs a key of at least 256 bits (RFC 7518, section 3.2): the shortest
#: secret either side accepts.
MIN_SECRET_LENGTH = 32

#: The ``scope`` claim of an operator's token: it sees every event, whatever its
#: audience (the dashboard, ``event-bridge tail --all``).
MONITOR_SCOPE = "monitor"

#: The claim of a connection token that lists the channels it may subscribe to:
#: exact names (``order:42``) or patterns where ``*`` stands for any characters
#: (``order:*``).
CHANNEL_PATTERN_CLAIM = "channels"
#: What a name or pattern of that claim may hold: a channel's characters, and ``*``.
CHANNEL_PATTERN = re.compile(CHANNEL_NAME.pattern.replace("@+", "@+*"))

#: The claim of a subscription token: the one channel it allows. A token with
#: it never opens a connection.
CHANNEL_CLAIM = "channel"


#: The bridge is stopping: reconnect (to another instance) and resume.
CLOSE_GOING_AWAY = 1001
#: Handling the client's input failed on the bridge's side: reconnect and resume.
CLOSE_INTERNAL_ERROR = 1011
#: The client reads too slowly: what it left unread passed its bound. Reconnect and resume.
CLOSE_TOO_SLOW = 1013
#: A token that is missing, forged or expired after the handshake.
CLOSE_UNAUTHORIZED = 4401
#: The token expired without a ``bridge:refresh`` answered: connect again with a
#: new token, and resume.
CLOSE_TOKEN_EXPIRED = 4419


def token_claims(
    user: str,
    roles: Iterable[str],
    *,
    ttl: timedelta,
    issuer: str | None = None,
    audience: str | None = None,
    monitor: bool = False,
    channels: Iterable[str] = (),
) -> dict[str, object]:
    """The claims of a token the bridge accepts, for the bridge and Django to sign alike.

    ``channels``: the channels the connection may subscribe to, by name or pattern.
    """
    claims: dict[str, object] = {
        "sub": user,
        "roles": sorted(roles),
        "exp": datetime.now(UTC) + ttl,
    }
    channels = sorted(channels)
    for pattern in channels:
        if not CHANNEL_PATTERN.fullmatch(pattern):
            raise ValueError(
                f"channel pattern {pattern!r}: {CHANNEL_HINT}, and * for any characters"
            )
    if channels:
        claims[CHANNEL_PATTERN_CLAIM] = channels
    if monitor:
        claims["scope"] = MONITOR_SCOPE
    return _issued(claims, issuer, audience)


def subscription_claims(
    channel: str,
    user: str | None,
    *,
    ttl: timedelta,
    issuer: str | None = None,
    audience: str | None = None,
) -> dict[str, object]:
    """The claims of a subscription token: ``user``'s connections (any connection,
    anonymous ones included, for ``None``) may subscribe to ``channel`` until it expires."""
    claims: dict[str, object] = {CHANNEL_CLAIM: channel, "exp": datetime.now(UTC) + ttl}
    if user is not None:
        claims["sub"] = user
    return _issued(claims, issuer, audience)


def _issued(
    claims: dict[str, object], issuer: str | None, audience: str | None
) -> dict[str, object]:
    """``claims`` with the ``iss`` and ``aud`` the bridge checks, when it checks them."""
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return claims


class AuthMessage(BaseModel):
    """``{"op": "auth", "token": "…"}``: the first message, when the URL had no token."""

    model_config = _CONFIG

    op: Literal["auth"]
    token: Annotated[str, StringConstraints(min_length=1, max_length=8192)]


class ResumeMessage(BaseModel):
    """``{"op": "resume", "after": "<last id seen>"}``: replay what this connection missed.

    Without ``after``, the whole history is replayed: what a client with no
    state yet sends, so that nothing falls between loading and going live.
    """

    model_config = _CONFIG

    op: Literal["resume"]
    after: EventId | None = None


class PingMessage(BaseModel):
    """``{"op": "ping"}``: answered by ``bridge:pong``."""

    model_config = _CONFIG

    op: Literal["ping"]


#: A channel as a client names it: checked by the bridge, which refuses a name that
#: cannot be a channel (empty or too long included) with ``bridge:refused`` like any
#: other refusal. The bound only keeps the refusal, which repeats it, short.
_AskedChannel = Annotated[str, StringConstraints(max_length=1024)]


class SubscribeMessage(BaseModel):
    """``{"op": "subscribe", "channel": "order:42"}``: receive the channel's events.

    Allowed when the connection's token lists the channel (claim ``channels``) or
    ``token`` is a subscription token for it. With ``after`` (the last event of
    the channel this client saw), what it missed is replayed first. With
    ``presence``, ``bridge:join`` and ``bridge:leave`` say who comes and goes.
    Answered by ``bridge:subscribed`` or ``bridge:refused``.
    """

    model_config = _CONFIG

    op: Literal["subscribe"]
    channel: _AskedChannel
    token: Annotated[str, StringConstraints(min_length=1, max_length=8192)] | None = None
    after: EventId | None = None
    presence: bool = False


class UnsubscribeMessage(BaseModel):
    """``{"op": "unsubscribe", "channel": "order:42"}``: no more of the channel's events."""

    model_config = _CONFIG

    op: Literal["unsubscribe"]
    channel: _AskedChannel


AnyClientMessage = AuthMessage | ResumeMessage | PingMessage | SubscribeMessage | UnsubscribeMessage
ClientMessage = Annotated[AnyClientMessage, Field(discriminator="op")]

_CLIENT_MESSAGES: TypeAdapter[AnyClientMessage] = TypeAdapter(ClientMessage)
_OPS = {"auth", "resume", "ping", "subscribe", "unsubscribe"}


def parse_client_message(raw: bytes | str) -> AnyClientMessage:
    """Read one client message.

    Raises :class:`~schemas.exceptions.SchemaError` saying what is wrong.
    """
    try:
        return _CLIENT_MESSAGES.validate_json(raw)
    except ValidationError as exc:
        raise SchemaError.from_validation(exc, _OPS) from exc


class WelcomeMessage(BaseModel):
    """Sent first on every connection: who the bridge thinks you are."""

    type: Literal["bridge:welcome"] = "bridge:welcome"
    user: str | None
    roles: list[str]
    instance: str


class PongMessage(BaseModel):
    """The answer to ``{"op": "ping"}``."""

    type: Literal["bridge:pong"] = "bridge:pong"


class RefreshMessage(BaseModel):
    """The connection's token expires in ``seconds``: send ``{"op": "auth", "token"}``
    with a new one for the same user, or the bridge closes the connection then (4419).
    """

    type: Literal["bridge:refresh"] = "bridge:refresh"
    seconds: int


class ResetMessage(BaseModel):
    """Some events after your ``resume`` id are gone: reload your state.

    ``lost`` names the streams whose missed events are gone: ``all`` (events for
    everyone), ``role:<role>``, ``user:<id>``. The missed events of the others
    still follow, so a user's notifications outlive a busy stream of broadcasts.
    ``latest`` is the newest event this connection may see (``None`` if none):
    once the state is reloaded, resume after it.
    """

    type: Literal["bridge:reset"] = "bridge:reset"
    latest: str | None
    lost: list[str] = []


class SubscribedMessage(BaseModel):
    """The answer to ``subscribe``: the channel's events come from now on.

    ``recovered`` answers a subscribe with ``after``: true when every event of
    the channel after it follows, false when some are gone (reload what the
    channel shows). ``None`` without ``after``.
    """

    type: Literal["bridge:subscribed"] = "bridge:subscribed"
    channel: str
    recovered: bool | None = None


class UnsubscribedMessage(BaseModel):
    """The channel's events stop: you asked (``reason`` empty), or the bridge ended it."""

    type: Literal["bridge:unsubscribed"] = "bridge:unsubscribed"
    channel: str
    reason: str = ""


class RefusedMessage(BaseModel):
    """A ``subscribe`` that was not allowed, and why; nothing of the channel comes."""

    type: Literal["bridge:refused"] = "bridge:refused"
    channel: str
    reason: str


class JoinMessage(BaseModel):
    """A user connected to a channel whose presence you follow (``"presence": true``)."""

    type: Literal["bridge:join"] = "bridge:join"
    channel: str
    user: str


class LeaveMessage(BaseModel):
    """A user's last connection to the channel is gone."""

    type: Literal["bridge:leave"] = "bridge:leave"
    channel: str
    user: str


class ErrorMessage(BaseModel):
    """A message the bridge could not understand; the connection stays open."""

    type: Literal["bridge:error"] = "bridge:error"
    error: str
    #: For a message that does not fit: each field that is wrong (``loc``, ``msg``, ``type``).
    detail: list[dict[str, Any]] = []


class CloseMessage(BaseModel):
    """The last message of a Server-Sent Events stream, which has no close frame:
    the same ``code`` and ``reason`` a WebSocket would close with."""

    type: Literal["bridge:close"] = "bridge:close"
    code: int
    reason: str
