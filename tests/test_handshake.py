"""The WebSocket opening handshake on ``/ws``, without sockets: what a client gets back.

:class:`~bridge.handshake.Handshake` is driven directly, the way the HTTP layer
calls it: the raw bytes of an upgrade request (written by the ``websockets``
Sans-I/O client, as a browser or script would send them), the parsed
:class:`~bridge.http.Request`, and a transport that keeps what is written. The
same client protocol then reads the answer: the 101 or the refusal, and the
frames after it. One test goes through a real socket, for what the HTTP layer
answers a plain ``GET /ws``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
import pytest
from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.typing import Origin
from websockets.uri import parse_uri

from api_rest.events import Reserva, ReservaCreada
from bridge.app import Bridge, open_broker
from bridge.config import Limits, Settings
from bridge.handshake import Handshake
from bridge.http import Request
from bridge.websocket import FRAMES, WebSocketLink
from schemas import Event
from tests.support.bridges import SECRET, running, settings, token
from tests.support.httpclient import request
from tests.support.wire import Wire

HOST = "127.0.0.1:4000"
OTHER_SECRET = "another-secret-that-this-bridge-does-not-know-about-at-all"


@dataclass
class Upgrade:
    """One upgrade request as a client saw it through: its protocol, the wire, the client made."""

    protocol: ClientProtocol
    wire: Wire
    link: WebSocketLink | None
    seen: list[Response | Frame] = field(default_factory=list)
    taken: int = 0
    read: int = 0

    def _pull(self) -> None:
        self.protocol.receive_data(bytes(self.wire.out[self.read :]))
        self.read = len(self.wire.out)
        self.seen += [e for e in self.protocol.events_received() if isinstance(e, Response | Frame)]

    def events(self) -> list[Response | Frame]:
        """What the bridge wrote that was not looked at yet, as the client parses it."""
        self._pull()
        new, self.taken = self.seen[self.taken :], len(self.seen)
        return new

    def response(self) -> Response:
        """The answer to the upgrade request."""
        self._pull()
        first = self.seen[0]
        assert isinstance(first, Response)
        return first

    def texts(self) -> list[str]:
        return [
            bytes(e.data).decode()
            for e in self.events()
            if isinstance(e, Frame) and e.opcode is Opcode.TEXT
        ]

    def send(self, text: str) -> None:
        """Send a text message to the bridge, as the client's socket would deliver it."""
        assert self.link is not None
        self.protocol.send_text(text.encode())
        self.link.receive(b"".join(self.protocol.data_to_send()))


def upgrade(
    handshake: Handshake,
    path: str = "/ws",
    *,
    origin: str | None = None,
    deflate: bool = False,
    wire: Wire | None = None,
    drop: str | None = None,
    **query: str | None,
) -> Upgrade:
    """Send ``handshake`` an upgrade to ``path?query``, offering compression if ``deflate``.

    ``drop`` names a header the client leaves out (a broken client); a ``None``
    in ``query`` leaves that parameter out.
    """
    params = {name: v for name, v in query.items() if v is not None}
    target = path + (f"?{urlencode(params)}" if params else "")
    extensions = [ClientPerMessageDeflateFactory()] if deflate else None
    protocol = ClientProtocol(
        parse_uri(f"ws://{HOST}{target}"),
        origin=Origin(origin) if origin is not None else None,
        extensions=extensions,
    )
    ws_request = protocol.connect()
    if drop is not None:
        del ws_request.headers[drop]
    protocol.send_request(ws_request)
    raw = b"".join(protocol.data_to_send())
    parts = urlsplit(ws_request.path)
    parsed = Request(
        method="GET",
        path=parts.path,
        query=dict(parse_qsl(parts.query)),
        headers={k.lower(): v for k, v in ws_request.headers.raw_items()},
        remote="192.0.2.7:50000",
    )
    wire = wire or Wire()
    return Upgrade(protocol, wire, handshake(wire, raw, parsed))


@dataclass
class Bridged:
    bridge: Bridge
    handshake: Handshake


Make = Callable[..., Bridged]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Make]:
    """Builds a bridge's handshake with settings changed, its history open (nothing listens)."""
    bridges: list[Bridge] = []

    def build(**changes: Any) -> Bridged:
        config: Settings = settings(tmp_path / str(len(bridges)), **changes)
        bridge = Bridge(config, open_broker(config))
        bridge.history.open()
        bridges.append(bridge)
        return Bridged(bridge, Handshake(bridge.hub, bridge.authenticator, config))

    yield build
    for bridge in bridges:
        bridge.history.close()


def expired() -> str:
    return jwt.encode({"sub": "u1", "roles": [], "exp": int(time.time()) - 60}, SECRET, "HS256")


def forged() -> str:
    claims = {"sub": "u1", "roles": ["admin"], "exp": int(time.time()) + 60}
    return jwt.encode(claims, OTHER_SECRET, "HS256")


def assert_refused(answer: Upgrade, status: int, reason: str) -> str:
    """The refusal is ``status`` in plain text naming ``reason``, and no client was made."""
    response = answer.response()
    assert response.status_code == status
    assert response.headers["Connection"] == "close"
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    body = (response.body or b"").decode()
    assert reason in body
    assert answer.link is None
    return body


# Accepted


async def test_a_token_in_the_url_gets_a_101_and_a_welcome_naming_the_user(make: Make) -> None:
    bridged = make()
    answer = upgrade(bridged.handshake, token=token(user="u7", roles=("proveedor", "admin")))
    assert answer.response().status_code == 101
    assert [json.loads(t) for t in answer.texts()] == [
        {
            "type": "bridge:welcome",
            "user": "u7",
            "roles": ["admin", "proveedor"],
            "instance": "test",
        }
    ]
    assert answer.link.session in bridged.bridge.hub.sessions
    assert bridged.bridge.hub.router.count_by_role() == {"admin": 1, "proveedor": 1}


async def test_without_a_token_the_upgrade_succeeds_and_waits_for_an_auth_message(
    make: Make,
) -> None:
    answer = upgrade(make().handshake)
    assert answer.response().status_code == 101
    assert answer.texts() == []  # no welcome before the token
    answer.send(json.dumps({"op": "auth", "token": token(user="u2")}))
    welcome = json.loads(answer.texts()[0])
    assert (welcome["type"], welcome["user"]) == ("bridge:welcome", "u2")


async def test_an_anonymous_bridge_welcomes_a_client_without_a_token(make: Make) -> None:
    answer = upgrade(make(allow_anonymous=True).handshake)
    assert answer.response().status_code == 101
    welcome = json.loads(answer.texts()[0])
    assert (welcome["type"], welcome["user"], welcome["roles"]) == ("bridge:welcome", None, [])


# Refused: token


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (expired, "token expired"),
        (forged, "token signature is not valid"),
        (lambda: "not-a-jwt-at-all", "token not valid"),
    ],
    ids=["expired", "forged", "garbage"],
)
@pytest.mark.parametrize("anonymous", [False, True], ids=["", "anonymous-allowed"])
async def test_a_bad_token_gets_401_saying_why_and_never_echoes_the_token(
    make: Make, caplog: pytest.LogCaptureFixture, bad: Any, reason: str, anonymous: bool
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    bridged = make(allow_anonymous=anonymous)  # a bad token is not an anonymous one
    sent = bad()
    answer = upgrade(bridged.handshake, token=sent)
    body = assert_refused(answer, 401, reason)
    assert sent not in body
    assert not bridged.bridge.hub.sessions
    refusals = [r for r in caplog.records if r.getMessage() == "handshake refused"]
    assert len(refusals) == 1
    assert (refusals[0].status, refusals[0].remote) == (401, "192.0.2.7:50000")  # type: ignore[attr-defined]
    assert reason in refusals[0].reason  # type: ignore[attr-defined]
    assert all(sent not in str(r.__dict__) for r in caplog.records)


# Refused: origin


async def test_a_browser_origin_not_allowed_gets_403_even_with_a_valid_token(make: Make) -> None:
    bridged = make()
    answer = upgrade(bridged.handshake, origin="https://evil.example", token=token())
    body = assert_refused(answer, 403, "origin https://evil.example is not allowed")
    assert "--allowed-origins" in body
    assert not bridged.bridge.hub.sessions


async def test_the_origin_is_checked_before_the_token(make: Make) -> None:
    # A page elsewhere learns nothing about the tokens it tries.
    answer = upgrade(make().handshake, origin="https://evil.example", token=forged())
    assert_refused(answer, 403, "is not allowed")


@pytest.mark.parametrize(
    "origin",
    [None, f"http://{HOST}", "https://app.example", "https://app.example/"],
    ids=["no-origin", "same-host", "allowed", "allowed-with-slash"],
)
async def test_scripts_the_pages_own_origin_and_allowed_origins_get_in(
    make: Make, origin: str | None
) -> None:
    bridged = make(allowed_origins=frozenset({"https://app.example"}))
    answer = upgrade(bridged.handshake, origin=origin, token=token())
    assert answer.response().status_code == 101


# Refused: not a WebSocket upgrade the bridge serves


async def test_an_upgrade_to_another_path_gets_404_naming_ws(make: Make) -> None:
    answer = upgrade(make().handshake, "/socket", token=token())
    assert_refused(answer, 404, "WebSocket connections go to /ws")


async def test_an_upgrade_without_a_websocket_key_gets_400_saying_so(make: Make) -> None:
    answer = upgrade(make().handshake, drop="Sec-WebSocket-Key", token=token())
    assert_refused(answer, 400, "Sec-WebSocket-Key")


async def test_a_plain_get_to_ws_gets_426_saying_to_open_a_websocket(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as bridge:
        reply = await request(bridge.port, "GET", "/ws")
    assert reply.status == 426
    assert reply.headers["upgrade"] == "websocket"
    assert reply.json()["error"] == "/ws is a WebSocket: open it with a WebSocket client"


# What the accepted connection is


@pytest.mark.parametrize(
    ("batch", "frames"),
    [("1", ["e1\ne2"]), (None, ["e1", "e2"]), ("0", ["e1", "e2"])],
    ids=["batch=1", "no-batch", "batch=0"],
)
async def test_batch_1_puts_the_events_of_a_burst_in_one_frame(
    make: Make, batch: str | None, frames: list[str]
) -> None:
    bridged = make()
    answer = upgrade(bridged.handshake, token=token(), batch=batch)
    assert answer.link is not None
    assert answer.link.session.batch is (batch == "1")
    answer.texts()  # the welcome
    answer.send('{"op": "ping"}')  # no resume: live events flow at once
    assert [json.loads(t)["type"] for t in answer.texts()] == ["bridge:pong"]
    answer.wire.written.clear()
    for n in (1, 2):
        bridged.bridge.hub.on_event(Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}"))
    await asyncio.wait_for(answer.wire.written.wait(), 5)
    ids = [
        "\n".join(json.loads(line)["id"] for line in text.split("\n")) for text in answer.texts()
    ]
    assert ids == frames


@pytest.mark.parametrize("compression", [False, True], ids=["off", "on"])
async def test_permessage_deflate_is_accepted_only_with_compression(
    make: Make, compression: bool
) -> None:
    answer = upgrade(make(compression=compression).handshake, deflate=True, token=token())
    response = answer.response()
    assert response.status_code == 101
    offered = response.headers.get("Sec-WebSocket-Extensions")
    if compression:
        assert offered is not None
        assert offered.startswith("permessage-deflate")
    else:
        assert offered is None
    assert bool(answer.protocol.extensions) is compression
    assert answer.link is not None
    assert (answer.link.session.framing is not FRAMES) is compression
    # The welcome went out compressed (RSV1 set) only then, and the client reads it either way.
    first_frame = answer.wire.out.split(b"\r\n\r\n", 1)[1]
    assert bool(first_frame[0] & 0x40) is compression
    assert [json.loads(t)["type"] for t in answer.texts()] == ["bridge:welcome"]


async def test_messages_over_max_message_size_close_the_connection_with_1009(make: Make) -> None:
    limits = Limits(resume_window=0.2, max_message_size=1024)
    answer = upgrade(make(limits=limits).handshake, token=token())
    answer.events()
    answer.send(json.dumps({"op": "ping", "pad": "x" * 2000}))
    closes = [e for e in answer.events() if isinstance(e, Frame) and e.opcode is Opcode.CLOSE]
    assert len(closes) == 1
    assert int.from_bytes(closes[0].data[:2], "big") == 1009


async def test_the_kernel_send_buffer_of_a_websocket_is_bounded(make: Make) -> None:
    limit = Limits().socket_send_buffer
    with socket.socket() as sock:
        answer = upgrade(make().handshake, wire=Wire(sock), token=token())
        assert answer.response().status_code == 101
        # Linux doubles what is asked for (for its bookkeeping); others keep it.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in {limit, 2 * limit}
