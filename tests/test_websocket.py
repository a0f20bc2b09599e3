"""The WebSocket framing, without sockets: what a client's protocol reads back."""

from __future__ import annotations

import json

from websockets.client import ClientProtocol
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    ServerPerMessageDeflateFactory,
)
from websockets.frames import Frame, Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol
from websockets.uri import parse_uri

from api_rest.events import Reserva, ReservaCreada
from bridge.router import ANONYMOUS, Entry, Principal, Router
from bridge.websocket import FRAMES, Deflated, fit_reason
from schemas import Event


class Sub:
    principal: Principal = ANONYMOUS


def entries(*ids: str) -> list[Entry]:
    router: Router[Sub] = Router()
    accepted = [router.accept(Event.of(ReservaCreada(reserva=Reserva(id=1)), id=i)) for i in ids]
    return [e for e in accepted if e is not None]


def read(data: bytes, *, deflate: bool = False) -> list[bytes]:
    """The text messages a client reads from ``data``, after its handshake."""
    _, client = _pair(deflate=deflate)
    client.receive_data(data)
    return [bytes(f.data) for f in client.events_received() if isinstance(f, Frame)]


def _pair(*, deflate: bool) -> tuple[ServerProtocol, ClientProtocol]:
    client = ClientProtocol(
        parse_uri("ws://bridge/ws"),
        extensions=[ClientPerMessageDeflateFactory()] if deflate else None,
    )
    server = ServerProtocol(extensions=[ServerPerMessageDeflateFactory()] if deflate else None)
    request = client.connect()
    client.send_request(request)
    server.receive_data(b"".join(client.data_to_send()))
    (parsed,) = server.events_received()
    assert isinstance(parsed, Request)
    server.send_response(server.accept(parsed))
    client.receive_data(b"".join(server.data_to_send()))
    client.events_received()
    return server, client


def test_an_event_is_framed_once_for_every_plain_connection() -> None:
    (entry,) = entries("a")
    first = FRAMES.events([entry], batch=False)
    assert FRAMES.events([entry], batch=False) is first
    assert read(first) == [entry.json]


def test_events_queued_together_leave_as_one_write_of_one_frame_each() -> None:
    queued = entries("a", "b", "c")
    assert read(FRAMES.events(queued, batch=False)) == [e.json for e in queued]


def test_a_batch_is_one_frame_of_events_one_per_line() -> None:
    queued = entries("a", "b")
    (message,) = read(FRAMES.events(queued, batch=True))
    assert [json.loads(line)["id"] for line in message.split(b"\n")] == ["a", "b"]


def test_a_compressing_connection_frames_its_own_messages() -> None:
    server, client = _pair(deflate=True)
    framing = Deflated(server)
    queued = entries("a", "b")
    data = framing.events(queued, batch=False)
    assert data[0] & 0x40, "RSV1: compressed"
    client.receive_data(data)
    received = [f for f in client.events_received() if isinstance(f, Frame)]
    assert [f.opcode for f in received] == [Opcode.TEXT, Opcode.TEXT]
    assert [bytes(f.data) for f in received] == [e.json for e in queued]
    assert not queued[0].framed, "nothing of its own is cached on the shared entry"


def test_a_close_reason_is_cut_to_fit_a_close_frame_without_breaking_a_character() -> None:
    reason = fit_reason("é" * 100)
    assert len(reason.encode()) <= 123
    assert reason.endswith("...")
    assert fit_reason("short") == "short"
