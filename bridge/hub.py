"""Delivery: from an accepted event to the sockets of its audience.

The hub owns the open connections. It asks the :class:`~bridge.router.Router`
who may see each event, queues the event on those connections only, and
flushes every queue once per turn of the event loop, so a burst costs one
write per client rather than one per event. Connections that asked for
batches (``?batch=1``) are flushed at most once per ``batch_window``, like
Nagle's algorithm: an event after a quiet spell leaves at once, later ones
wait for the window to close and share one frame. Writes never wait: a
client that stops reading fills its own buffer until it is dropped, and
nobody else waits.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import time
from collections.abc import Callable

from pydantic import ValidationError

from bridge.auth import Authenticator
from bridge.config import Limits
from bridge.counts import Kind, TypeCounts
from bridge.exceptions import Unauthorized
from bridge.mailbox import Mailbox
from bridge.metrics import Metrics
from bridge.resume import resume
from bridge.router import Principal, Router
from bridge.websocket import CLOSE_TOKEN_EXPIRED, CLOSE_UNAUTHORIZED, Client
from schemas import Catalog, Event, InvalidEvent, SchemaError
from schemas.protocol import (
    AuthMessage,
    ErrorMessage,
    PingMessage,
    PongMessage,
    RefreshMessage,
    ResetMessage,
    ResumeMessage,
    WelcomeMessage,
    parse_client_message,
)

__all__ = ["Hub"]

log = logging.getLogger("bridge.ws")

#: Keepalive pings go out in this many slices per interval.
_PING_SLICES = 10


class Hub:
    """The connections of one bridge instance and the delivery of events to them."""

    def __init__(
        self,
        router: Router[Client],
        authenticator: Authenticator,
        *,
        limits: Limits,
        instance: str,
        record: Callable[[bytes], None],
        metrics: Metrics,
        catalog: Catalog,
    ) -> None:
        self.router = router
        self.metrics = metrics
        self.limits = limits
        self._authenticator = authenticator
        self._instance = instance
        self._record = record
        self.clients: set[Client] = set()
        self._dirty: set[Client] = set()
        self._flush_pending = False
        # Batch connections with queued events, flushed when the window closes.
        self._batched: set[Client] = set()
        self._batch_timer: asyncio.TimerHandle | None = None
        self._batch_flushed = -float("inf")
        self.catalog = catalog
        #: Events accepted since start, by type, typed and untyped apart.
        self.counts = TypeCounts(catalog, limit=limits.max_event_types)
        # Catalog types whose misfit was logged: once each is enough to act on.
        self._misfits_logged: set[str] = set()
        # When each event not yet written was received, for the latency histogram.
        self._received: list[float] = []
        #: Set whenever the last connection closes.
        self.emptied = asyncio.Event()
        #: Bytes waiting in every client's transport, as each was last seen.
        self.queued = 0

    # Events in

    def on_event(self, event: Event) -> None:
        """Route one event (the broker's callback): record it, queue it for its audience."""
        entry = self.router.accept(event)
        if entry is None:
            self.metrics.duplicates.inc()
            log.debug("duplicate event dropped", extra={"event_id": event.id})
            return
        self._record(entry.json)
        recipients = self.router.recipients(entry)
        dirty, batched = self._dirty, self._batched
        for client in recipients:
            if client.mailbox is not None and client.mailbox.push(entry):
                (batched if client.batch else dirty).add(client)
        kind = self.counts.kind(event)
        name = self.counts.count(event, kind)
        if kind is not Kind.TYPED:
            self._untyped(event, name, kind)
        self.metrics.events_in.labels(name).inc()
        self.metrics.events_out.labels(name).inc(len(recipients))
        self._received.append(time.perf_counter())
        self._schedule_flush()

    def _untyped(self, event: Event, name: str, kind: Kind) -> None:
        self.metrics.untyped.labels(name, kind.value).inc()
        if kind is Kind.MISFIT and event.type not in self._misfits_logged:
            self._misfits_logged.add(event.type)
            log.warning(
                "event type %r does not fit its model in the catalog, delivered as sent "
                "(logged once per type; bridge_events_untyped_total counts them): %s",
                event.type,
                _misfit_reason(self.catalog, event),
                extra={"event_id": event.id},
            )

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        if not self._flush_pending and (self._dirty or self._received):
            self._flush_pending = True
            loop.call_soon(self.flush)
        if self._batched and self._batch_timer is None:
            due = max(loop.time(), self._batch_flushed + self.limits.batch_window)
            # The next window counts from when this flush is due, not from when the
            # timer fires: late timers would otherwise hold a steady stream longer and longer.
            self._batch_flushed = due
            self._batch_timer = loop.call_at(due, self._flush_batched)

    def flush(self) -> None:
        """Write what each connection has queued, one write per connection."""
        self._flush_pending = False
        dirty, self._dirty = self._dirty, set()
        self._write(dirty)
        written, received, self._received = time.perf_counter(), self._received, []
        for moment in received:
            self.metrics.latency.observe(written - moment)

    def _flush_batched(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.cancel()  # when called before the window closes
            self._batch_timer = None
        batched, self._batched = self._batched, set()
        self._write(batched)

    @staticmethod
    def _write(clients: set[Client]) -> None:
        # Clients with the same queued events share one batch frame, built once.
        batch_frames: dict[tuple[int, ...], bytes] = {}
        for client in clients:
            client.flush(batch_frames)

    # Connections

    def open(self, client: Client, principal: Principal | None, *, anonymous: bool) -> None:
        """A connection completed its handshake, with a principal from its URL or not yet."""
        self.clients.add(client)
        self.emptied.clear()
        if principal is not None or anonymous:
            self.join(client, principal)
        else:
            client.set_timer(self.limits.auth_timeout, lambda: self._auth_timed_out(client))

    def join(self, client: Client, principal: Principal | None) -> None:
        """Start delivering to ``client``: welcome, the dashboard snapshot, then live events."""
        if client.mailbox is not None:
            self.router.leave(client)
        if principal is not None:
            client.principal = principal
            client.authenticated = True
            self._watch_expiry(client)
        first = client.mailbox is None
        client.mailbox = client.mailbox or Mailbox(joined=self.router.head)
        self.router.join(client)
        user, roles = client.principal.user, sorted(client.principal.roles)
        client.send(WelcomeMessage(user=user, roles=roles, instance=self._instance))
        if not first:
            return
        if self.router.snapshot is not None:
            client.mailbox.push(self.router.snapshot)
        client.set_timer(self.limits.resume_window, lambda: self._release(client))
        log.info(
            "connection opened",
            extra={"conn": client.id, "remote": client.remote, "user": user, "roles": roles},
        )

    def leave(self, client: Client) -> None:
        """Stop delivering to ``client``."""
        self.router.leave(client)
        self._dirty.discard(client)
        self._batched.discard(client)

    def closed(self, client: Client) -> None:
        """The socket is gone."""
        self.leave(client)
        client.cancel_timer()
        client.note_buffered(0)  # its buffer went with it
        if client in self.clients:
            self.clients.discard(client)
            if not self.clients:
                self.emptied.set()
            log.info(
                "connection closed",
                extra={
                    "conn": client.id,
                    "code": client.protocol.close_code,
                    "reason": client.protocol.close_reason or None,
                    "seconds": round(time.monotonic() - client.opened, 3),
                },
            )

    def _release(self, client: Client) -> None:
        if client.mailbox is not None and client.mailbox.held:
            client.mailbox.held = False
            self._dirty.add(client)
            self._schedule_flush()

    def _auth_timed_out(self, client: Client) -> None:
        if not client.authenticated:
            client.close(
                CLOSE_UNAUTHORIZED,
                f"send {{op: auth}} with a token within {self.limits.auth_timeout:g} s",
            )

    # Client messages

    def on_message(self, client: Client, data: bytes) -> None:
        """Answer one text message from a client."""
        try:
            message = parse_client_message(data)
        except InvalidEvent as exc:
            client.send(ErrorMessage(error=str(exc), detail=[dict(e) for e in exc.errors]))
            return
        except SchemaError as exc:
            client.send(ErrorMessage(error=str(exc)))
            return
        if client.mailbox is None and not isinstance(message, AuthMessage):
            client.close(CLOSE_UNAUTHORIZED, "authenticate first: {op: auth, token}")
            return
        match message:
            case AuthMessage(token=token):
                self._authenticate(client, token)
            case ResumeMessage(after=after):
                self._resume(client, after)
            case PingMessage():
                client.send(PongMessage())
        if not isinstance(message, AuthMessage):
            # Its first other message tells whether the client resumes: live events may go.
            self._release(client)

    def _authenticate(self, client: Client, token: str) -> None:
        try:
            principal = self._authenticator.verify(token)
        except Unauthorized as exc:
            log.info("authentication refused", extra={"conn": client.id, "reason": str(exc)})
            client.close(CLOSE_UNAUTHORIZED, str(exc))
            return
        if client.authenticated:
            self._refresh(client, principal)
        else:
            self.join(client, principal)

    # Token expiry

    def _watch_expiry(self, client: Client) -> None:
        """Ask for a new token shortly before this one expires; close when it does."""
        expires = client.principal.expires
        if expires is None:
            client.cancel_expiry()
            return
        left = expires - time.time()
        notice = min(self.limits.refresh_notice, left / 2)
        client.set_expiry(left - notice, lambda: self._ask_refresh(client, expires))

    def _ask_refresh(self, client: Client, expires: float) -> None:
        left = expires - time.time()
        client.send(RefreshMessage(seconds=max(0, round(left))))
        client.set_expiry(left, lambda: self._expired(client))

    def _expired(self, client: Client) -> None:
        log.info("token expired", extra={"conn": client.id, "user": client.principal.user})
        client.close(CLOSE_TOKEN_EXPIRED, "token expired: connect again with a new token")

    def _refresh(self, client: Client, principal: Principal) -> None:
        """A new token on an open connection: for the same user, it goes on with its roles."""
        if principal.user != client.principal.user:
            log.info("refresh refused", extra={"conn": client.id, "reason": "another user"})
            client.close(CLOSE_UNAUTHORIZED, "a new token must name the connection's user")
            return
        # The router files a connection by its roles: leave and join again under the new ones.
        self.router.leave(client)
        client.principal = principal
        self.router.join(client)
        self._watch_expiry(client)

    def _resume(self, client: Client, after: str | None) -> None:
        mailbox = client.mailbox
        if mailbox is None:
            return
        if not resume(self.router, client.principal, mailbox, after):
            client.send(ResetMessage(latest=self.router.latest_for(client.principal)))
        self._dirty.add(client)
        self._schedule_flush()

    # Keepalive and shutdown

    async def keepalive(self) -> None:
        """Ping every client each interval; drop those that did not answer the last ping.

        The clients are pinged in slices spread over the interval, so a thousand
        pongs never arrive at once and hold up events.
        """
        for tick in itertools.count():
            await asyncio.sleep(self.limits.ping_interval / _PING_SLICES)
            for client in list(self.clients):
                if client.id % _PING_SLICES != tick % _PING_SLICES or client.closing:
                    continue
                if not client.ping():
                    log.info("dead peer dropped", extra={"conn": client.id})
                    client.transport.abort()

    def close_all(self, code: int, reason: str) -> None:
        """Send every client a close frame (the caller waits for the sockets to go)."""
        self.flush()
        self._flush_batched()
        for client in list(self.clients):
            client.close(code, reason)


def _misfit_reason(catalog: Catalog, event: Event) -> str:
    # Read again, once per type: the hot path keeps no reasons.
    try:
        catalog[event.type].payload.model_validate_json(json.dumps(event.data))
    except ValidationError as exc:
        return str(SchemaError.from_validation(exc, ()))  # field errors, not the values
    return "it fits now"
