"""Who receives each event: the bridge's pure core, with no I/O and no ``await``.

The router indexes subscribers by role and by user, so routing an event costs
nothing for a subscriber outside its audience. It keeps the last events for
``resume``, the latest dashboard snapshot for new connections, and the ids it
has seen, so an event redelivered by RabbitMQ reaches nobody twice.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from schemas import DASHBOARD, Event, Everyone, Role, User

__all__ = ["ANONYMOUS", "Entry", "Principal", "Router", "Subscriber"]


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

    def may_see(self, event: Event) -> bool:
        """Whether the event's audience includes this principal."""
        if self.monitor:
            return True
        match event.audience:
            case Role(role=role):
                return role in self.roles
            case User(user=user):
                return user == self.user
            case _:
                return True


#: An anonymous connection: it sees only events for everyone.
ANONYMOUS = Principal(user=None)


@dataclass(slots=True)
class Entry:
    """An accepted event, numbered in arrival order and encoded once for every recipient."""

    seq: int
    event: Event
    json: bytes
    #: The event framed for each transport, by its framing, built on first use
    #: (see :class:`bridge.session.Framing`).
    framed: dict[object, bytes] = field(default_factory=dict, repr=False)


class Subscriber(Protocol):
    """Anything the router can address: it only needs to say who is on it."""

    @property
    def principal(self) -> Principal: ...


S = TypeVar("S", bound=Subscriber)

_NOBODY: frozenset[Any] = frozenset()


class Router(Generic[S]):
    """Routes events to subscribers and remembers enough to replay them.

    Args:
        history_size: how many recent events ``resume`` can replay.
        dedup_size: how many recent ids are remembered to drop duplicates.
    """

    def __init__(self, *, history_size: int = 100, dedup_size: int = 10_000) -> None:
        self._everyone: set[S] = set()
        self._by_role: dict[str, set[S]] = {}
        self._by_user: dict[str, set[S]] = {}
        self._monitors: set[S] = set()
        self._history: deque[Entry] = deque(maxlen=history_size)
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._dedup_size = max(dedup_size, history_size)
        self._seq = 0
        self.snapshot: Entry | None = None

    # Subscribers

    def join(self, subscriber: S) -> None:
        """Start routing events to ``subscriber``, as its principal allows."""
        principal = subscriber.principal
        self._everyone.add(subscriber)
        if principal.monitor:
            self._monitors.add(subscriber)
        for role in principal.roles:
            self._by_role.setdefault(role, set()).add(subscriber)
        if principal.user is not None:
            self._by_user.setdefault(principal.user, set()).add(subscriber)

    def leave(self, subscriber: S) -> None:
        """Stop routing to ``subscriber``; it may never have joined."""
        principal = subscriber.principal
        self._everyone.discard(subscriber)
        self._monitors.discard(subscriber)
        for role in principal.roles:
            _discard(self._by_role, role, subscriber)
        if principal.user is not None:
            _discard(self._by_user, principal.user, subscriber)

    @property
    def subscribers(self) -> int:
        return len(self._everyone)

    def count_by_role(self) -> dict[str, int]:
        """Connections per role; a connection with several roles counts in each."""
        return {role: len(subs) for role, subs in sorted(self._by_role.items())}

    # Events

    def accept(self, event: Event) -> Entry | None:
        """Record ``event`` and number it; ``None`` if its id was already seen."""
        if event.id in self._seen:
            return None
        self._remember(event.id)
        self._seq += 1
        entry = Entry(self._seq, event, event.to_json())
        self._history.append(entry)
        if event.type == DASHBOARD and isinstance(event.audience, Everyone):
            self.snapshot = entry
        return entry

    def recipients(self, entry: Entry) -> Collection[S]:
        """The subscribers that may see ``entry``; only those are visited."""
        match entry.event.audience:
            case Role(role=role):
                targeted = self._by_role.get(role, _NOBODY)
            case User(user=user):
                targeted = self._by_user.get(user, _NOBODY)
            case _:
                return self._everyone
        # Monitors are few (dashboards), so the union is cheap when there are any.
        return targeted | self._monitors if self._monitors else targeted

    def restore(self, events: Iterable[Event]) -> None:
        """Load history saved by an earlier run, oldest first, before any subscriber joins."""
        for event in events:
            self.accept(event)

    # History

    @property
    def head(self) -> int:
        """The number of the latest accepted event, 0 before the first."""
        return self._seq

    def history(self) -> Iterator[Entry]:
        """The recent events, oldest first."""
        return iter(self._history)

    def replay(self, principal: Principal, after: str | None, *, until: int) -> list[Entry] | None:
        """The events after id ``after`` (or the whole history) up to number ``until``
        that ``principal`` may see.

        ``None`` when ``after`` is no longer in the history: the client must
        reload its state (``bridge:reset``).
        """
        after_seq = 0 if after is None else self.seq_of(after)
        if after_seq is None:
            return None
        return [
            e for e in self._history if after_seq < e.seq <= until and principal.may_see(e.event)
        ]

    def latest_for(self, principal: Principal) -> str | None:
        """The id of the newest event in the history that ``principal`` may see."""
        visible = (e.event.id for e in reversed(self._history) if principal.may_see(e.event))
        return next(visible, None)

    def seq_of(self, event_id: str) -> int | None:
        """The number of a recent event by id, if it is still in the history."""
        return next((e.seq for e in self._history if e.event.id == event_id), None)

    def _remember(self, event_id: str) -> None:
        self._seen[event_id] = None
        if len(self._seen) > self._dedup_size:
            self._seen.popitem(last=False)


def _discard(index: dict[str, set[S]], key: str, subscriber: S) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(subscriber)
        if not members:
            del index[key]
