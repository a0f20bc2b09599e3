"""HTTP on the bridge's port: h11 parses requests; streams take their connection over.

The bridge owns the transport (see docs/decisions.md): plain requests go to
handlers by method and path. An upgrade request (``GET /ws``) and a request
for an event stream (``GET /sse``) each become a :class:`Stream`, which then
gets every byte.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

import h11

from bridge.config import WS_PATH, Limits
from bridge.connections import Connections
from bridge.metrics import Metrics
from bridge.sites import Sites

__all__ = ["Handler", "HttpProtocol", "Opener", "Request", "Response", "Stream", "Upgrade"]

log = logging.getLogger("bridge.http")

#: Seconds to keep reading (and dropping) a refused body before closing.
_LINGER = 2.0
#: Seconds between two log lines about refused connections: a flood gets one a while.
_REFUSALS_LOGGED_EVERY = 10.0


@dataclass(frozen=True)
class Request:
    """A complete HTTP request; header names are lower case."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    remote: str = ""

    @property
    def bearer(self) -> str | None:
        """The credentials of an ``Authorization: Bearer`` header, if one came."""
        scheme, _, credentials = self.headers.get("authorization", "").partition(" ")
        return (credentials.strip() or None) if scheme.lower() == "bearer" else None

    @property
    def address(self) -> str:
        """The caller's IP address: :attr:`remote` without its port."""
        host, _, port = self.remote.rpartition(":")
        return host if host and port.isdigit() else self.remote


@dataclass(frozen=True)
class Response:
    """An HTTP response to send."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @classmethod
    def json(cls, status: int, content: Any) -> Response:
        return cls(status, json.dumps(content).encode())

    @classmethod
    def error(cls, status: int, message: str) -> Response:
        return cls.json(status, {"error": message})

    def with_headers(self, *headers: tuple[str, str]) -> Response:
        """This response with ``headers`` added."""
        return replace(self, headers=(*self.headers, *headers))


Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class Stream(Protocol):
    """A connection taken over from HTTP: a WebSocket, or an event stream."""

    def receive(self, data: bytes) -> None:
        """Bytes from the peer."""

    def receive_eof(self) -> bool | None:
        """The peer sent EOF; true keeps the transport half open (asyncio's convention)."""

    def lost(self) -> None:
        """The socket is gone."""

    def fail(self) -> None:
        """Handling its input raised: close this connection only."""

    def pause_writing(self) -> None:
        """Bytes wait in the transport's buffer (its high-water mark is the stream's)."""

    def resume_writing(self) -> None:
        """The transport's buffer drained."""


#: Turns an upgrade request into a WebSocket, or refuses it (``None``, once its
#: answer is written). It gets the raw bytes of the request, which the WebSocket
#: protocol parses again.
Upgrade = Callable[[asyncio.Transport, bytes, Request], Stream | None]
#: Answers a ``GET`` of a stream's path: the stream, which wrote its own response's
#: head, or a refusal for HTTP to send.
Opener = Callable[[asyncio.Transport, Request], Stream | Response]


@dataclass
class _Refusals:
    """Connections refused since the last log line about them, by reason."""

    counts: dict[str, int] = field(default_factory=dict)
    logged: float = -_REFUSALS_LOGGED_EVERY

    def count(self, reason: str, address: str, connections: Connections[HttpProtocol]) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        now = time.monotonic()
        if now - self.logged < _REFUSALS_LOGGED_EVERY:
            return
        bound = "max_connections_per_ip" if reason == "per-ip" else "max_connections"
        log.warning(
            "connections refused: at their bound (counted in bridge_connections_refused_total)",
            extra={
                "bound": bound,
                "last_remote": address,
                "refused": self.counts,
                "open": len(connections),
            },
        )
        self.counts, self.logged = {}, now


class HttpServer:
    """What every connection of one bridge shares: its routes, its bounds, its counts."""

    def __init__(
        self,
        routes: Mapping[tuple[str, str], Handler],
        upgrade: Upgrade,
        *,
        streams: Mapping[str, Opener] | None = None,
        limits: Limits,
        metrics: Metrics,
        sites: Sites,
    ) -> None:
        self.routes = routes
        self.upgrade = upgrade
        self.streams = streams or {}
        self.limits = limits
        self.metrics = metrics
        self.sites = sites
        self.connections: Connections[HttpProtocol] = Connections(
            max_total=limits.max_connections, max_per_address=limits.max_connections_per_ip
        )
        self.refusals = _Refusals()

    def __call__(self) -> HttpProtocol:
        """A protocol for one new connection (the factory ``create_server`` wants)."""
        return HttpProtocol(self)


class HttpProtocol(asyncio.Protocol):
    """One TCP connection: HTTP/1.1 requests, until a stream takes it over."""

    def __init__(self, server: HttpServer) -> None:
        self._server = server
        self._routes = server.routes
        self._upgrade = server.upgrade
        self._max_body = server.limits.max_event_size
        self._transport: asyncio.Transport | None = None
        self._h11: h11.Connection | None = h11.Connection(h11.SERVER)
        # The bytes of the first request, for the WebSocket handshake to parse.
        self._raw: bytearray | None = bytearray()
        self._request: h11.Request | None = None
        self._body = bytearray()
        self._busy = False
        self._remote = ""
        self._discarding = False
        self._task: asyncio.Task[Response] | None = None
        self._address = ""
        self._admitted = False
        # The one timeout running: for the request under way, or for the next one.
        self._timer: asyncio.TimerHandle | None = None
        self._idle = False
        self.stream: Stream | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._remote = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        self._address = str(peer[0]) if isinstance(peer, tuple) else self._remote
        server = self._server
        refused = server.connections.admit(self, self._address)
        if refused is not None:
            server.metrics.connections_refused.labels(refused).inc()
            server.refusals.count(refused, self._address, server.connections)
            transport.write(_refusal(refused))
            transport.close()
            return
        self._admitted = True
        # From the first byte, as for every later request: nothing on a new
        # connection is as idle as a keep-alive one.
        self._wait_for_request()

    def data_received(self, data: bytes) -> None:
        if self._discarding or not self._admitted:
            return
        if self.stream is not None:
            try:
                self.stream.receive(data)
            except Exception:
                # No caller can catch here: log it, and close only this connection.
                log.exception("connection failed", extra={"remote": self._remote})
                self.stream.fail()
            return
        if self._raw is not None:
            self._raw += data
        if self._idle:
            self._wait_for_request()  # a new request started: its whole time counts from here
        assert self._h11 is not None
        self._h11.receive_data(data)
        self._next_events()

    def eof_received(self) -> bool | None:
        if self.stream is not None:
            return self.stream.receive_eof()
        if self._h11 is not None:
            self._h11.receive_data(b"")
            self._next_events()
        return None

    def pause_writing(self) -> None:
        if self.stream is not None:
            self.stream.pause_writing()

    def resume_writing(self) -> None:
        if self.stream is not None:
            self.stream.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        self._server.connections.release(self, self._address)
        if self.stream is not None:
            self.stream.lost()

    # Timeouts

    def _wait_for_request(self) -> None:
        """Give the client ``http_request_timeout`` to send a whole request."""
        self._idle = False
        self._set_timer(self._server.limits.http_request_timeout, self._request_timed_out)

    def _wait_idle(self) -> None:
        """Keep the connection open ``http_idle_timeout`` for a next request."""
        self._idle = True
        self._set_timer(self._server.limits.http_idle_timeout, self._idle_timed_out)

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        self._cancel_timer()
        if delay > 0:
            self._timer = asyncio.get_running_loop().call_later(delay, callback)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _request_timed_out(self) -> None:
        self._server.metrics.http_timeouts.labels("request").inc()
        limit = self._server.limits.http_request_timeout
        conn = self._h11
        if conn is not None and conn.their_state is h11.IDLE and not conn.trailing_data[0]:
            self._close()  # nothing was asked: nothing to answer
            return
        self._send(Response.error(408, f"the request did not arrive whole within {limit:g} s"))
        self._close()

    def _idle_timed_out(self) -> None:
        self._server.metrics.http_timeouts.labels("idle").inc()
        self._close()

    def _next_events(self) -> None:
        conn = self._h11
        # Once closing (a refusal was answered), nothing more is read as a request:
        # a refused request's end must not reach its handler.
        transport = self._transport
        while conn is not None and not (
            self._busy
            or self._discarding
            or self.stream
            or transport is None
            or transport.is_closing()
        ):
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                # h11 quotes the offending line, which may hold a token: name the fault only.
                fault = str(exc).partition(":")[0]
                self._send(Response.error(exc.error_status_hint, f"bad HTTP request: {fault}"))
                return
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return
            if isinstance(event, h11.Request):
                self._start(event)
            elif isinstance(event, h11.Data):
                self._body += event.data
                if len(self._body) > self._max_body:
                    self._refuse_large_body()
                    return
            elif isinstance(event, h11.EndOfMessage):
                self._dispatch()
            elif isinstance(event, h11.ConnectionClosed):
                self._close()
                return

    def _start(self, event: h11.Request) -> None:
        self._request = event
        self._body.clear()
        length = _header(event.headers, b"content-length")
        # Every request, WebSocket or not: a same-origin GET carries no Origin, so only
        # the host tells a page that reached the bridge through a rebound name of its own.
        refusal = self._server.sites.host_refusal(_header(event.headers, b"host"))
        if refusal is not None:
            log.info("request refused", extra={"remote": self._remote, "reason": refusal})
            self._send(Response.error(400, refusal).with_headers(("connection", "close")))
            self._close()
        elif length is not None and _header(event.headers, b"transfer-encoding") is not None:
            # Two framings: a proxy in front may have read the other one (request
            # smuggling). RFC 9112, section 6.3: answer, then close.
            refusal = "send Content-Length or Transfer-Encoding, not both"
            self._send(Response.error(400, refusal).with_headers(("connection", "close")))
            self._close()
        elif length is not None and length.isdigit() and int(length) > self._max_body:
            self._refuse_large_body()
        elif (_header(event.headers, b"upgrade") or "").lower() == "websocket":
            self._switch(event)

    def _switch(self, event: h11.Request) -> None:
        assert self._transport is not None
        if self._raw is None:
            self._send(Response.error(400, "open the WebSocket on a new connection"))
            return
        assert self._h11 is not None
        # What came after the request's head is the client's first frames, sent
        # without waiting for the 101 (allowed: RFC 6455, section 4.1).
        early = self._h11.trailing_data[0]
        raw, self._raw = bytes(self._raw[: len(self._raw) - len(early)]), None
        self._cancel_timer()  # the WebSocket has its own: login, keepalive
        stream = self._upgrade(self._transport, raw, self._make_request(event, b""))
        if stream is None:
            self._transport.close()
            return
        self.stream = stream
        self._h11 = None
        if early:
            self.data_received(early)

    def _dispatch(self) -> None:
        assert self._request is not None
        request = self._make_request(self._request, bytes(self._body))
        self._raw = None  # only a connection's first request may become a WebSocket
        self._cancel_timer()  # the request is whole; the handler's time is not the client's
        opener = self._server.streams.get(request.path)
        if opener is not None and request.method == "GET":
            self._open_stream(opener, request)
            return
        handler = self._routes.get((request.method, request.path))
        if handler is None and request.method == "HEAD":
            # RFC 9110, section 9.3.2: HEAD wherever GET; h11 leaves the body out.
            handler = self._routes.get(("GET", request.path))
        if handler is None:
            self._send(self._not_here(request))
            return
        self._busy = True
        # Held here: the loop keeps only a weak reference to a running task.
        self._task = asyncio.get_running_loop().create_task(handler(request))
        self._task.add_done_callback(self._respond)

    def _open_stream(self, opener: Opener, request: Request) -> None:
        assert self._transport is not None
        opened = opener(self._transport, request)
        if isinstance(opened, Response):
            self._send(opened)
            return
        # The stream wrote its own head and owns the connection from here: whatever
        # the client sends after its request is its stream's to read.
        self.stream = opened
        self._h11 = None

    def _not_here(self, request: Request) -> Response:
        """404 for an unknown path; 405 with ``Allow`` for a known path and another method.

        A GET of the WebSocket path without ``Upgrade: websocket`` (a browser's
        address bar, curl) gets 426 saying to open a WebSocket (RFC 9110, 15.5.22).
        """
        if request.path == WS_PATH and request.method in ("GET", "HEAD"):
            refusal = f"{WS_PATH} is a WebSocket: open it with a WebSocket client"
            return Response.error(426, refusal).with_headers(
                ("upgrade", "websocket"), ("connection", "upgrade")
            )
        if request.path in self._server.streams:
            refusal = f"{request.path} is an event stream: GET it"
            return Response.error(405, refusal).with_headers(("allow", "GET"))
        served = {method for method, path in self._routes if path == request.path}
        methods = sorted(served | {"HEAD"} if "GET" in served else served)
        refusal = f"no {request.method} {request.path} here"
        if not methods:
            return Response.error(404, refusal)
        return Response.error(405, refusal).with_headers(("allow", ", ".join(methods)))

    def _respond(self, task: asyncio.Task[Response]) -> None:
        self._busy = False
        self._task = None
        if task.cancelled():
            self._close()
            return
        exc = task.exception()
        if exc is not None:
            log.error("request handler failed", exc_info=exc)
            self._send(Response.error(500, "internal error; see the bridge's log"))
        else:
            self._send(task.result())
        self._next_events()

    def _send(self, response: Response) -> None:
        conn, transport = self._h11, self._transport
        if conn is None or transport is None or transport.is_closing():
            return
        headers = [
            ("content-type", response.content_type),
            ("content-length", str(len(response.body))),
            *response.headers,
        ]
        try:
            head = h11.Response(
                status_code=response.status,
                headers=headers,
                reason=HTTPStatus(response.status).phrase.encode(),
            )
            transport.write(conn.send(head))
            if self._request is None or self._request.method != b"HEAD":
                transport.write(conn.send(h11.Data(data=response.body)))
            transport.write(conn.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            self._close()
            return
        if conn.states == {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE}:
            conn.start_next_cycle()
            self._request = None
            self._wait_idle()
        elif not self._discarding:
            # An answer before the whole request (a refusal), or one side said close.
            self._close()

    def _refuse_large_body(self) -> None:
        # Closing with the body still arriving would reset the connection before the
        # client reads the 413: say we are done, swallow the rest, close a bit later.
        self._discarding = True
        limit = f"request body over {self._max_body} bytes, the largest event (--max-event-size)"
        refusal = Response.error(413, limit)
        self._send(refusal.with_headers(("connection", "close")))
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write_eof()
            asyncio.get_running_loop().call_later(_LINGER, self._close)

    def close(self) -> None:
        """Close a plain HTTP connection (a stream closes through its session)."""
        self._close()

    def _close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def _make_request(self, event: h11.Request, body: bytes) -> Request:
        target = urlsplit(event.target.decode("latin-1"))
        return Request(
            method=event.method.decode("ascii"),
            path=target.path,
            query=dict(parse_qsl(target.query)),
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in event.headers},
            body=body,
            remote=self._remote,
        )


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> str | None:
    return next((v.decode("latin-1") for k, v in headers if k == name), None)


def _refusal(reason: str) -> bytes:
    """The whole response to a connection over a bound, written before any request is read."""
    if reason == "per-ip":
        status, text = 429, "too many connections from your address (max_connections_per_ip)"
    else:
        status, text = 503, "the bridge is at its connection limit (max_connections)"
    body = json.dumps({"error": text}).encode()
    head = (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body
