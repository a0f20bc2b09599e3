"""Who receives each event: the bridge's pure core, with no I/O and no ``await``.

The router indexes subscribers by role, by user and by channel, in
:class:`~bridge.group.Group` s, so routing an event costs nothing for a
subscriber outside its audience, and the subscribers that keep up get it in one
tight loop of writes. It keeps the
history by stream for ``resume`` (:class:`~bridge.streams.Streams`), the
latest dashboard snapshot for new connections, and the ids it has seen, so an
event redelivered by RabbitMQ reaches nobody twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterable, Iterator, Set
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any, Generic, Protocol, TypeVar

from bridge.group import Group, Member
from bridge.streams import Entry, Streams
from schemas import DASHBOARD, Event, Everyone
from schemas.audience import (
    EVERYONE_STREAM,
    Channel,
    Role,
    User,
    role_stream,
    stream_of,
    user_stream,
)

__all__ = ["ANONYMOUS", "Entry", "Principal", "Recipients", "Router", "Subscriber"]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is on a connection: a user and roles from a token, or nobody.

    A *monitor* (the operators' dashboard) sees every event, whatever its audience.
    """

    user: str | None
    roles: frozenset[str] = frozenset()
    monitor: bool = False
    #: When the token expires (seconds since the epoch); ``None``: it does not.
    expires: float | None = field(default=None, compare=False)
    #: The channels its token lets it subscribe to: names, or patterns with ``*``.
    channels: tuple[str, ...] = ()

    @property
    def streams(self) -> list[str]:
        """The history streams of its audiences: everyone's, its roles', its own."""
        names = [EVERYONE_STREAM, *map(role_stream, sorted(self.roles))]
        return names if self.user is None else [*names, user_stream(self.user)]

    def sees(self, stream: str) -> bool:
        """Whether the events of ``stream`` are for this principal (channels aside)."""
        return self.monitor or stream in self.streams

    def allows(self, channel: str) -> bool:
        """Whether its token lets it subscribe to ``channel``."""
        return self.monitor or any(fnmatchcase(channel, p) for p in self.channels)


#: An anonymous connection: it sees only events for everyone.
ANONYMOUS = Principal(user=None)


class Subscriber(Member, Protocol):
    """Anything the router can address: it says who is on it, what it subscribed to,
    and whether it keeps up (:class:`~bridge.group.Member`)."""

    @property
    def principal(self) -> Principal: ...

    @property
    def channels(self) -> Collection[str]: ...


S = TypeVar("S", bound=Subscriber)


@dataclass(frozen=True, slots=True)
class Recipients(Generic[S]):
    """Who gets one event: its audience's group, whose live members get it written at
    once, and those who get it through their mailbox (the group's queued members, and
    the monitors outside it)."""

    group: Group[S]
    queued: Set[S]

    def __len__(self) -> int:
        return len(self.group.live) + len(self.group.batched) + len(self.queued)

    def __iter__(self) -> Iterator[S]:
        yield from self.group.live
        yield from self.group.batched
        yield from self.queued


class Router(Generic[S]):
    """Routes events to subscribers and remembers enough to replay them.

    Args:
        history_size: events each stream keeps for ``resume``.
        history_ttl: seconds an event is kept for ``resume``.
        history_ids: positions of recent events kept (how far back a client may resume).
        history_bytes: bytes of JSON the history keeps for every stream together.
        dedup_size: ids remembered to drop duplicates, however old.
        clock: seconds since the epoch.
    """

    def __init__(
        self,
        *,
        history_size: int = 100,
        history_ttl: float = 3600.0,
        history_ids: int = 100_000,
        history_bytes: int = 64 * 1024 * 1024,
        dedup_size: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._everyone: Group[S] = Group()
        self._by_role: dict[str, Group[S]] = {}
        self._by_user: dict[str, Group[S]] = {}
        self._by_channel: dict[str, Group[S]] = {}
        # Never live (see join): they get every event through their mailbox.
        self._monitors: set[S] = set()
        self.streams = Streams(
            size=history_size,
            ttl=history_ttl,
            max_ids=max(history_ids, dedup_size),
            min_ids=dedup_size,
            max_bytes=history_bytes,
        )
        self._clock = clock
        self._seq = 0
        self.snapshot: Entry | None = None

    # Subscribers

    def join(self, subscriber: S) -> None:
        """Start routing events to ``subscriber``, as its principal and channels allow.

        A monitor sees the events of every audience, which it is not a member of:
        it is never live (:meth:`set_live`).
        """
        principal = subscriber.principal
        if principal.monitor:
            subscriber.live = False
            self._monitors.add(subscriber)
        self._everyone.add(subscriber)
        for role in principal.roles:
            self._by_role.setdefault(role, Group()).add(subscriber)
        if principal.user is not None:
            self._by_user.setdefault(principal.user, Group()).add(subscriber)
        for channel in subscriber.channels:
            self._by_channel.setdefault(channel, Group()).add(subscriber)

    def leave(self, subscriber: S) -> None:
        """Stop routing to ``subscriber``; it may never have joined."""
        principal = subscriber.principal
        self._everyone.discard(subscriber)
        self._monitors.discard(subscriber)
        for role in principal.roles:
            _discard(self._by_role, role, subscriber)
        if principal.user is not None:
            _discard(self._by_user, principal.user, subscriber)
        for channel in subscriber.channels:
            _discard(self._by_channel, channel, subscriber)
        subscriber.live = False  # in no group: it joins again queued

    def set_live(self, subscriber: S, live: bool) -> None:
        """Write events straight to a joined ``subscriber``, or queue them for it; a
        monitor stays queued (it is never live)."""
        if subscriber.live == live or (live and subscriber in self._monitors):
            return
        subscriber.live = live
        for group in self._groups(subscriber):
            group.move(subscriber)

    def _groups(self, subscriber: S) -> Iterator[Group[S]]:
        """The groups ``subscriber`` is in."""
        principal = subscriber.principal
        yield self._everyone
        for role in principal.roles:
            yield self._by_role[role]
        if principal.user is not None:
            yield self._by_user[principal.user]
        for channel in subscriber.channels:
            yield self._by_channel[channel]

    def subscribe(self, subscriber: S, channel: str) -> None:
        """Route ``channel``'s events to a joined ``subscriber`` too."""
        self._by_channel.setdefault(channel, Group()).add(subscriber)

    def unsubscribe(self, subscriber: S, channel: str) -> None:
        _discard(self._by_channel, channel, subscriber)

    @property
    def subscribers(self) -> int:
        return len(self._everyone)

    def count_by_role(self) -> dict[str, int]:
        """Connections per role; a connection with several roles counts in each."""
        return {role: len(subs) for role, subs in sorted(self._by_role.items())}

    def by_channel(self) -> dict[str, Group[S]]:
        """The subscribers of each channel."""
        return self._by_channel

    # Events

    def accept(self, event: Event, received: float | None = None) -> Entry | None:
        """Record ``event`` and number it; ``None`` if its id was already seen."""
        if event.id in self.streams:
            return None
        self._seq += 1
        stream = stream_of(event.audience)
        at = self._clock() if received is None else received
        entry = Entry(self._seq, event.id, stream, event.to_json(), at)
        self.streams.add(entry)
        if event.type == DASHBOARD and isinstance(event.audience, Everyone):
            self.snapshot = entry
        return entry

    def recipients(self, event: Event) -> Recipients[S]:
        """The subscribers that may see ``event``; only those are visited."""
        match event.audience:
            case Role(role=role):
                group = self._by_role.get(role, _EMPTY)
            case User(user=user):
                group = self._by_user.get(user, _EMPTY)
            case Channel(channel=channel):
                group = self._by_channel.get(channel, _EMPTY)
            case _:
                return Recipients(self._everyone, self._everyone.queued)
        # Monitors are few (dashboards), so the union is cheap when there are any.
        queued = group.queued | self._monitors if self._monitors else group.queued
        return Recipients(group, queued)

    def restore(self, saved: Iterable[tuple[float, Event | tuple[str, str]]]) -> None:
        """Load history saved by an earlier run, oldest first, before any subscriber joins:
        events, and ``(id, stream)`` for those whose stream had already let them go."""
        for received, item in saved:
            if isinstance(item, Event):
                self.accept(item, received)
            elif item[0] not in self.streams:
                self._seq += 1
                self.streams.skip(item[0], self._seq, item[1], received)

    # History

    @property
    def head(self) -> int:
        """The number of the latest accepted event, 0 before the first."""
        return self._seq

    def history(self, principal: Principal) -> list[Entry]:
        """The recent events of ``principal``'s streams (every stream for a monitor),
        oldest first."""
        return self.streams.entries(None if principal.monitor else principal.streams)

    def replay(
        self, names: Iterable[str] | None, after: int, *, until: int
    ) -> tuple[list[Entry], list[str]]:
        """The events of the ``names`` streams (all of them for ``None``) numbered after
        ``after`` up to ``until``, and the streams that lost some of them."""
        return self.streams.replay(names, after, until=until, now=self._clock())

    def latest(self, names: Iterable[str] | None) -> str | None:
        """The id of the newest event kept in the ``names`` streams."""
        entry = self.streams.latest(names)
        return None if entry is None else entry.id

    def seq_of(self, event_id: str) -> int | None:
        """The number of a recent event by id, if its position is still kept."""
        return self.streams.seq_of(event_id)


#: The group of an audience nobody is in: never added to.
_EMPTY: Group[Any] = Group()


def _discard(index: dict[str, Group[S]], key: str, subscriber: S) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(subscriber)
        if not members:
            del index[key]
