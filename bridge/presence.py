"""Presence: who is connected, by role, by user and by channel, across every instance.

Each instance counts its own connections (:func:`local_snapshot`) and shares
that count with the others through RabbitMQ's ``bridge.presence`` exchange:
at once when it changes (at most once per ``min_interval``) and every
``interval`` anyway. :class:`Presence` keeps the latest snapshot of every
other instance and forgets one it has not heard from for ``expiry`` seconds
(an instance that was killed). Nothing else needs to run.

A snapshot names users by id: ``""`` stands for anonymous connections.
Snapshots come from the network, so they are read with a strict model and
bounded: at most ``max_instances`` instances are kept.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from bridge.router import Principal

__all__ = [
    "ANONYMOUS_ID",
    "Presence",
    "Snapshot",
    "channel_users",
    "local_snapshot",
    "summary",
]

log = logging.getLogger("bridge.presence")

#: The user id that stands for anonymous connections in a snapshot.
ANONYMOUS_ID = ""

_Count = Annotated[int, Field(ge=0)]


class Snapshot(BaseModel):
    """One instance's connections: each user's count, overall, by role and by channel."""

    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)

    instance: str
    #: Seconds until the next snapshot at the latest: the receiver forgets this one
    #: after three of them go missing.
    interval: Annotated[float, Field(gt=0, le=3600)]
    users: dict[str, _Count] = {}
    roles: dict[str, dict[str, _Count]] = {}
    channels: dict[str, dict[str, _Count]] = {}

    @property
    def connections(self) -> int:
        return sum(self.users.values())


def local_snapshot(
    instance: str, interval: float, sessions: Iterable[Any], *, joined: Callable[[Any], bool]
) -> Snapshot:
    """This instance's snapshot from its ``sessions`` (those ``joined`` count)."""
    users: Counter[str] = Counter()
    roles: dict[str, Counter[str]] = {}
    channels: dict[str, Counter[str]] = {}
    for session in sessions:
        if not joined(session):
            continue
        principal: Principal = session.principal
        user = principal.user or ANONYMOUS_ID
        users[user] += 1
        for role in principal.roles:
            roles.setdefault(role, Counter())[user] += 1
        for channel in session.channels:
            channels.setdefault(channel, Counter())[user] += 1
    return Snapshot(
        instance=instance,
        interval=interval,
        users=dict(users),
        roles={role: dict(counts) for role, counts in roles.items()},
        channels={channel: dict(counts) for channel, counts in channels.items()},
    )


class Presence:
    """The latest snapshot of every other instance on the same RabbitMQ.

    Args:
        instance: this instance's name: its own snapshots, echoed back, are ignored.
        max_instances: other instances kept; snapshots of more are dropped.
        expiry_factor: an instance is forgotten after this many of its intervals
            without a snapshot.
    """

    def __init__(
        self,
        instance: str,
        *,
        max_instances: int = 1000,
        expiry_factor: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.instance = instance
        self.max_instances = max_instances
        self.expiry_factor = expiry_factor
        self._clock = clock
        self._others: dict[str, tuple[float, Snapshot]] = {}

    def receive(self, body: bytes) -> Snapshot | None:
        """Take another instance's snapshot; ``None`` (logged) if it is not one or is ours."""
        try:
            snapshot = Snapshot.model_validate_json(body)
        except ValidationError as exc:
            log.warning("presence message dropped: %s", exc.errors(include_input=False)[:3])
            return None
        if snapshot.instance == self.instance:
            return None
        self._expire()
        if snapshot.instance not in self._others and len(self._others) >= self.max_instances:
            log.warning(
                "presence of instance %r dropped: already %d instances",
                snapshot.instance,
                self.max_instances,
            )
            return None
        self._others[snapshot.instance] = (self._clock(), snapshot)
        return snapshot

    def others(self) -> list[Snapshot]:
        """The snapshots of the other instances still alive."""
        self._expire()
        return [snapshot for _, snapshot in self._others.values()]

    def _expire(self) -> None:
        now = self._clock()
        gone = [
            name
            for name, (at, snapshot) in self._others.items()
            if now - at > self.expiry_factor * snapshot.interval
        ]
        for name in gone:
            log.info("presence of instance %r expired", name)
            del self._others[name]


def summary(
    snapshots: Iterable[Snapshot], *, channel: str | None = None, max_users: int = 1000
) -> dict[str, Any]:
    """Every instance's snapshots added up, as ``GET /api/presence`` answers.

    Each group gives its connections and the ids of its users (anonymous ones
    counted apart), at most ``max_users`` ids each (``truncated`` says when
    there were more). With ``channel``, only that channel.
    """
    snapshots = list(snapshots)
    users: Counter[str] = Counter()
    roles: dict[str, Counter[str]] = {}
    channels: dict[str, Counter[str]] = {}
    for snapshot in snapshots:
        users.update(snapshot.users)
        for name, counts in snapshot.roles.items():
            roles.setdefault(name, Counter()).update(counts)
        for name, counts in snapshot.channels.items():
            if channel is None or name == channel:
                channels.setdefault(name, Counter()).update(counts)
    if channel is not None:
        return {
            "channel": channel,
            **_group(channels.get(channel, Counter()), max_users),
        }
    return {
        "instances": sorted(s.instance for s in snapshots),
        **_group(users, max_users),
        "roles": {name: _group(counts, max_users) for name, counts in sorted(roles.items())},
        "channels": {name: _group(counts, max_users) for name, counts in sorted(channels.items())},
    }


def channel_users(snapshots: Iterable[Snapshot], channel: str) -> set[str]:
    """The users (not anonymous) connected to ``channel`` on any instance."""
    found: set[str] = set()
    for snapshot in snapshots:
        found.update(u for u in snapshot.channels.get(channel, {}) if u != ANONYMOUS_ID)
    return found


def _group(counts: Mapping[str, int], max_users: int) -> dict[str, Any]:
    ids = sorted(u for u, n in counts.items() if u != ANONYMOUS_ID and n > 0)
    return {
        "connections": sum(counts.values()),
        "anonymous": counts.get(ANONYMOUS_ID, 0),
        "users": ids[:max_users],
        "truncated": len(ids) > max_users,
    }
