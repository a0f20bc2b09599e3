"""The bridge's HTTP/1.1 as a hostile client meets it: framing, timeouts, bounds (issue 14)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.config import Limits
from bridge.router import Principal
from tests.support.bridges import operator, running, settings, token
from tests.support.httpclient import request

HEALTH = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


@contextlib.asynccontextmanager
async def bridge_with(tmp_path: Path, **limits: float) -> AsyncIterator[Bridge]:
    config = settings(tmp_path)
    async with running(replace(config, limits=replace(config.limits, **limits))) as bridge:
        yield bridge


@contextlib.asynccontextmanager
async def connection(
    bridge: Bridge,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def response(
    reader: asyncio.StreamReader, *, head: bool = False
) -> tuple[int, dict[str, str], bytes]:
    """One response off a keep-alive connection (to HEAD: no body, whatever its length)."""
    async with asyncio.timeout(5):
        text = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        status_line, *lines = text.strip().split("\r\n")
        headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
        length = 0 if head else int(headers.get("content-length", "0"))
        body = await reader.readexactly(length)
    return int(status_line.split()[1]), headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the bridge closed the connection (everything it sent is read first)."""
    async with asyncio.timeout(5):
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
    return True


async def metric(bridge: Bridge, name: str) -> float:
    text = (await request(bridge.port, "GET", "/metrics", headers=operator())).body.decode()
    """The sum of a metric's series, whatever their labels."""
    series = [line for line in text.splitlines() if line.startswith((name + " ", name + "{"))]
    return sum(float(line.rsplit(" ", 1)[1]) for line in series)


async def test_head_answers_where_get_does_with_no_body(tmp_path: Path) -> None:
    async with bridge_with(tmp_path) as bridge, connection(bridge) as (reader, writer):
        writer.write(b"HEAD /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" + HEALTH)
        head_status, head_headers, head_body = await response(reader, head=True)
        # The next response on the connection starts right after HEAD's head: no body came.
        get_status, get_headers, get_body = await response(reader)
    assert (head_status, head_body) == (200, b"")
    assert head_headers["content-length"] == get_headers["content-length"] == str(len(get_body))
    assert get_status == 200


async def test_a_request_with_two_framings_is_answered_400_and_closed(tmp_path: Path) -> None:
    """RFC 9112, section 6.3: Content-Length and Transfer-Encoding together may be smuggling."""
    body = b'{"type": "x:y", "data": {}}'
    smuggled = (
        b"POST /api/dashboard/emit-event HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}\r\n".encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    async with bridge_with(tmp_path) as bridge, connection(bridge) as (reader, writer):
        writer.write(smuggled + HEALTH)
        status, _, answer = await response(reader)
        assert await closed(reader)
        published = bridge.router.history(Principal(None, monitor=True))
    assert status == 400
    assert "not both" in json.loads(answer)["error"]
    assert published == [], "a refused request is not handled after its answer"


async def test_a_request_for_a_host_not_served_is_refused_and_not_handled(
    tmp_path: Path,
) -> None:
    """DNS rebinding: a page on evil.example that resolves to the bridge posts an event."""
    body = b'{"type": "x:y", "data": {}}'
    rebound = (
        b"POST /api/dashboard/emit-event HTTP/1.1\r\nHost: evil.example:4000\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%b" % (len(body), body)
    )
    async with bridge_with(tmp_path) as bridge, connection(bridge) as (reader, writer):
        writer.write(rebound)
        status, _, answer = await response(reader)
        assert await closed(reader)
        published = bridge.router.history(Principal(None, monitor=True))
    assert status == 400
    assert json.loads(answer)["error"] == (
        "host 'evil.example' is not served here: add it to --allowed-hosts"
    )
    assert published == []


async def test_a_413_on_a_keep_alive_connection_logs_no_traceback(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    chunk = b"100000\r\n" + b"x" * 0x100000 + b"\r\n"
    async with bridge_with(tmp_path) as bridge:
        for framing in (b"Content-Length: 2000000\r\n\r\n" + b"x" * 1000, b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 2):  # fmt: skip
            async with connection(bridge) as (reader, writer):
                writer.write(
                    b"POST /api/dashboard/emit-event HTTP/1.1\r\nHost: 127.0.0.1\r\n" + framing
                )
                status, headers, _ = await response(reader)
                assert (status, headers.get("connection")) == (413, "close")
                assert await closed(reader)
        assert (await request(bridge.port, "GET", "/api/health")).status == 200
    failures = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert failures == []


async def test_a_request_that_never_ends_gets_408_and_is_closed(tmp_path: Path) -> None:
    async with bridge_with(tmp_path, http_request_timeout=0.5) as bridge:
        async with connection(bridge) as (reader, writer):
            writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")  # slowloris
            status, _, answer = await response(reader)
            assert await closed(reader)
        async with connection(bridge) as (reader, _):
            # A socket that sends nothing is closed without a word.
            assert await reader.read() == b""
        assert await metric(bridge, "bridge_http_timeouts_total") >= 2
    assert status == 408
    assert "0.5 s" in json.loads(answer)["error"]


async def test_an_idle_keep_alive_connection_is_closed(tmp_path: Path) -> None:
    async with bridge_with(tmp_path, http_idle_timeout=0.3) as bridge:
        async with connection(bridge) as (reader, writer):
            writer.write(HEALTH)
            assert (await response(reader))[0] == 200
            assert await reader.read() == b""  # then nothing more was asked: closed
        text = (await request(bridge.port, "GET", "/metrics", headers=operator())).body.decode()
    assert 'bridge_http_timeouts_total{timeout="idle"} 1.0' in text


async def test_one_address_may_hold_only_so_many_connections(tmp_path: Path) -> None:
    async with bridge_with(tmp_path, max_connections_per_ip=3) as bridge:
        async with contextlib.AsyncExitStack() as held:
            for _ in range(3):
                await held.enter_async_context(connection(bridge))
            async with connection(bridge) as (reader, writer):
                writer.write(HEALTH)
                status, _, answer = await response(reader)
                assert await closed(reader)
        # Those three gone, the address is welcome again, and the refusal was counted.
        text = (await request(bridge.port, "GET", "/metrics", headers=operator())).body.decode()
    assert status == 429
    assert "max_connections_per_ip" in json.loads(answer)["error"]
    assert 'bridge_connections_refused_total{bound="per-ip"} 1.0' in text


async def test_the_bridge_holds_only_so_many_connections(tmp_path: Path) -> None:
    async with bridge_with(tmp_path, max_connections=2, max_connections_per_ip=0) as bridge:
        async with connection(bridge), connection(bridge), connection(bridge) as (reader, writer):
            writer.write(HEALTH)
            status, _, _ = await response(reader)
        assert (await request(bridge.port, "GET", "/api/health")).status == 200
    assert status == 503


async def test_frames_sent_with_the_handshake_are_not_lost(tmp_path: Path) -> None:
    """A client may send its first frames without waiting for the 101 (RFC 6455, 4.1)."""
    async with bridge_with(tmp_path) as bridge, connection(bridge) as (reader, writer):
        handshake = (
            "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        auth = json.dumps({"op": "auth", "token": token()}).encode()
        writer.write(handshake.encode() + _masked(auth) + _masked(b'{"op": "ping"}'))
        async with asyncio.timeout(5):
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
            messages = [json.loads(await _unmasked(reader)) for _ in range(2)]
    assert [m["type"] for m in messages] == ["bridge:welcome", "bridge:pong"]


def _masked(payload: bytes) -> bytes:
    """A client's text frame, up to 64 KiB."""
    size = len(payload)
    length = bytes([0x80 | size]) if size < 126 else bytes([0x80 | 126]) + size.to_bytes(2, "big")
    key = b"\x01\x02\x03\x04"
    return b"\x81" + length + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


async def _unmasked(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    return await reader.readexactly(length)


def test_limits_have_safe_defaults() -> None:
    limits = Limits()
    assert 0 < limits.max_connections_per_ip < limits.max_connections
    assert 0 < limits.http_request_timeout < limits.http_idle_timeout
