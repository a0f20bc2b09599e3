"""Server-Sent Events on ``GET /sse``: what a client reading the stream gets.

Each test reads the stream as the ``text/event-stream`` format says a browser
does (fields per line, a blank line ends a message, ``:`` starts a comment),
from a bridge in this process on the embedded broker.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from api_rest.events import DashboardUpdate, Reserva, ReservaCreada
from bridge.app import Bridge, open_broker
from bridge.config import Limits
from bridge.session import Phase
from bridge.sse import EVENTS, RETRY_MS
from schemas import Event, Role
from tests.support.bridges import running, settings, token
from tests.support.httpclient import request


@dataclass
class Message:
    """One message of the stream: its fields as a browser reads them."""

    data: str
    id: str | None
    comments: list[str] = field(default_factory=list)

    def json(self) -> Any:
        return json.loads(self.data)


class Reader:
    """A client of one stream: the response's head, then its messages one by one."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.status = 0
        self.headers: dict[str, str] = {}
        self.retry: int | None = None
        self.comments: list[str] = []

    async def head(self) -> None:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 5)
        status, *lines = raw.decode("latin-1").strip().split("\r\n")
        self.status = int(status.split()[1])
        self.headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}

    async def next(self, timeout: float = 5) -> Message:
        """The next message with data; comments and ``retry`` on the way are kept."""
        data: list[str] = []
        event_id: str | None = None
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), timeout)).decode()
            assert line.endswith("\n"), "the stream ended"
            line = line[:-1]
            if line == "":
                if data or event_id is not None:
                    return Message("\n".join(data), event_id)
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "":
                self.comments.append(value)
            elif name == "data":
                data.append(value)
            elif name == "id":
                event_id = value
            elif name == "retry":
                self.retry = int(value)

    async def comment(self, timeout: float = 5) -> str:
        """The next comment line's text; nothing else may come first."""
        line = (await asyncio.wait_for(self.reader.readline(), timeout)).decode()
        assert line.startswith(":"), f"a comment, not {line!r}"
        assert await asyncio.wait_for(self.reader.readline(), timeout) == b"\n"
        return line[1:].removesuffix("\n")

    async def ended(self) -> bytes:
        """Everything left until the bridge ends the response."""
        return await asyncio.wait_for(self.reader.read(), 5)


@asynccontextmanager
async def stream(
    bridge: Bridge, query: str = "", headers: dict[str, str] | None = None
) -> AsyncIterator[Reader]:
    """A stream whose head was read, closed afterwards."""
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
    lines = [f"GET /sse{query} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
    client = Reader(reader, writer)
    await client.head()
    try:
        yield client
    finally:
        writer.close()


def reserva(n: int, audience: Role | None = None) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}", audience=audience)


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running(settings(tmp_path)) as running_bridge:
        yield running_bridge


async def test_a_stream_gets_its_welcome_then_each_event_with_its_id(bridge: Bridge) -> None:
    async with stream(bridge, f"?token={token(bridge, 'u1', ('cliente',))}") as sse:
        assert sse.status == 200
        assert sse.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert sse.headers["cache-control"] == "no-store, no-transform"
        assert sse.headers["x-accel-buffering"] == "no"
        welcome = await sse.next()
        assert welcome.id is None, "only events move the browser's last event id"
        assert welcome.json() == {
            "type": "bridge:welcome",
            "user": "u1",
            "roles": ["cliente"],
            "instance": "test",
        }
        assert sse.retry is not None
        assert RETRY_MS[0] <= sse.retry <= RETRY_MS[1]
        await bridge.broker.publish(reserva(1, Role(role="proveedor")))  # not for u1
        await bridge.broker.publish(reserva(2, Role(role="cliente")))
        await bridge.broker.publish(reserva(3))
        received = [await sse.next(), await sse.next()]
        assert [(m.id, m.json()["id"]) for m in received] == [("e2", "e2"), ("e3", "e3")]
        assert received[1].json()["data"] == {"reserva": {"id": 3}}


async def test_a_bearer_header_serves_clients_that_can_set_one(bridge: Bridge) -> None:
    headers = {"Authorization": f"Bearer {token(bridge, 'u7')}"}
    async with stream(bridge, headers=headers) as sse:
        assert (await sse.next()).json()["user"] == "u7"


@pytest.mark.parametrize(
    ("query", "headers", "status", "reason"),
    [
        ("", {}, 401, "send a token: ?token=... (EventSource cannot set headers)"),
        ("?token=forged", {}, 401, "token"),
        (
            "?token={token}",
            {"Origin": "http://evil.example"},
            403,
            "origin http://evil.example is not allowed",
        ),
    ],
)
async def test_a_stream_is_refused_with_a_status_and_the_reason(
    bridge: Bridge, query: str, headers: dict[str, str], status: int, reason: str
) -> None:
    path = "/sse" + query.format(token=token(bridge))
    reply = await request(bridge.port, "GET", path, headers=headers)
    assert reply.status == status
    assert reason in reply.json()["error"]
    assert not bridge.hub.sessions


async def test_an_allowed_origin_gets_the_cors_header_eventsource_needs(tmp_path: Path) -> None:
    app = "http://app.example"
    async with (
        running(settings(tmp_path, allowed_origins=frozenset({app}))) as bridge,
        stream(bridge, f"?token={token(bridge)}", {"Origin": app}) as sse,
    ):
        assert sse.status == 200
        assert sse.headers["access-control-allow-origin"] == app


async def test_anonymous_streams_get_events_for_everyone_when_allowed(tmp_path: Path) -> None:
    async with running(settings(tmp_path, allow_anonymous=True)) as bridge, stream(bridge) as sse:
        assert (await sse.next()).json()["user"] is None
        await bridge.broker.publish(reserva(1, Role(role="admin")))
        await bridge.broker.publish(reserva(2))
        assert (await sse.next()).id == "e2"


@pytest.mark.parametrize("where", ["header", "query"])
async def test_last_event_id_resumes_with_nothing_missed_or_repeated(
    bridge: Bridge, where: str
) -> None:
    for n in range(1, 6):
        await bridge.broker.publish(reserva(n))
    query = f"?token={token(bridge)}"
    headers = {}
    if where == "header":
        headers["Last-Event-ID"] = "e2"
    else:
        query += "&after=e2"
    async with stream(bridge, query, headers) as sse:
        assert (await sse.next()).json()["type"] == "bridge:welcome"
        await bridge.broker.publish(reserva(6))
        ids = [(await sse.next()).id for _ in range(4)]
        assert ids == ["e3", "e4", "e5", "e6"]
        await bridge.broker.publish(reserva(7))
        assert (await sse.next()).id == "e7"


async def test_the_header_an_eventsource_sends_on_reconnect_wins_over_the_first_url(
    bridge: Bridge,
) -> None:
    for n in range(1, 5):
        await bridge.broker.publish(reserva(n))
    query = f"?token={token(bridge)}&after=e1"
    async with stream(bridge, query, {"Last-Event-ID": "e3"}) as sse:
        await sse.next()  # welcome
        assert (await sse.next()).id == "e4"


async def test_a_stream_without_an_id_gets_live_events_only(bridge: Bridge) -> None:
    await bridge.broker.publish(reserva(1))
    async with stream(bridge, f"?token={token(bridge)}") as sse:
        await sse.next()  # welcome
        await bridge.broker.publish(reserva(2))
        assert (await sse.next()).id == "e2"


async def test_an_id_gone_from_the_history_gets_a_reset_that_moves_the_last_id(
    bridge: Bridge,
) -> None:
    await bridge.broker.publish(reserva(1))
    await bridge.broker.publish(reserva(2))
    async with stream(bridge, f"?token={token(bridge)}", {"Last-Event-ID": "gone"}) as sse:
        await sse.next()  # welcome
        reset = await sse.next()
        assert reset.json() == {"type": "bridge:reset", "latest": "e2", "lost": ["all", "user:u1"]}
        assert reset.id == "e2", "the browser's next reconnect resumes after the reloaded state"
        await bridge.broker.publish(reserva(3))
        assert (await sse.next()).id == "e3"


async def test_a_reset_with_nothing_visible_clears_the_last_id() -> None:
    assert EVENTS.reset(b"{}", None).startswith(b"id: \n")


async def test_batched_streams_get_one_message_of_several_lines(tmp_path: Path) -> None:
    async with (
        running(settings(tmp_path, limits=Limits(batch_window=0.3))) as bridge,
        stream(bridge, f"?token={token(bridge)}&batch=1") as sse,
    ):
        await sse.next()  # welcome
        await bridge.broker.publish(reserva(1))  # after a quiet spell: at once
        first = await sse.next()
        for n in (2, 3, 4):
            await bridge.broker.publish(reserva(n))  # within the window: together
        batch = await sse.next()
    assert [json.loads(line)["id"] for line in first.data.split("\n")] == ["e1"]
    assert [json.loads(line)["id"] for line in batch.data.split("\n")] == ["e2", "e3", "e4"]
    assert batch.id == "e4", "a reconnect resumes after the whole batch"


async def test_keepalive_comments_flow_while_nothing_happens(tmp_path: Path) -> None:
    async with (
        running(settings(tmp_path, limits=Limits(ping_interval=0.1))) as bridge,
        stream(bridge, f"?token={token(bridge)}") as sse,
    ):
        await sse.next()  # welcome
        assert await sse.comment() == ""


async def test_an_expiring_token_is_announced_then_the_stream_closes_with_4419(
    tmp_path: Path,
) -> None:
    async with (
        running(settings(tmp_path, limits=Limits(refresh_notice=0.5))) as bridge,
        stream(bridge, f"?token={token(bridge, ttl=2)}") as sse,
    ):
        await sse.next()  # welcome
        refresh = (await sse.next(timeout=5)).json()
        assert refresh["type"] == "bridge:refresh"
        closing = (await sse.next(timeout=5)).json()
        assert closing == {
            "type": "bridge:close",
            "code": 4419,
            "reason": "token expired: connect again with a new token",
        }
        assert await sse.ended() == b""


async def test_a_stream_that_stops_reading_is_dropped_and_told_why(tmp_path: Path) -> None:
    limits = Limits(max_send_buffer=64 * 1024, socket_send_buffer=4096)
    async with running(settings(tmp_path, limits=limits)) as bridge:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # so that it fills soon
        sock.connect(("127.0.0.1", bridge.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
        writer.write(f"GET /sse?token={token(bridge)} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        client = Reader(reader, writer)
        await client.head()
        await client.next()  # welcome; from here on it reads nothing
        writer.transport.pause_reading()  # type: ignore[attr-defined]
        (session,) = bridge.hub.sessions
        big = {"services": {"total": 1, "blob": "x" * 4000}}
        for n in range(1000):
            event = Event.of(DashboardUpdate.model_validate(big), id=f"b{n}")
            await bridge.broker.publish(event)
            # One turn of the loop (not a wait): each event gets its own flush, as
            # events arriving apart would.
            await asyncio.sleep(0)
            if session.phase is Phase.CLOSING:
                break
        assert session.phase is Phase.CLOSING, "dropped"
        writer.transport.resume_reading()  # type: ignore[attr-defined]
        rest = await asyncio.wait_for(reader.read(), 10)
        writer.close()
    assert rest.endswith(
        b'data: {"type":"bridge:close","code":1013,"reason":"too slow: reconnect and resume"}\n\n'
    )
    assert rest.count(b"id: b") < 1000


async def test_other_methods_on_the_stream_path_get_405_with_allow(bridge: Bridge) -> None:
    reply = await request(bridge.port, "POST", "/sse", b"{}")
    assert reply.status == 405
    assert reply.headers["allow"] == "GET"


async def test_a_stopping_bridge_closes_streams_with_1001(tmp_path: Path) -> None:
    config = settings(tmp_path)
    bridge = Bridge(config, open_broker(config))
    await bridge.start()
    async with stream(bridge, f"?token={token(bridge)}") as sse:
        await sse.next()  # welcome
        stopping = asyncio.create_task(bridge.stop())
        closing = (await sse.next()).json()
        assert closing == {"type": "bridge:close", "code": 1001, "reason": "server shutting down"}
        assert await sse.ended() == b""
        await stopping


async def test_a_preflight_from_an_allowed_origin_lets_last_event_id_through(
    tmp_path: Path,
) -> None:
    app = "http://app.example"
    async with running(settings(tmp_path, allowed_origins=frozenset({app}))) as bridge:
        headers = {
            "Origin": app,
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "last-event-id",
        }
        reply = await request(bridge.port, "OPTIONS", "/sse", headers=headers)
    assert reply.status == 204
    assert reply.headers["access-control-allow-origin"] == app
    assert "last-event-id" in reply.headers["access-control-allow-headers"]
