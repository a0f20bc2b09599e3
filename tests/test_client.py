"""The browser client, ``bridge/static/client.js``, in a real headless Chromium.

The test page is a document of the bridge's own origin, so the bridge's
default origin check applies as it would to a page it serves. Chromium is
Debian's ``/usr/bin/chromium``, driven by Playwright without any browser of
its own.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.async_api import Browser, Page, Route, WebSocket, WebSocketRoute

from api_rest.events import catalog
from bridge import typescript
from bridge.auth import Authenticator
from tests.support.bridges import SECRET, Served, token
from tests.support.browser import chromium

ROOT = Path(__file__).parent.parent
STATIC = ROOT / "bridge" / "static"

#: The test page: it only loads the client; each test connects it as it needs.
PAGE = """<!doctype html>
<meta charset="utf-8">
<title>client.js test</title>
<script type="module">
  import { connect } from "/client.js";
  window.log = [];  // every message the client hands to handlers, in order
  window.start = (options) => {
    window.client = connect("/ws", options);
    window.client.on("*", (message) => window.log.push(message));
  };
</script>
"""

#: The ids of the events the page received, in order.
IDS = "window.log.filter((m) => m.id !== undefined).map((m) => m.id)"


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


class Sockets:
    """The WebSockets a page opened, with the frames it sent on each."""

    def __init__(self, page: Page) -> None:
        self.sent: list[list[Any]] = []
        self.urls: list[str] = []
        page.on("websocket", self._opened)

    def _opened(self, ws: WebSocket) -> None:
        frames: list[Any] = []
        self.sent.append(frames)
        self.urls.append(ws.url)
        ws.on("framesent", lambda payload: frames.append(json.loads(payload)))


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context()
    page = await context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        await context.close()
    assert errors == [], "the page threw"


async def open_page(page: Page, origin: str) -> None:
    """Load the test page into a document of ``origin``; it imports ``origin/client.js``.

    The document comes from a real response of the bridge (``/client.js``), so
    Chromium places it on the loopback address: a page ``page.route`` made up has
    no address, and Chromium's Local Network Access checks would then block its
    WebSocket to 127.0.0.1.
    """
    await page.goto(f"{origin}/client.js")
    await page.set_content(PAGE)
    await page.wait_for_function("typeof window.start === 'function'", timeout=10_000)


async def until(page: Page, condition: str, timeout: float = 20) -> None:
    await page.wait_for_function(condition, timeout=timeout * 1000)


def free_port() -> int:
    """A port nobody listens on, so a restarted bridge can take the same one."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def emit(port: int, n: int) -> None:
    """Publish event ``e<n>`` through the bridge's HTTP API, as the seed's Django does."""
    body = {"id": f"e{n}", "type": "reserva:creada", "data": {"reserva": {"id": n}}}
    url = f"http://127.0.0.1:{port}/api/dashboard/emit-event"
    reply = await asyncio.to_thread(requests.post, url, json=body, timeout=10)
    assert reply.status_code == 202, reply.text


async def test_a_page_gets_every_event_once_across_a_bridge_restart(
    page: Page, tmp_path: Path
) -> None:
    port = free_port()
    args = ("--port", str(port), "--state-dir", str(tmp_path), "--instance", "client-test")
    sockets = Sockets(page)
    first = Served(*args)
    await first.start()
    try:
        await open_page(page, f"http://127.0.0.1:{port}")
        await page.evaluate("(token) => window.start({ token })", token(None, "u1", ("cliente",)))
        await until(page, "window.log.some((m) => m.type === 'bridge:welcome')")
        for n in (1, 2, 3):
            await emit(port, n)
        await until(page, f"{IDS}.length >= 3")
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
    finally:
        await first.kill()

    # The same instance and state dir: the history, and so resume, outlive the restart.
    second = Served(*args)
    await second.start()
    try:
        for n in (4, 5, 6):
            await emit(port, n)
        await until(page, f"{IDS}.length >= 6")
        assert await page.evaluate(IDS) == ["e1", "e2", "e3", "e4", "e5", "e6"]
        log = await page.evaluate("window.log")
    finally:
        await second.kill()

    welcomes = [m for m in log if m["type"] == "bridge:welcome"]
    assert len(welcomes) == 2
    assert welcomes[0] == {
        "type": "bridge:welcome",
        "user": "u1",
        "roles": ["cliente"],
        "instance": "client-test",
    }
    assert welcomes == [welcomes[0]] * 2
    assert next(m for m in log if m["type"] == "bridge:disconnected")["code"] == 1001
    first_data = next(m for m in log if m.get("id") == "e1")["data"]
    assert first_data == {"reserva": {"id": 1}}
    # The first connection had seen nothing, and pinged after its welcome; every
    # attempt after the restart asked for what came after e3, in its URL.
    assert "after" not in sockets.urls[0]
    assert sockets.sent[0][0] == {"op": "ping"}
    assert len(sockets.urls) >= 2
    assert all(url.endswith("&after=e3") for url in sockets.urls[1:])


async def test_a_refused_token_stops_the_client(page: Page, tmp_path: Path) -> None:
    # With the token in a first message the bridge closes with 4401, which a
    # page can see; a token in the URL is refused with HTTP 401, which it cannot.
    served = Served("--state-dir", str(tmp_path), "--instance", "client-401")
    await served.start()
    sockets = Sockets(page)
    try:
        await open_page(page, f"http://127.0.0.1:{served.port}")
        expired = token(None, "u1", ttl=-10)
        await page.evaluate(
            "(token) => window.start({ token, tokenIn: 'message', minDelay: 10 })", expired
        )
        await until(page, "window.log.some((m) => m.type === 'bridge:unauthorized')")
        # A reconnect would come within minDelay (10 ms); give it ample time not to.
        await page.wait_for_timeout(500)
        log = await page.evaluate("window.log")
    finally:
        await served.kill()
    assert log == [{"type": "bridge:unauthorized", "code": 4401, "reason": "token expired"}]
    assert sockets.sent == [[{"op": "auth", "token": expired}]]


async def test_short_lived_tokens_are_refreshed_on_the_same_socket(
    page: Page, tmp_path: Path
) -> None:
    """Issue 14: the bridge asks for a new token before one expires; client.js fetches it."""
    served = Served("--state-dir", str(tmp_path), "--instance", "client-refresh")
    await served.start()
    sockets = Sockets(page)
    # The app's token endpoint: a token of two seconds each time.
    await page.expose_function("newToken", lambda: token(None, "u1", ttl=2))
    try:
        await open_page(page, f"http://127.0.0.1:{served.port}")
        await page.evaluate("window.start({ token: () => window.newToken(), tokenIn: 'message' })")
        # Three tokens on one socket: two refreshes, over more than one token's life.
        await until(page, "window.log.filter((m) => m.type === 'bridge:refresh').length >= 2")
        await until(page, "window.log.some((m) => m.type === 'bridge:welcome')")
        await emit(served.port, 1)
        await until(page, f"{IDS}.includes('e1')")
        log = await page.evaluate("window.log")
    finally:
        await served.kill()
    assert len(sockets.sent) == 1, "one socket: no reconnect"
    assert [m["op"] for m in sockets.sent[0]].count("auth") >= 3
    assert not any(m["type"] in {"bridge:unauthorized", "bridge:disconnected"} for m in log)


async def test_a_string_token_that_expires_stops_the_client(page: Page, tmp_path: Path) -> None:
    served = Served("--state-dir", str(tmp_path), "--instance", "client-4419")
    await served.start()
    try:
        await open_page(page, f"http://127.0.0.1:{served.port}")
        await page.evaluate("(token) => window.start({ token })", token(None, "u1", ttl=2))
        await until(page, "window.log.some((m) => m.type === 'bridge:unauthorized')")
        log = await page.evaluate("window.log")
    finally:
        await served.kill()
    assert log[-1] == {
        "type": "bridge:unauthorized",
        "code": 4419,
        "reason": "token expired: connect again with a new token",
    }


# Server-Sent Events, for networks that break WebSocket (issue 16).

#: The browser's own EventSource, no client.js: what it hands the page, and its last event id.
NATIVE = """(url) => {
  window.received = [];
  const source = new EventSource(url);
  source.onmessage = (m) => window.received.push({ ...JSON.parse(m.data), lastEventId: m.lastEventId });
}"""
RECEIVED = "window.received.filter((m) => !m.type.startsWith('bridge:')).map((m) => m.id)"


async def test_a_native_eventsource_resumes_across_a_bridge_restart(
    page: Page, tmp_path: Path
) -> None:
    port = free_port()
    args = ("--port", str(port), "--state-dir", str(tmp_path), "--instance", "sse-test")
    # The stream's requests as Chromium sent them; a reconnect waits until the new
    # bridge has published what the page missed, so that only a resume can bring it.
    urls: list[str] = []
    missed_published = asyncio.Event()

    async def stream_request(route: Route) -> None:
        urls.append(route.request.url)
        if len(urls) > 1:
            await missed_published.wait()
        await route.continue_()

    await page.route(re.compile(r".*/sse\?.*"), stream_request)
    first = Served(*args)
    await first.start()
    try:
        await open_page(page, f"http://127.0.0.1:{port}")
        await page.evaluate(NATIVE, f"/sse?token={token(None, 'u1', ('cliente',))}")
        await until(page, "window.received.some((m) => m.type === 'bridge:welcome')")
        for n in (1, 2, 3):
            await emit(port, n)
        await until(page, f"{RECEIVED}.length >= 3")
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
    finally:
        await first.kill()

    second = Served(*args)
    await second.start()
    try:
        for n in (4, 5):
            await emit(port, n)
        missed_published.set()
        await until(page, f"{RECEIVED}.length >= 5")
        await emit(port, 6)
        await until(page, f"{RECEIVED}.length >= 6")
        received = await page.evaluate("window.received")
    finally:
        await second.kill()

    assert [m["id"] for m in received if "id" in m] == ["e1", "e2", "e3", "e4", "e5", "e6"]
    closing = next(m for m in received if m["type"] == "bridge:close")
    assert (closing["code"], closing["reason"]) == (1001, "server shutting down")
    assert [m["type"] for m in received].count("bridge:welcome") == 2
    # e4 and e5 were published before the reconnect got through, and its URL names
    # no event: only Chromium's own Last-Event-ID (which Playwright does not show) can
    # have brought them back.
    assert len(urls) >= 2
    assert all("after=" not in url for url in urls)
    assert received[-1]["lastEventId"] == "e6"


async def test_client_js_reads_the_event_stream_where_websocket_is_blocked(
    page: Page, tmp_path: Path
) -> None:
    port = free_port()
    args = ("--port", str(port), "--state-dir", str(tmp_path), "--instance", "sse-fallback")
    # A proxy that breaks WebSocket: every upgrade is answered with a close.
    blocked: list[str] = []

    async def refuse(ws: WebSocketRoute) -> None:
        blocked.append(ws.url)
        await ws.close(code=1011, reason="proxy: no websocket")

    await page.route_web_socket(re.compile(r".*/ws(\?.*)?$"), refuse)
    streams: list[str] = []
    page.on("request", lambda r: streams.append(r.url) if "/sse?" in r.url else None)
    first = Served(*args)
    await first.start()
    try:
        await open_page(page, f"http://127.0.0.1:{port}")
        await page.evaluate(
            "(token) => window.start({ token, minDelay: 10, maxDelay: 200 })",
            token(None, "u1", ("cliente",)),
        )
        await until(page, "window.log.some((m) => m.type === 'bridge:welcome')")
        for n in (1, 2, 3):
            await emit(port, n)
        await until(page, f"{IDS}.length >= 3")
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
    finally:
        await first.kill()

    second = Served(*args)
    await second.start()
    try:
        await until(page, "window.log.filter((m) => m.type === 'bridge:welcome').length >= 2")
        for n in (4, 5, 6):
            await emit(port, n)
        await until(page, f"{IDS}.length >= 6")
        log = await page.evaluate("window.log")
    finally:
        await second.kill()

    assert [m["id"] for m in log if "id" in m] == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert blocked, "WebSocket was tried first"
    assert all("batch=1" in url for url in streams)
    # The one after the restart resumed after what the page had.
    assert any("after=e3" in url for url in streams)
    closing = next(m for m in log if m["type"] == "bridge:close")
    assert closing["code"] == 1001
    assert not any(m["type"] == "bridge:unauthorized" for m in log)


# Behaviour that needs a misbehaving server: a fake one, in the page's network layer.

FAKE = "http://bridge.test"
FAKE_WS = re.compile(r"^ws://bridge\.test/ws(\?.*)?$")
WELCOME = json.dumps({"type": "bridge:welcome", "user": "u1", "roles": [], "instance": "fake"})


def event(n: int, event_type: str = "reserva:creada") -> str:
    data = {"reserva": {"id": n}} if event_type.startswith("reserva:") else {"reservaId": n}
    return json.dumps(
        {
            "id": f"e{n}",
            "type": event_type,
            "data": data,
            "timestamp": "2024-11-15T14:30:00Z",
            "audience": {"kind": "all"},
        }
    )


async def serve_client_js(page: Page) -> None:
    """Serve ``client.js``, as a bridge with the seed's catalog fills it in, from the fake
    bridge's origin and open the test page there."""
    client_js = typescript.client_js((STATIC / "client.js").read_text(), catalog)
    await page.route(
        f"{FAKE}/client.js",
        lambda route: route.fulfill(body=client_js, content_type="text/javascript"),
    )
    await open_page(page, FAKE)


async def test_replayed_duplicates_are_dropped_and_helpers_get_the_data(page: Page) -> None:
    connections: list[tuple[str, list[Any]]] = []
    closing: set[asyncio.Task[None]] = set()

    def fake_bridge(ws: WebSocketRoute) -> None:
        received: list[Any] = []
        connections.append((ws.url, received))

        def on_message(message: str | bytes) -> None:
            received.append(json.loads(message))
            if len(connections) == 1 and received == [{"op": "ping"}]:
                # A batch, as with ?batch=1, then the bridge goes away.
                ws.send("\n".join([event(1), event(2, "nueva_reserva")]))
                closing.add(asyncio.ensure_future(ws.close(code=1001, reason="restarting")))
            elif len(connections) == 2 and received == [{"op": "ping"}]:
                # An instance that replays too much: e1 and e2 again, then e3.
                ws.send("\n".join([event(1), event(2, "nueva_reserva"), event(3)]))
                ws.send(json.dumps({"type": "bridge:reset"}))

        ws.on_message(on_message)
        ws.send(WELCOME)

    await page.route_web_socket(FAKE_WS, fake_bridge)
    await serve_client_js(page)
    await page.evaluate(
        """(token) => {
            window.start({ token, minDelay: 10 });
            window.seen = [];
            window.client.onReservaNueva((data, event) => window.seen.push(["nueva", data, event.id]));
            window.client.onNuevaReserva((data) => window.seen.push(["nueva_reserva", data]));
            window.client.onBusinessEvent((event) => window.seen.push(["business", event.id]));
        }""",
        "tok",
    )
    await until(page, "window.log.some((m) => m.type === 'bridge:reset')", timeout=10)
    assert await page.evaluate(IDS) == ["e1", "e2", "e3"]
    assert await page.evaluate("window.seen") == [
        ["nueva", {"reserva": {"id": 1}}, "e1"],
        ["business", "e1"],
        ["nueva_reserva", {"reservaId": 2}],
        ["nueva", {"reserva": {"id": 3}}, "e3"],
        ["business", "e3"],
    ]
    assert [url for url, _ in connections] == [
        "ws://bridge.test/ws?token=tok&batch=1",
        "ws://bridge.test/ws?token=tok&batch=1&after=e2",
    ]


async def test_a_silent_socket_is_replaced(page: Page) -> None:
    pings: list[int] = []
    connected = asyncio.Event()

    def dead_bridge(ws: WebSocketRoute) -> None:
        # Welcomes, then never answers again: a socket that died without a close.
        pings.append(0)
        ws.on_message(lambda _message: pings.__setitem__(-1, pings[-1] + 1))
        ws.send(WELCOME)
        if len(pings) == 2:
            connected.set()

    await page.route_web_socket(FAKE_WS, dead_bridge)
    await serve_client_js(page)
    await page.evaluate("() => window.start({ heartbeat: 200, minDelay: 10 })")
    await asyncio.wait_for(connected.wait(), 10)
    disconnected = await page.evaluate("window.log.find((m) => m.type === 'bridge:disconnected')")
    assert disconnected["code"] == 4000
    assert disconnected["reason"].startswith("no message for")
    assert pings[0] >= 2  # the first message after the welcome, then heartbeat pings


async def test_the_stream_sits_beside_the_websocket_path_and_resumes_after_the_last_event(
    page: Page,
) -> None:
    urls: list[str] = []
    body = f"retry: 1000\n\ndata: {WELCOME}\n\nid: e1\ndata: {event(1)}\n\n"

    async def fake_stream(route: Route) -> None:
        urls.append(route.request.url)
        # The whole stream at once, then its end: the client reconnects by itself.
        await route.fulfill(body=body, content_type="text/event-stream")

    await page.route(re.compile(r"^http://bridge\.test/prefix/sse\?.*"), fake_stream)
    await serve_client_js(page)
    await page.evaluate(
        """async () => {
            const { connect } = await import("/client.js");
            window.log = [];
            const client = connect("ws://bridge.test/prefix/ws", {
                transport: "sse", token: "tok", minDelay: 10,
            });
            client.on("*", (message) => window.log.push(message));
        }"""
    )
    await until(page, "window.log.filter((m) => m.type === 'bridge:welcome').length >= 2")
    assert urls[0] == "http://bridge.test/prefix/sse?token=tok&batch=1"
    assert urls[1] == "http://bridge.test/prefix/sse?token=tok&batch=1&after=e1"
    assert await page.evaluate(IDS) == ["e1"], "the repeat of e1 was dropped"


async def publish(port: int, channel: str, n: int) -> None:
    """Publish event ``c<n>`` to ``channel`` through the bridge's HTTP API."""
    body = {"id": f"c{n}", "channel": channel, "event": "order:updated", "payload": {"n": n}}
    url = f"http://127.0.0.1:{port}/api/dashboard/publish"
    reply = await asyncio.to_thread(requests.post, url, json=body, timeout=10)
    assert reply.status_code == 202, reply.text


@pytest.mark.parametrize("transport", ["websocket", "sse"])
async def test_a_page_follows_its_channel_only_and_again_after_a_restart(
    page: Page, tmp_path: Path, transport: str
) -> None:
    port = free_port()
    args = ("--port", str(port), "--state-dir", str(tmp_path), "--instance", "channels-page")
    allowed = Authenticator(SECRET).issue(
        "u1", ["cliente"], ttl=timedelta(minutes=5), channels=["order:42"]
    )
    first = Served(*args)
    await first.start()
    try:
        await open_page(page, f"http://127.0.0.1:{port}")
        await page.evaluate(
            """([token, transport]) => {
                window.start({ token, transport, minDelay: 10, maxDelay: 200 });
                window.orders = [];
                window.stop = window.client.subscribe("order:42", (e) => window.orders.push(e.id));
                window.client.subscribe("order:43", (e) => window.orders.push(e.id));
            }""",
            [allowed, transport],
        )
        await until(page, "window.log.some((m) => m.type === 'bridge:subscribed')")
        await until(page, "window.log.some((m) => m.type === 'bridge:refused')")
        for n, channel in ((1, "order:42"), (2, "order:43"), (3, "order:42")):
            await publish(port, channel, n)
        await until(page, "window.orders.length >= 2")
        first.signal(signal.SIGTERM)
        assert await first.wait() == 0
    finally:
        await first.kill()

    second = Served(*args)
    await second.start()
    try:
        await until(page, "window.log.filter((m) => m.type === 'bridge:subscribed').length >= 2")
        await publish(port, "order:42", 4)
        await until(page, "window.orders.length >= 3")
        await page.evaluate("window.stop()")
        await publish(port, "order:42", 5)
        await emit(port, 6)  # a broadcast after it: once it is in, c5 would have been too
        await until(page, f"{IDS}.includes('e6')")
        log = await page.evaluate("window.log")
        orders = await page.evaluate("window.orders")
    finally:
        await second.kill()

    assert orders == ["c1", "c3", "c4"]
    refused = next(m for m in log if m["type"] == "bridge:refused")
    assert refused["channel"] == "order:43"
    assert [m["id"] for m in log if "id" in m] == ["c1", "c3", "c4", "e6"]
