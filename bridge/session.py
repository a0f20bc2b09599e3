"""One connection as the hub sees it, whatever its transport.

A :class:`Session` holds what delivery needs to know about a connection: who
is on it, where it stands (:class:`Phase`), what it still has to send, and how
far behind it is. The transport sits behind two small interfaces: a
:class:`Link` carries bytes, a :class:`Framing` turns events and ``bridge:*``
messages into those bytes. The hub drives sessions; a transport reports back
through :class:`Inbox`. Neither side imports the other.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from bridge.mailbox import Mailbox
from bridge.router import ANONYMOUS, Entry, Principal

__all__ = ["Framing", "Inbox", "Link", "Phase", "Session", "Subscription"]

_ids = itertools.count(1)


class Phase(enum.Enum):
    """Where a connection stands; events go only to ``ANONYMOUS`` and ``AUTHENTICATED``."""

    #: Open, waiting for ``{"op": "auth"}`` within ``auth_timeout``; nothing is delivered.
    AWAITING_TOKEN = enum.auto()
    #: Receiving the events for everyone, without a token (``--allow-anonymous``).
    ANONYMOUS = enum.auto()
    #: Receiving what its token's user and roles may see.
    AUTHENTICATED = enum.auto()
    #: Saying goodbye: nothing more is delivered, the socket is cut if the peer lingers.
    CLOSING = enum.auto()


class Link(Protocol):
    """The bytes side of a transport: what the hub needs from a socket."""

    def write(self, data: bytes) -> None:
        """Queue ``data`` for the peer; never waits."""

    def buffered(self) -> int:
        """Bytes written but not yet taken by the peer."""

    def ping(self) -> bool:
        """Send a keepalive; false if the peer is known to be gone."""

    def close(self, code: int, reason: str) -> None:
        """Say goodbye the transport's way; the hub cuts the socket if that takes too long."""

    def abort(self) -> None:
        """Cut the socket now."""


class Framing(Protocol):
    """How a transport frames what the hub sends.

    A framing shared by all of a transport's connections caches its frame on
    the :class:`~bridge.router.Entry`, so an event is framed once per transport,
    not once per connection.
    """

    #: Whether every connection of the transport gets the same bytes for an event,
    #: so that those keeping up can be written to in one loop (a compressing
    #: connection has a framing of its own).
    shared: bool

    def events(self, entries: list[Entry], *, batch: bool) -> bytes:
        """``entries`` ready to write: one frame each, or one frame for all with ``batch``."""

    def message(self, payload: bytes) -> bytes:
        """A ``bridge:*`` message."""

    def reset(self, payload: bytes, latest: str | None) -> bytes:
        """A ``bridge:reset`` message: the client resumes after ``latest`` next time."""


class Inbox(Protocol):
    """What a transport tells the hub about its session, and asks of it."""

    def on_message(self, session: Session, data: bytes) -> None:
        """A whole text message from the client."""

    def on_write(self, session: Session) -> None:
        """The transport wrote on its own (a pong): the buffer may have grown."""

    def on_paused(self, session: Session) -> None:
        """The socket took less than was written: bytes wait in its buffer."""

    def on_resumed(self, session: Session) -> None:
        """The socket's buffer is empty again."""

    def on_closed(self, session: Session, code: int | None, reason: str | None) -> None:
        """The socket is gone, closed with ``code`` and ``reason`` if the transport has them."""

    def refuse(self, session: Session, error: str) -> None:
        """Answer input the transport cannot take with ``bridge:error``; the connection stays."""

    def close(self, session: Session, code: int, reason: str) -> None:
        """Stop delivering and close: the client broke a rule, or started closing."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """How a connection came to receive one channel."""

    #: Allowed by the connection token's ``channels`` claim (checked again on refresh),
    #: rather than by a subscription token.
    by_claim: bool
    #: The client asked for ``bridge:join`` and ``bridge:leave``.
    presence: bool = False


class Session:
    """A connection's delivery state, from its handshake until its socket closes."""

    __slots__ = (
        "after",
        "allowance",
        "batch",
        "buffered",
        "channels",
        "expiry",
        "framing",
        "holds",
        "id",
        "link",
        "live",
        "mailbox",
        "opened",
        "paused",
        "phase",
        "principal",
        "remote",
        "timer",
        "transport",
        "wanted",
        "write",
    )

    def __init__(
        self,
        link: Link,
        framing: Framing,
        *,
        transport: str,
        batch: bool,
        remote: str,
        after: str | None = None,
        holds: bool = True,
        wanted: tuple[tuple[str | None, str | None], ...] = (),
    ) -> None:
        self.link = link
        self.framing = framing
        #: The link's write, for the hub's loop over the sessions that keep up.
        self.write = link.write
        #: The transport's name for logs and metrics: ``ws`` or ``sse``.
        self.transport = transport
        self.batch = batch
        self.remote = remote
        #: The event its request said to resume after (``?after=``, ``Last-Event-ID``).
        self.after = after
        #: Whether live events wait, when it joins, for a ``resume`` it may still send;
        #: a stream cannot send one.
        self.holds = holds
        #: Channels its request asked for (:mod:`bridge.channels`): a name, or a
        #: subscription token that names one.
        self.wanted = wanted
        #: The channels it receives.
        self.channels: dict[str, Subscription] = {}
        self.id = next(_ids)
        self.opened = time.monotonic()
        self.phase = Phase.AWAITING_TOKEN
        self.principal: Principal = ANONYMOUS
        #: Replaced when the session first joins: it then counts from the router's head.
        self.mailbox = Mailbox(joined=0)
        #: Bytes of an oversized burst still waiting that do not count as too slow.
        self.allowance = 0
        #: Bytes waiting in the link before its last write (the hub sums them).
        self.buffered = 0
        #: Whether events are written to it as they come, rather than queued in its
        #: mailbox: it keeps up (:mod:`bridge.group`). The router moves it.
        self.live = False
        #: Whether bytes wait in its link: from the transport's pause to its resume.
        self.paused = False
        #: The one pending step of the connection's life: login, resume window, close.
        self.timer: asyncio.TimerHandle | None = None
        #: The token's end: first the refresh request, then the close.
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def receiving(self) -> bool:
        """Whether events are delivered to it."""
        return self.phase is Phase.ANONYMOUS or self.phase is Phase.AUTHENTICATED

    def set_timer(self, delay: float, callback: Callable[[], object]) -> None:
        """Replace the session's one pending timer."""
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(delay, callback)

    def set_expiry(self, delay: float, callback: Callable[[], object]) -> None:
        """Replace the pending step of the token's expiry."""
        self.cancel_expiry()
        self.expiry = asyncio.get_running_loop().call_later(max(delay, 0), callback)

    def cancel_expiry(self) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None

    def cancel_timers(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.cancel_expiry()
