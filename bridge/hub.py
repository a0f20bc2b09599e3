"""Delivery: from an accepted event to the sockets of its audience.

The hub owns the open connections. It asks the :class:`~bridge.router.Router`
who may see each event and writes it once per turn of the event loop, so a
burst costs one write per client rather than one per event. A connection that
keeps up (*live*: nothing queued, nothing unsent in its socket) gets the
event's frame in one tight loop over its audience's writers
(:mod:`bridge.group`), with no work of its own. The others get it through
their mailbox: connections that are behind (the slow-client policy applies),
resuming, or held until they say whether they resume, compressing, and
monitors. Connections that asked for batches (``?batch=1``) are flushed at
most once per ``batch_window``, like Nagle's algorithm: an event after a
quiet spell leaves at once, later ones wait for the window to close and share
one frame. Writes never wait: a client that stops reading fills its own buffer
until it is dropped, and nobody else waits.

A connection is live or queued, never both: it turns live only with an empty
mailbox, after its last write, and stops being live before anything else is
queued for it. Frames for live connections are written before mailboxes in
each flush, so a connection that falls behind in the middle of a turn gets
that turn's earlier events first.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import math
import time
from collections.abc import Callable

from pydantic import BaseModel, ValidationError

from bridge.auth import Authenticator
from bridge.config import Limits
from bridge.counts import Kind, TypeCounts
from bridge.exceptions import Unauthorized
from bridge.group import Writers
from bridge.mailbox import Mailbox
from bridge.metrics import Metrics
from bridge.resume import resume
from bridge.router import Entry, Principal, Router
from bridge.session import Phase, Session, Subscription
from bridge.slow import judge
from schemas import Catalog, Event, InvalidEvent, SchemaError
from schemas.audience import channel_stream
from schemas.payload import CHANNEL_HINT, CHANNEL_NAME
from schemas.protocol import (
    CLOSE_TOKEN_EXPIRED,
    CLOSE_TOO_SLOW,
    CLOSE_UNAUTHORIZED,
    AuthMessage,
    ErrorMessage,
    PingMessage,
    PongMessage,
    RefreshMessage,
    RefusedMessage,
    ResetMessage,
    ResumeMessage,
    SubscribedMessage,
    SubscribeMessage,
    UnsubscribedMessage,
    UnsubscribeMessage,
    WelcomeMessage,
    parse_client_message,
)

__all__ = ["Hub"]

log = logging.getLogger("bridge.ws")

#: Sessions of one framing with the same queued events share one batch frame, by
#: framing and event numbers, for the length of one flush.
_Batches = dict[tuple[object, tuple[int, ...]], bytes]

_CLOSING = Phase.CLOSING  # read once per session and flush: no enum lookup

#: Keepalive pings go out in this many slices per interval.
_PING_SLICES = 10


class Hub:
    """The sessions of one bridge instance and the delivery of events to them.

    It implements :class:`~bridge.session.Inbox`: transports report to it.
    """

    def __init__(
        self,
        router: Router[Session],
        authenticator: Authenticator,
        *,
        limits: Limits,
        instance: str,
        record: Callable[[Entry], None],
        metrics: Metrics,
        catalog: Catalog,
    ) -> None:
        self.router = router
        self.metrics = metrics
        self.limits = limits
        self._authenticator = authenticator
        self._instance = instance
        self._record = record
        self.sessions: set[Session] = set()
        self._dirty: set[Session] = set()
        # This turn's events for live connections, with the writers of those then live;
        # and this batch window's, for live batch connections.
        self._turn: list[tuple[Entry, Writers]] = []
        self._window: list[tuple[Entry, Writers]] = []
        self._flush_pending = False
        # Batch sessions with queued events, flushed when the window closes.
        self._batched: set[Session] = set()
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
        #: Bytes waiting in every session's link, as each was last seen.
        self.queued = 0
        #: Told when a connection joins, leaves, subscribes or unsubscribes (presence).
        self.presence_changed: Callable[[], None] = _nothing
        #: Told when a client starts following a channel's presence.
        self.presence_followed: Callable[[Session, str], None] = _nobody

    # Events in

    def on_event(self, event: Event) -> None:
        """Route one event (the broker's callback): record it, queue it for its audience."""
        entry = self.router.accept(event)
        if entry is None:
            self.metrics.duplicates.inc()
            log.debug("duplicate event dropped", extra={"event_id": event.id})
            return
        self._record(entry)
        recipients = self.router.recipients(event)
        dirty, batched = self._dirty, self._batched
        for session in recipients.queued:
            if session.mailbox.push(entry):
                (batched if session.batch else dirty).add(session)
        group = recipients.group
        if group.live:
            self._turn.append((entry, group.writers()))
        if group.batched:
            self._window.append((entry, group.batch_writers()))
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
        if not self._flush_pending and (self._dirty or self._turn or self._received):
            self._flush_pending = True
            loop.call_soon(self.flush)
        if (self._batched or self._window) and self._batch_timer is None:
            due = max(loop.time(), self._batch_flushed + self.limits.batch_window)
            # The next window counts from when this flush is due, not from when the
            # timer fires: late timers would otherwise hold a steady stream longer and longer.
            self._batch_flushed = due
            self._batch_timer = loop.call_at(due, self._flush_batched)

    def flush(self) -> None:
        """Write this turn's events to live sessions, then what each other session has
        queued: one write per session."""
        self._flush_pending = False
        self._write_turn()
        dirty, self._dirty = self._dirty, set()
        self._write(dirty)
        written, received, self._received = time.perf_counter(), self._received, []
        for moment in received:
            self.metrics.latency.observe(written - moment)

    def _flush_batched(self) -> None:
        if self._batch_timer is not None:
            self._batch_timer.cancel()  # when called before the window closes
            self._batch_timer = None
        window, self._window = self._window, []
        _write_runs(window, batch=True)
        batched, self._batched = self._batched, set()
        self._write(batched)

    def _write_turn(self) -> None:
        """Write each of this turn's events to the sessions that were live when it came:
        nothing here is per session but the write itself."""
        turn, self._turn = self._turn, []
        _write_runs(turn, batch=False)

    def _write(self, sessions: set[Session]) -> None:
        batches: _Batches = {}
        for session in sessions:
            self._deliver(session, batches)

    def _deliver(self, session: Session, batches: _Batches) -> None:
        """Write everything queued for ``session`` in one go, or drop it if it is too far behind."""
        # Only joined sessions are ever queued here; one that closed since is skipped.
        if session.phase is _CLOSING:
            return
        entries = session.mailbox.take()
        if entries and not self._write_entries(session, entries, batches):
            return
        self._go_live(session)

    def _write_entries(self, session: Session, entries: list[Entry], batches: _Batches) -> bool:
        """Write ``entries`` to ``session``; false if it was dropped instead."""
        link = session.link
        buffered = link.buffered()
        # A session that keeps up has nothing waiting, before or since: nothing to check.
        # What a write leaves waiting is counted at the session's next write (looking
        # right after each one added about 100 ns to every delivery): the total lags by one
        # write per session.
        if (buffered or session.buffered) and self._too_slow(session, buffered):
            return False
        if session.batch:
            key = (session.framing, tuple(e.seq for e in entries))
            data = batches.get(key)
            if data is None:
                data = batches[key] = session.framing.events(entries, batch=True)
        else:
            data = session.framing.events(entries, batch=False)
        link.write(data)
        limit = self.limits.max_send_buffer
        if len(data) > limit and buffered <= limit:
            # One write over the limit, to a client that was keeping up, is a burst the
            # bridge chose to send (a resume's replay, most likely): it may drain it at
            # its own pace. If it stops reading, ``limit`` more gets it dropped.
            session.allowance = link.buffered()
        return True

    def _go_live(self, session: Session) -> None:
        """Write events to ``session`` as they come (or as its batch window closes), if
        it can share its audience's bytes (a shared framing), once nothing is queued
        or waiting for it."""
        if (
            not session.live
            and session.framing.shared
            and session.receiving
            and not session.paused
            and not session.mailbox.held
            and not session.mailbox.pending
        ):
            self.router.set_live(session, True)

    def _queue(self, session: Session) -> None:
        """Queue events for ``session`` from now on, rather than write them as they come.

        This turn's events already meant for it are written first (:meth:`flush`), so
        it counts as having been sent everything up to the router's head.
        """
        if session.live:
            self.router.set_live(session, False)
            session.mailbox.last_sent = self.router.head

    def on_paused(self, session: Session) -> None:
        """Bytes wait in ``session``'s socket: queue its events until they are gone."""
        session.paused = True
        self._queue(session)
        buffered = session.link.buffered()
        self._note_buffered(session, buffered)
        if buffered > self.limits.max_send_buffer:
            # One write over the limit to a client that had nothing waiting: a burst the
            # bridge chose to send, as in _write_entries.
            session.allowance = buffered

    def on_resumed(self, session: Session) -> None:
        """``session``'s socket took everything: write to it directly again."""
        session.paused = False
        self._note_buffered(session, 0)
        self._go_live(session)

    def _too_slow(self, session: Session, buffered: int) -> bool:
        """Close ``session`` if ``buffered`` bytes are more than it may leave unread.

        Every write goes through here, replies and pongs as well as events: a
        client that sends and never reads would otherwise make the bridge hold
        its answers for ever, before authentication as after.
        """
        self._note_buffered(session, buffered)
        limits = self.limits
        verdict = judge(
            buffered,
            allowance=session.allowance,
            queued=self.queued,
            max_send_buffer=limits.max_send_buffer,
            max_queued_bytes=limits.max_queued_bytes,
        )
        session.allowance = verdict.allowance
        if verdict.broke is None:
            return False
        log.warning(
            "slow client dropped",
            extra={
                "conn": session.id,
                "buffered": buffered,
                "bound": verdict.broke,
                "queued": self.queued,
            },
        )
        self.metrics.slow_clients.inc()
        self.close(session, CLOSE_TOO_SLOW, "too slow: reconnect and resume")
        return True

    def _note_buffered(self, session: Session, size: int) -> None:
        self.queued += size - session.buffered
        session.buffered = size

    def send(self, session: Session, message: BaseModel) -> None:
        """Send one ``bridge:*`` message now, ahead of anything queued."""
        if session.phase is Phase.CLOSING or self._too_slow(session, session.link.buffered()):
            return
        payload = message.model_dump_json().encode()
        if isinstance(message, ResetMessage):
            # A reset also moves where a stream resumes next (Framing.reset).
            data = session.framing.reset(payload, message.latest)
        else:
            data = session.framing.message(payload)
        if data:
            session.link.write(data)

    # Sessions

    def open(self, session: Session, principal: Principal | None, *, anonymous: bool) -> None:
        """A connection completed its handshake, with a principal from its URL or not yet."""
        self.sessions.add(session)
        self.emptied.clear()
        if principal is not None or anonymous:
            self.join(session, principal)
        else:
            session.set_timer(self.limits.auth_timeout, lambda: self._auth_timed_out(session))

    def join(self, session: Session, principal: Principal | None) -> None:
        """Start delivering to ``session``: welcome, the dashboard snapshot, then live events.

        A session whose request said where to resume gets what it missed at once.
        Otherwise live events are held until the client says whether it resumes
        (:meth:`resume`, :meth:`release`) or the resume window closes, unless
        the session cannot say (a stream).
        """
        first = session.phase is Phase.AWAITING_TOKEN
        if not first:
            self.router.leave(session)  # an anonymous session that authenticated
        if principal is not None:
            session.principal = principal
            session.phase = Phase.AUTHENTICATED
            self._watch_expiry(session)
        elif first:
            session.phase = Phase.ANONYMOUS
        if first:
            session.mailbox = Mailbox(joined=self.router.head)
        self.router.join(session)
        self.presence_changed()
        user, roles = session.principal.user, sorted(session.principal.roles)
        self.send(session, WelcomeMessage(user=user, roles=roles, instance=self._instance))
        if not first:
            return
        if self.router.snapshot is not None:
            session.mailbox.push(self.router.snapshot)
        for channel, token in session.wanted:
            # Before the resume: it replays their missed events too.
            self._subscribe(session, channel, token)
        session.wanted = ()
        if session.after is not None:
            self.resume(session, session.after)
        elif session.holds:
            session.set_timer(self.limits.resume_window, lambda: self.release(session))
        else:
            self.release(session)
        log.info(
            "connection opened",
            extra={
                "conn": session.id,
                "transport": session.transport,
                "remote": session.remote,
                "user": user,
                "roles": roles,
            },
        )

    def release(self, session: Session) -> None:
        """Let live events go to ``session``: it does not resume, or no longer can."""
        if session.receiving and session.mailbox.held:
            session.mailbox.held = False
            self._dirty.add(session)
            self._schedule_flush()

    def resume(self, session: Session, after: str | None) -> None:
        """Send ``session`` what it missed after event ``after``, or ``bridge:reset``."""
        if not session.receiving:
            return
        # Its replay goes before its next live events: they queue behind it.
        self._queue(session)
        streams = _streams_of(session)
        lost = resume(self.router, streams, session.mailbox, after)
        if lost:
            self.send(session, ResetMessage(latest=self.router.latest(streams), lost=lost))
        self._dirty.add(session)
        self._schedule_flush()

    # Channels

    def _subscribe(
        self,
        session: Session,
        channel: str | None,
        token: str | None,
        *,
        after: str | None = None,
        presence: bool = False,
    ) -> None:
        """Subscribe ``session`` to ``channel`` if its token or ``token`` allows it, and
        answer ``bridge:subscribed`` or ``bridge:refused``. With ``after``, the channel's
        events after that one come first."""
        channel, refusal = self._authorize(session, channel, token)
        again = channel in session.channels
        if refusal is None and not again and len(session.channels) >= self.limits.max_channels:
            refusal = (
                f"at most {self.limits.max_channels} channels per connection: "
                "unsubscribe from one first"
            )
        if refusal is not None:
            log.info(
                "subscription refused",
                extra={"conn": session.id, "channel": channel, "reason": refusal},
            )
            self.metrics.subscriptions_refused.inc()
            self.send(session, RefusedMessage(channel=channel, reason=refusal))
            return
        session.channels[channel] = Subscription(by_claim=token is None, presence=presence)
        self.router.subscribe(session, channel)
        recovered = None
        if after is not None and not again:  # once subscribed, it missed nothing more
            after_seq = self.router.seq_of(after)
            if after_seq is None:
                recovered = False
            else:
                stream = channel_stream(channel)
                missed, lost = self.router.replay([stream], after_seq, until=self.router.head)
                recovered = not lost
                if missed:
                    self._queue(session)
                    session.mailbox.add(missed)
                    self._dirty.add(session)
                    self._schedule_flush()
        self.send(session, SubscribedMessage(channel=channel, recovered=recovered))
        self.presence_changed()
        if presence:
            self.presence_followed(session, channel)

    def _authorize(
        self, session: Session, channel: str | None, token: str | None
    ) -> tuple[str, str | None]:
        """The channel asked for (or named by ``token``), and why it is refused, if it is."""
        if token is None:
            assert channel is not None  # a name or a token, never neither
            if not CHANNEL_NAME.fullmatch(channel):
                return channel, f"not a channel name: {CHANNEL_HINT}"
            if not session.principal.allows(channel):
                return channel, (
                    "not allowed: the connection's token does not list this channel; "
                    "ask the backend for a subscription token"
                )
            return channel, None
        try:
            allowed = self._authenticator.verify_subscription(token, session.principal.user)
        except Unauthorized as exc:
            return channel or "?", f"subscription token refused: {exc}"
        if channel is not None and allowed != channel:
            return channel, f"the subscription token is for another channel, {allowed!r}"
        return allowed, None

    def _unsubscribe(self, session: Session, channel: str, reason: str = "") -> None:
        if session.channels.pop(channel, None) is not None:
            self.router.unsubscribe(session, channel)
            self.presence_changed()
        self.send(session, UnsubscribedMessage(channel=channel, reason=reason))

    def close(self, session: Session, code: int, reason: str = "") -> None:
        """Stop delivering to ``session`` and close it; its socket is cut if the peer lingers."""
        if session.phase is Phase.CLOSING:
            return
        session.phase = Phase.CLOSING
        # First, whatever happens next: also when the peer started closing, it must not linger.
        session.set_timer(self.limits.close_timeout, session.link.abort)
        session.cancel_expiry()
        self._leave(session)
        # This turn's and this window's events may still be meant for it: they go
        # before its close frame (the window closes early, for everyone).
        self._write_turn()
        if self._window:
            self._flush_batched()
        session.link.close(code, reason)

    def _leave(self, session: Session) -> None:
        self.presence_changed()
        self.router.leave(session)
        self._dirty.discard(session)
        self._batched.discard(session)

    def on_closed(self, session: Session, code: int | None, reason: str | None) -> None:
        """The socket is gone."""
        self._leave(session)
        session.cancel_timers()
        self._note_buffered(session, 0)  # its buffer went with it
        if session in self.sessions:
            self.sessions.discard(session)
            if not self.sessions:
                self.emptied.set()
            log.info(
                "connection closed",
                extra={
                    "conn": session.id,
                    "transport": session.transport,
                    "code": code,
                    "reason": reason,
                    "seconds": round(time.monotonic() - session.opened, 3),
                },
            )

    def on_write(self, session: Session) -> None:
        if session.phase is not Phase.CLOSING:
            self._too_slow(session, session.link.buffered())

    def refuse(self, session: Session, error: str) -> None:
        self.send(session, ErrorMessage(error=error))

    def _auth_timed_out(self, session: Session) -> None:
        if session.phase is Phase.AWAITING_TOKEN:
            self.close(
                session,
                CLOSE_UNAUTHORIZED,
                f"send {{op: auth}} with a token within {self.limits.auth_timeout:g} s",
            )

    # Client messages

    def on_message(self, session: Session, data: bytes) -> None:
        """Answer one text message from a client."""
        try:
            message = parse_client_message(data)
        except InvalidEvent as exc:
            self.send(session, ErrorMessage(error=str(exc), detail=[dict(e) for e in exc.errors]))
            return
        except SchemaError as exc:
            self.send(session, ErrorMessage(error=str(exc)))
            return
        if session.phase is Phase.AWAITING_TOKEN and not isinstance(message, AuthMessage):
            self.close(session, CLOSE_UNAUTHORIZED, "authenticate first: {op: auth, token}")
            return
        match message:
            case AuthMessage(token=token):
                self._authenticate(session, token)
            case ResumeMessage(after=after):
                self.resume(session, after)
            case PingMessage():
                self.send(session, PongMessage())
            case SubscribeMessage(channel=channel, token=token, after=after, presence=presence):
                if session.receiving:
                    self._subscribe(session, channel, token, after=after, presence=presence)
            case UnsubscribeMessage(channel=channel):
                self._unsubscribe(session, channel)
        if not isinstance(message, AuthMessage):
            # Its first other message tells whether the client resumes: live events may go.
            self.release(session)

    def _authenticate(self, session: Session, token: str) -> None:
        try:
            principal = self._authenticator.verify(token)
        except Unauthorized as exc:
            log.info("authentication refused", extra={"conn": session.id, "reason": str(exc)})
            self.close(session, CLOSE_UNAUTHORIZED, str(exc))
            return
        if session.phase is Phase.AUTHENTICATED:
            self._refresh(session, principal)
        else:
            self.join(session, principal)

    # Token expiry

    def _watch_expiry(self, session: Session) -> None:
        """Ask for a new token shortly before this one expires; close when it does."""
        expires = session.principal.expires
        if expires is None:
            session.cancel_expiry()
            return
        left = expires - time.time()
        notice = min(self.limits.refresh_notice, left / 2)
        session.set_expiry(left - notice, lambda: self._ask_refresh(session, expires))

    def _ask_refresh(self, session: Session, expires: float) -> None:
        left = expires - time.time()
        # Rounded up: a token with half a second left has not expired, "0" would say so.
        self.send(session, RefreshMessage(seconds=max(0, math.ceil(left))))
        session.set_expiry(left, lambda: self._expired(session))

    def _expired(self, session: Session) -> None:
        log.info("token expired", extra={"conn": session.id, "user": session.principal.user})
        self.close(session, CLOSE_TOKEN_EXPIRED, "token expired: connect again with a new token")

    def _refresh(self, session: Session, principal: Principal) -> None:
        """A new token on an open connection: for the same user, it goes on with its roles."""
        if principal.user != session.principal.user:
            log.info("refresh refused", extra={"conn": session.id, "reason": "another user"})
            self.close(session, CLOSE_UNAUTHORIZED, "a new token must name the connection's user")
            return
        # The router files a session by its roles: leave and join again under the new ones,
        # queued until the next flush (a monitor's token is never live).
        self._queue(session)
        self.router.leave(session)
        session.principal = principal
        self.router.join(session)
        self._dirty.add(session)
        self._schedule_flush()
        self.presence_changed()
        self._watch_expiry(session)
        for channel, subscription in list(session.channels.items()):
            if subscription.by_claim and not principal.allows(channel):
                self._unsubscribe(session, channel, "the new token does not allow this channel")

    # Keepalive and shutdown

    async def keepalive(self) -> None:
        """Ping every session each interval; drop those whose peer is gone.

        The sessions are pinged in slices spread over the interval, so a thousand
        pongs never arrive at once and hold up events.
        """
        for tick in itertools.count():
            await asyncio.sleep(self.limits.ping_interval / _PING_SLICES)
            for session in list(self.sessions):
                if session.id % _PING_SLICES != tick % _PING_SLICES:
                    continue
                if session.phase is Phase.CLOSING:
                    continue
                if not session.link.ping():
                    log.info("dead peer dropped", extra={"conn": session.id})
                    session.link.abort()

    def close_all(self, code: int, reason: str) -> None:
        """Close every session (the caller waits for the sockets to go)."""
        self.flush()
        self._flush_batched()
        for session in list(self.sessions):
            self.close(session, code, reason)


def _write_runs(events: list[tuple[Entry, Writers]], *, batch: bool) -> None:
    """Write each event to the writers it came with. Consecutive events with the same
    writers (to one audience, while nobody joined or left it) share one write."""
    for _, run in itertools.groupby(events, key=_writers_of):
        items = list(run)
        entries = [entry for entry, _ in items]
        for framing, writes in items[0][1]:
            data = framing.events(entries, batch=batch)
            for write in writes:
                write(data)


def _writers_of(item: tuple[Entry, Writers]) -> int:
    # By identity: a group's writers are one tuple until its members change.
    return id(item[1])


def _nothing() -> None:
    pass


def _nobody(_session: Session, _channel: str) -> None:
    pass


def _streams_of(session: Session) -> list[str] | None:
    """The history streams a session resumes: its principal's and its channels'
    (``None``, every stream, for a monitor)."""
    if session.principal.monitor:
        return None
    return session.principal.streams + [channel_stream(c) for c in session.channels]


def _misfit_reason(catalog: Catalog, event: Event) -> str:
    # Read again, once per type: the hot path keeps no reasons.
    try:
        catalog[event.type].payload.model_validate_json(json.dumps(event.data))
    except ValidationError as exc:
        return str(SchemaError.from_validation(exc, ()))  # field errors, not the values
    return "it fits now"
