"""Server-Sent Events on ``GET /sse``: the events of ``/ws`` for networks that break WebSocket.

Some corporate proxies refuse the WebSocket upgrade but pass a long response
through. A stream carries the same events, to the same audiences, with the
same history, in the ``text/event-stream`` format browsers read with
``EventSource``:

- every event carries ``id:``, so a reconnecting ``EventSource`` sends
  ``Last-Event-ID`` on its own and resumes as ``{"op": "resume"}`` does on
  ``/ws`` (``?after=`` does the same for a client that reconnects itself);
- ``bridge:*`` messages are plain ``data:`` lines, so one ``onmessage`` reads
  everything, as on ``/ws``; ``bridge:close`` stands in for a close frame;
- keepalives are comments (``:``), which proxies pass and browsers ignore.

The stream is one-way: the token comes with the request (``?token=``, as
``EventSource`` cannot set headers, or ``Authorization: Bearer``) and a token
that expires closes the stream (4419), after ``bridge:refresh`` says when.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from dataclasses import dataclass

from bridge.auth import Authenticator
from bridge.channels import requested
from bridge.config import Settings
from bridge.exceptions import Unauthorized
from bridge.http import Request, Response
from bridge.hub import Hub
from bridge.router import Entry, Principal
from bridge.session import Framing, Inbox, Session
from schemas.protocol import CLOSE_INTERNAL_ERROR, CloseMessage

__all__ = ["EVENTS", "EventStream", "EventStreams"]

log = logging.getLogger("bridge.sse")

#: The reconnect delay a browser is told, in ms, drawn per stream: a restarted
#: bridge is not hit by every ``EventSource`` in the same instant.
RETRY_MS = (1000, 4000)
_KEEPALIVE = b":\n\n"


class _Events:
    """The ``text/event-stream`` framing, shared by every stream."""

    shared = True

    def events(self, entries: list[Entry], *, batch: bool) -> bytes:
        if batch:
            # One event of several lines, as one WebSocket frame of several: EventSource
            # joins ``data:`` lines with "\n". Its id is the last one's: it resumes after all.
            lines = b"".join(b"data: " + e.json + b"\n" for e in entries)
            return b"id: " + entries[-1].id.encode() + b"\n" + lines + b"\n"
        if len(entries) == 1:
            return self._one(entries[0])
        return b"".join(self._one(e) for e in entries)

    def _one(self, entry: Entry) -> bytes:
        data = entry.framed.get(self)
        if data is None:
            # Event ids are printable ASCII without spaces, and JSON holds no raw line
            # break: neither can end a field early.
            data = entry.framed[self] = b"id: %b\ndata: %b\n\n" % (
                entry.id.encode(),
                entry.json,
            )
        return data

    def message(self, payload: bytes) -> bytes:
        return b"data: " + payload + b"\n\n"

    def reset(self, payload: bytes, latest: str | None) -> bytes:
        # The browser's last event id becomes the newest one (or none): its next
        # reconnect resumes from the state the client reloads now.
        return b"id: " + (latest or "").encode() + b"\n" + self.message(payload)


#: The framing of every event stream.
EVENTS: Framing = _Events()


class EventStream:
    """One stream, from its response's head until the socket closes."""

    __slots__ = ("_closed_with", "_inbox", "abort", "buffered", "session", "transport", "write")

    def __init__(
        self,
        transport: asyncio.Transport,
        inbox: Inbox,
        *,
        batch: bool,
        remote: str,
        after: str | None,
        wanted: tuple[tuple[str | None, str | None], ...] = (),
    ) -> None:
        self.transport = transport
        self._inbox = inbox
        # The transport's own methods: see bridge.websocket.WebSocketLink.
        self.write = transport.write
        self.buffered = transport.get_write_buffer_size
        self.abort = transport.abort
        # Paused as soon as a byte waits: the hub stops writing to it directly.
        # (A pause before this stream took the connection over reached nobody.)
        transport.set_write_buffer_limits(high=0)
        self._closed_with: tuple[int, str] | None = None
        # A stream cannot send a resume later: its request said, or it starts live.
        self.session = Session(
            self,
            EVENTS,
            transport="sse",
            batch=batch,
            remote=remote,
            after=after,
            holds=False,
            wanted=wanted,
        )
        self.session.paused = transport.get_write_buffer_size() > 0

    # The client says nothing on a stream: what it sends is read and dropped.

    def receive(self, data: bytes) -> None:
        pass

    def receive_eof(self) -> bool | None:
        return None  # the client is gone: asyncio closes the transport

    def pause_writing(self) -> None:
        self._inbox.on_paused(self.session)

    def resume_writing(self) -> None:
        self._inbox.on_resumed(self.session)

    def lost(self) -> None:
        code, reason = self._closed_with or (None, None)
        self._inbox.on_closed(self.session, code, reason)

    def fail(self) -> None:
        self._inbox.close(self.session, CLOSE_INTERNAL_ERROR, "internal error")

    def ping(self) -> bool:
        """A comment line: it keeps proxies from timing the stream out."""
        self.transport.write(_KEEPALIVE)
        return True

    def close(self, code: int, reason: str) -> None:
        """``bridge:close`` in place of a close frame, then the end of the response."""
        self._closed_with = (code, reason)
        message = CloseMessage(code=code, reason=reason).model_dump_json().encode()
        self.transport.write(EVENTS.message(message))
        self.transport.close()


@dataclass(frozen=True)
class EventStreams:
    """Opens event streams for one bridge instance, or refuses them with a status."""

    hub: Hub
    authenticator: Authenticator
    settings: Settings

    def __call__(self, transport: asyncio.Transport, request: Request) -> EventStream | Response:
        principal, refusal = self._check(request)
        if refusal is not None:
            status, reason = refusal
            log.info(
                "stream refused",
                extra={"remote": request.remote, "status": status, "reason": reason},
            )
            return Response.error(status, reason)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            send_buffer = self.settings.limits.socket_send_buffer
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        transport.write(_head(request.headers.get("origin")))
        stream = EventStream(
            transport,
            self.hub,
            batch=request.query.get("batch") == "1",
            remote=request.remote,
            # The browser's own reconnect says Last-Event-ID; it wins over the first URL.
            after=request.headers.get("last-event-id") or request.query.get("after") or None,
            wanted=requested(request.query, self.settings.limits.max_channels),
        )
        self.hub.open(stream.session, principal, anonymous=True)
        return stream

    def _check(self, request: Request) -> tuple[Principal | None, tuple[int, str] | None]:
        """Who the stream is for (``None``: anonymous), or the status and reason to refuse it."""
        origin, host = request.headers.get("origin"), request.headers.get("host")
        if not self.settings.sites.origin_allowed(origin, host):
            return None, (403, f"origin {origin} is not allowed; see --allowed-origins")
        token = request.query.get("token") or request.bearer
        if token is None:
            if self.settings.allow_anonymous:
                return None, None
            refusal = "send a token: ?token=... (EventSource cannot set headers) or a Bearer header"
            return None, (401, refusal)
        try:
            return self.authenticator.verify(token), None
        except Unauthorized as exc:
            return None, (401, str(exc))


def _head(origin: str | None) -> bytes:
    """The response's head; its body lasts until the stream closes (no length, no chunks)."""
    lines = [
        "HTTP/1.1 200 OK",
        "content-type: text/event-stream; charset=utf-8",
        # No proxy may keep it, transform it, or hold it back to fill a buffer (nginx).
        "cache-control: no-store, no-transform",
        "x-accel-buffering: no",
        "connection: close",
    ]
    if origin is not None:
        # Only reached for an allowed origin: EventSource across origins needs CORS.
        lines += [f"access-control-allow-origin: {origin}", "vary: origin"]
    retry = random.randint(*RETRY_MS)  # noqa: S311 - spreading reconnects, not a secret
    return ("\r\n".join(lines) + f"\r\n\r\nretry: {retry}\n\n").encode("latin-1")
