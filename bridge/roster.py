"""Presence at run time: shares this instance's snapshot, reads the others', and tells
the clients that follow a channel's presence who joins and who leaves.

The hub reports every change (:meth:`Roster.changed`): a connection that joins
or closes, subscribes or unsubscribes. The snapshot then goes out within
``presence_min_interval``, so a user who closes their last tab leaves the
other instances' presence within that bound (and this instance's at once);
it also goes out every ``presence_interval``, so the snapshot of a killed
instance is forgotten after three intervals.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from bridge.broker import Broker
from bridge.config import Limits
from bridge.hub import Hub
from bridge.presence import (
    ANONYMOUS_ID,
    Presence,
    Snapshot,
    channel_users,
    local_snapshot,
    summary,
)
from bridge.session import Session
from schemas.protocol import JoinMessage, LeaveMessage

__all__ = ["Roster"]

log = logging.getLogger("bridge.presence")


class Roster:
    """The presence of one instance and of every other on the same RabbitMQ."""

    def __init__(self, hub: Hub, broker: Broker, *, instance: str, limits: Limits) -> None:
        self._hub = hub
        self._broker = broker
        self._limits = limits
        self.presence = Presence(instance)
        self._instance = instance
        # The clients here that follow each channel's presence, and its users as last told.
        self._followers: dict[str, set[Session]] = {}
        self._members: dict[str, set[str]] = {}
        self._settle_pending = False
        self._share_timer: asyncio.TimerHandle | None = None
        self._shared = -float("inf")  # when the last snapshot went out (loop time)
        self._heartbeat: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        hub.presence_changed = self.changed
        hub.presence_followed = self.greet

    def start(self) -> None:
        self._heartbeat = asyncio.get_running_loop().create_task(self._beat())

    async def stop(self) -> None:
        for task in (self._heartbeat, *self._inflight):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._share_timer is not None:
            self._share_timer.cancel()

    # This instance

    def local(self) -> Snapshot:
        return local_snapshot(
            self._instance,
            self._limits.presence_interval,
            self._hub.sessions,
            joined=lambda session: session.receiving,
        )

    def changed(self) -> None:
        """A connection joined, left, subscribed or unsubscribed here."""
        loop = asyncio.get_running_loop()
        self._settle_soon()
        if self._share_timer is None:
            # At once after a quiet spell; a burst of changes shares one snapshot a while.
            due = max(loop.time(), self._shared + self._limits.presence_min_interval)
            self._share_timer = loop.call_at(due, self._share)

    def _share(self) -> None:
        self._share_timer = None
        self._shared = asyncio.get_running_loop().time()
        body = self.local().model_dump_json().encode()
        task = asyncio.get_running_loop().create_task(self._send(body))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _send(self, body: bytes) -> None:
        try:
            await self._broker.share(body)
        except Exception as exc:
            log.debug("presence not shared: %s", exc)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self._limits.presence_interval)
            if self._share_timer is None:
                self._share()
            self._settle()  # instances that went silent leave

    # The others

    def received(self, body: bytes) -> None:
        """Another instance's snapshot (the broker's callback)."""
        if self.presence.receive(body) is not None:
            self._settle_soon()

    def _settle_soon(self) -> None:
        """Tell followers what changed once this turn of the loop is over (once for all)."""
        if not self._settle_pending:
            self._settle_pending = True
            asyncio.get_running_loop().call_soon(self._settle)

    # Reading

    def summary(self, channel: str | None = None) -> dict[str, Any]:
        """Every instance's presence added up (``GET /api/presence``)."""
        return summary([self.local(), *self.presence.others()], channel=channel)

    def members(self, channel: str) -> set[str]:
        """The users connected to ``channel`` here and on every other instance."""
        here = {
            session.principal.user
            for session in self._hub.router.by_channel().get(channel, ())
            if session.principal.user is not None
        }
        return here | channel_users(self.presence.others(), channel) - {ANONYMOUS_ID}

    # Join and leave

    def greet(self, session: Session, channel: str) -> None:
        """A client just followed ``channel``'s presence: a join for each user there now."""
        self._followers.setdefault(channel, set()).add(session)
        if channel not in self._members:
            self._members[channel] = self.members(channel)
        for user in sorted(self._members[channel])[: self._limits.presence_max_users]:
            self._hub.send(session, JoinMessage(channel=channel, user=user))

    def _settle(self) -> None:
        """Tell followers who joined and left each channel they follow since last told."""
        self._settle_pending = False
        for channel, sessions in list(self._followers.items()):
            # Those that closed or unsubscribed since follow no more.
            sessions -= {s for s in sessions if not _follows(s, channel)}
            if not sessions:
                del self._followers[channel]
                self._members.pop(channel, None)
        for channel, watching in self._followers.items():
            now = self.members(channel)
            before = self._members.get(channel, now)
            self._members[channel] = now
            for user in sorted(now - before):
                for session in watching:
                    self._hub.send(session, JoinMessage(channel=channel, user=user))
            for user in sorted(before - now):
                for session in watching:
                    self._hub.send(session, LeaveMessage(channel=channel, user=user))


def _follows(session: Session, channel: str) -> bool:
    subscription = session.channels.get(channel)
    return session.receiving and subscription is not None and subscription.presence
