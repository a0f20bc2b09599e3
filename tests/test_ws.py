"""The WebSocket side of one bridge, with real clients, on the memory:// broker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from api_rest.events import DashboardUpdate, Reserva, ReservaCreada
from bridge.app import Bridge
from bridge.auth import Authenticator
from bridge.config import Limits
from bridge.session import Phase
from schemas import Event, Role, User
from tests.support.bridges import (
    SECRET,
    client,
    operator,
    recv,
    recv_json,
    running,
    settings,
    token,
    url,
)


def reserva(n: int, **kw: object) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}", **kw)  # type: ignore[arg-type]


async def read_to_end(reader: asyncio.StreamReader) -> None:
    with contextlib.suppress(ConnectionResetError):
        await asyncio.wait_for(reader.read(), 5)


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running(settings(tmp_path)) as b:
        yield b


async def test_welcome_names_the_user_and_roles_from_the_token(bridge: Bridge) -> None:
    async with connect(url(bridge, token=token(bridge, "u7", ("proveedor", "admin")))) as ws:
        assert await recv_json(ws) == {
            "type": "bridge:welcome",
            "user": "u7",
            "roles": ["admin", "proveedor"],
            "instance": "test",
        }


async def test_a_token_may_come_as_the_first_message(bridge: Bridge) -> None:
    async with connect(url(bridge)) as ws:
        await ws.send(json.dumps({"op": "auth", "token": token(bridge, "u2")}))
        assert (await recv_json(ws))["user"] == "u2"


async def test_no_token_in_time_closes_with_4401(tmp_path: Path) -> None:
    config = settings(tmp_path, limits=Limits(auth_timeout=0.2))
    async with running(config) as bridge, connect(url(bridge)) as ws:
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 4401


# Token lifetime (issue 14: a connection got a user's events after its token expired).


async def test_an_expiring_token_is_asked_for_and_then_the_connection_closes_4419(
    bridge: Bridge,
) -> None:
    async with client(bridge, token=token(bridge, "u1", ttl=2)) as ws:
        await ws.send('{"op": "ping"}')
        assert await recv_json(ws) == {"type": "bridge:pong"}
        refresh = await recv_json(ws)  # half the lifetime before: 1 s
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
    assert refresh == {"type": "bridge:refresh", "seconds": 1}
    assert caught.value.rcvd is not None
    assert (caught.value.rcvd.code, caught.value.rcvd.reason) == (
        4419,
        "token expired: connect again with a new token",
    )


async def test_a_refreshed_token_keeps_the_connection_and_its_new_roles(bridge: Bridge) -> None:
    first_ends = time.monotonic() + 2
    async with client(bridge, token=token(bridge, "u1", ttl=2)) as ws:
        await ws.send('{"op": "ping"}')
        await recv_json(ws)
        assert (await recv_json(ws))["type"] == "bridge:refresh"
        fresh = token(bridge, "u1", ("admin",), ttl=60)
        await ws.send(json.dumps({"op": "auth", "token": fresh}))
        await ws.send('{"op": "ping"}')
        assert await recv_json(ws) == {"type": "bridge:pong"}  # no second welcome
        await bridge.broker.publish(reserva(1, audience=Role(role="admin")))
        assert (await recv_json(ws))["id"] == "e1"  # the new token's role counts
        # Nothing, not even a close, until well past the first token's end.
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), first_ends - time.monotonic() + 0.5)
        await ws.send('{"op": "ping"}')
        assert await recv_json(ws) == {"type": "bridge:pong"}


async def test_a_new_token_for_another_user_closes_4401(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge, "u1")) as ws:
        await ws.send(json.dumps({"op": "auth", "token": token(bridge, "mallory")}))
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 4401


async def test_tokens_that_live_too_long_or_miss_iss_and_aud_are_refused(tmp_path: Path) -> None:
    config = settings(
        tmp_path, max_token_lifetime=3600.0, jwt_issuer="shop", jwt_audience="event-bridge"
    )
    right = Authenticator(SECRET, issuer="shop", audience="event-bridge")
    wrong = Authenticator(SECRET, issuer="elsewhere", audience="event-bridge")
    cases = {
        "right": right.issue("u1", [], ttl=timedelta(minutes=5)),
        "two hours": right.issue("u1", [], ttl=timedelta(hours=2)),
        "no iss or aud": token(None, "u1"),
        "another issuer": wrong.issue("u1", [], ttl=timedelta(minutes=5)),
    }
    async with running(config) as bridge:
        statuses = {}
        for name, candidate in cases.items():
            try:
                async with connect(url(bridge, token=candidate)):
                    statuses[name] = 101
            except InvalidStatus as exc:
                statuses[name] = exc.response.status_code
    assert statuses == {"right": 101, "two hours": 401, "no iss or aud": 401, "another issuer": 401}


async def test_anonymous_clients_get_only_events_for_everyone(tmp_path: Path) -> None:
    config = settings(tmp_path, allow_anonymous=True)
    async with running(config) as bridge, connect(url(bridge)) as ws:
        assert (await recv_json(ws))["user"] is None
        await bridge.broker.publish(reserva(1, audience=Role(role="admin")))
        await bridge.broker.publish(reserva(2))
        assert (await recv_json(ws))["id"] == "e2"


async def test_each_client_gets_exactly_its_audiences_events(bridge: Bridge) -> None:
    async with (
        client(bridge, token=token(bridge, "u1", ("proveedor",))) as prov,
        client(bridge, token=token(bridge, "u2", ("cliente",))) as cli,
        client(bridge, token=token(bridge, "u2", ("cliente",))) as cli_phone,
    ):
        for ws in (prov, cli, cli_phone):
            await ws.send('{"op": "ping"}')  # ends the resume window: live events flow
            assert (await recv_json(ws))["type"] == "bridge:pong"
        await bridge.broker.publish(reserva(1, audience=Role(role="proveedor")))
        await bridge.broker.publish(reserva(2, audience=User(user="u2")))
        await bridge.broker.publish(reserva(3))
        assert [(await recv_json(prov))["id"] for _ in range(2)] == ["e1", "e3"]
        assert [(await recv_json(cli))["id"] for _ in range(2)] == ["e2", "e3"]
        assert [(await recv_json(cli_phone))["id"] for _ in range(2)] == ["e2", "e3"]


async def test_an_event_sent_twice_is_delivered_once(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge)) as ws:
        for event in (reserva(1), reserva(1), reserva(2)):
            await bridge.broker.publish(event)
        assert [(await recv_json(ws))["id"] for _ in range(2)] == ["e1", "e2"]


async def test_messages_the_bridge_cannot_understand_get_bridge_error(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge)) as ws:
        await ws.send("hello")
        assert (await recv_json(ws))["error"].startswith("not valid JSON")
        await ws.send('{"op": "dance"}')
        error = await recv_json(ws)
        assert error["type"] == "bridge:error"
        assert "unknown op 'dance'; known: 'auth', 'resume', 'ping', 'subscribe'" in error["error"]
        assert error["detail"][0]["loc"] == ["op"]
        await ws.send(b"\x00\x01")
        assert "text frames" in (await recv_json(ws))["error"]
        await ws.send('{"op": "ping"}')
        assert await recv_json(ws) == {"type": "bridge:pong"}


async def test_an_oversized_message_closes_with_1009(tmp_path: Path) -> None:
    config = settings(tmp_path, limits=Limits(max_message_size=1024))
    async with running(config) as bridge, client(bridge, token=token(bridge)) as ws:
        await ws.send("x" * 2048)
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1009


@pytest.mark.parametrize(
    ("allowed", "origin", "status"),
    [
        (None, "http://evil.example", 403),
        (None, "http://127.0.0.1:{port}", 101),
        (frozenset({"https://app.example"}), "https://app.example", 101),
        # Its own pages stay allowed when an application's origin is configured (issue 14).
        (frozenset({"https://app.example"}), "http://127.0.0.1:{port}", 101),
        (frozenset({"*"}), "http://anything.example", 101),
    ],
)
async def test_browser_origins_are_checked(
    tmp_path: Path, allowed: frozenset[str] | None, origin: str, status: int
) -> None:
    async with running(settings(tmp_path, allowed_origins=allowed)) as bridge:
        header = origin.format(port=bridge.port)
        try:
            async with connect(url(bridge, token=token(bridge)), origin=header) as ws:  # type: ignore[arg-type]
                await recv(ws)
            got = 101
        except InvalidStatus as exc:
            got = exc.response.status_code
        assert got == status


@pytest.mark.parametrize(
    ("host", "allowed_hosts", "status"),
    [
        # DNS rebinding: the attacker's name, pointed at the bridge; its page is
        # same-origin with what it reaches there (issue 14: this got 101).
        ("evil.example:{port}", frozenset[str](), 400),
        ("localhost:{port}", frozenset[str](), 101),
        ("[::1]:{port}", frozenset[str](), 101),
        ("10.1.2.3:{port}", frozenset[str](), 101),
        ("events.example.com", frozenset({"events.example.com"}), 101),
        ("evil.example:{port}", frozenset({"*"}), 101),
    ],
)
async def test_the_host_must_be_one_the_bridge_serves(
    tmp_path: Path, host: str, allowed_hosts: frozenset[str], status: int
) -> None:
    async with running(settings(tmp_path, allowed_hosts=allowed_hosts)) as bridge:
        named = host.format(port=bridge.port)
        origin = f"http://{named}"
        handshake = (
            f"GET /ws?token={token(bridge)} HTTP/1.1\r\nHost: {named}\r\nOrigin: {origin}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        bearer = operator()["Authorization"]
        read = (
            f"GET /api/dashboard/stats HTTP/1.1\r\nHost: {named}\r\n"
            f"Authorization: {bearer}\r\nConnection: close\r\n\r\n"
        )
        replies = []
        for raw in (handshake, read):
            reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
            writer.write(raw.encode())
            replies.append(await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5))
            writer.close()
    statuses = [int(reply.split()[1]) for reply in replies]
    # The read endpoint is refused alike: a same-origin GET carries no Origin.
    assert statuses == [status, 200 if status == 101 else 400]


async def test_a_message_in_fragments_is_put_back_together(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge)) as ws:
        await ws.send(iter(['{"op":', ' "pi', 'ng"}']))
        assert await recv_json(ws) == {"type": "bridge:pong"}


async def test_a_text_frame_that_is_not_utf8_closes_with_1007(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge)) as ws:
        await ws.send(b'{"op": "\xff"}', text=True)
        with pytest.raises(ConnectionClosed) as caught:
            await recv(ws)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1007


async def test_a_batch_client_gets_a_burst_in_one_frame(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge), batch="1") as ws:
        await ws.send('{"op": "ping"}')
        await recv(ws)
        for n in range(5):
            await bridge.broker.publish(reserva(n))
        frames = []
        while sum(len(f.split("\n")) for f in frames) < 5:
            frames.append(await recv(ws))
        ids = [json.loads(line)["id"] for frame in frames for line in frame.split("\n")]
        assert ids == ["e0", "e1", "e2", "e3", "e4"]
        assert len(frames) == 1


async def test_a_batch_client_gets_a_lone_event_at_once_and_later_ones_together(
    tmp_path: Path,
) -> None:
    async with (
        running(settings(tmp_path, limits=Limits(batch_window=2.0))) as bridge,
        client(bridge, token=token(bridge), batch="1") as ws,
    ):
        await ws.send('{"op": "ping"}')
        await recv(ws)
        await bridge.broker.publish(reserva(1))
        # After a quiet spell the event does not wait for the window.
        first = await asyncio.wait_for(ws.recv(), 1.0)
        assert json.loads(first)["id"] == "e1"
        await bridge.broker.publish(reserva(2))
        await ws.send('{"op": "ping"}')
        # The pong overtakes e2: inside the window, events wait for it to close.
        assert (await recv_json(ws))["type"] == "bridge:pong"
        await bridge.broker.publish(reserva(3))
        frame = await recv(ws)
        assert [json.loads(line)["id"] for line in frame.split("\n")] == ["e2", "e3"]


async def test_a_new_connection_gets_the_latest_dashboard(bridge: Bridge) -> None:
    for total in (1, 2):
        await bridge.broker.publish(
            Event.of(DashboardUpdate.model_validate({"services": {"total": total}}))
        )
    await bridge.broker.publish(reserva(1))
    async with client(bridge, token=token(bridge)) as ws:
        first = await recv_json(ws)
    assert (first["type"], first["data"]) == ("dashboard:update", {"services": {"total": 2}})


async def test_resume_replays_what_was_missed_then_goes_live(bridge: Bridge) -> None:
    tok = token(bridge, "u1", ("cliente",))
    async with client(bridge, token=tok) as ws:
        await ws.send('{"op": "ping"}')
        await recv(ws)
        await bridge.broker.publish(reserva(1))
        assert (await recv_json(ws))["id"] == "e1"
    await bridge.broker.publish(reserva(2))
    await bridge.broker.publish(reserva(3, audience=Role(role="admin")))
    await bridge.broker.publish(reserva(4, audience=User(user="u1")))
    async with client(bridge, token=tok) as ws:
        await ws.send('{"op": "resume", "after": "e1"}')
        await bridge.broker.publish(reserva(5))
        assert [(await recv_json(ws))["id"] for _ in range(3)] == ["e2", "e4", "e5"]


async def test_resuming_with_the_request_needs_no_message_and_no_window(tmp_path: Path) -> None:
    """``?after=`` (what /client.js sends): what was missed, then live, at once."""
    window = 10.0
    async with running(settings(tmp_path, limits=Limits(resume_window=window))) as bridge:
        for n in (1, 2, 3):
            await bridge.broker.publish(reserva(n))
        async with client(bridge, token=token(bridge), after="e1") as ws:
            await bridge.broker.publish(reserva(4))
            # Far sooner than the resume window: nothing is held for a message.
            async with asyncio.timeout(window / 2):
                assert [(await recv_json(ws))["id"] for _ in range(3)] == ["e2", "e3", "e4"]
        async with client(bridge, token=token(bridge), after="long-gone") as ws:
            assert await recv_json(ws) == {
                "type": "bridge:reset",
                "latest": "e4",
                "lost": ["all", "user:u1"],
            }


async def test_resume_from_an_id_no_longer_kept_gets_a_reset(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge)) as ws:
        await ws.send('{"op": "resume", "after": "long-gone"}')
        assert await recv_json(ws) == {
            "type": "bridge:reset",
            "latest": None,
            "lost": ["all", "user:u1"],
        }
        await bridge.broker.publish(reserva(1))
        assert (await recv_json(ws))["id"] == "e1"


async def test_live_events_wait_for_the_resume_window_then_flow(bridge: Bridge) -> None:
    window = bridge.settings.limits.resume_window
    started = time.monotonic()  # before the handshake: the window starts after it
    async with client(bridge, token=token(bridge)) as ws:
        await bridge.broker.publish(reserva(1))
        assert (await recv_json(ws))["id"] == "e1"
        waited = time.monotonic() - started
    # Held while the client could still ask to resume, then sent at once.
    assert window <= waited < window + 1.0


@pytest.mark.timing
async def test_a_stalled_client_is_dropped_and_does_not_delay_the_others(tmp_path: Path) -> None:
    limits = Limits(resume_window=0, max_send_buffer=256 * 1024, close_timeout=0.2)
    async with running(settings(tmp_path, limits=limits)) as bridge:
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        writer.transport.pause_reading()  # the stalled client: never reads again
        writer.write(
            f"GET /ws?token={token(bridge)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with client(bridge, token=token(bridge)) as ws:
            await ws.send('{"op": "ping"}')
            await recv(ws)
            # Enough to fill the kernel's socket buffers on loopback, then ours.
            big = {"services": {"total": 1, "blob": "x" * 40_000}}
            delays = []
            for n in range(1000):
                sent = time.monotonic()
                await bridge.broker.publish(
                    Event.of(DashboardUpdate.model_validate(big), id=f"d{n}")
                )
                assert (await recv_json(ws))["id"] == f"d{n}"
                delays.append(time.monotonic() - sent)
            served = [s for s in bridge.hub.sessions if s.phase is not Phase.CLOSING]
            assert len(served) == 1, "the stalled client is still served"
        delays.sort()
        assert delays[int(len(delays) * 0.99)] < 0.1
        writer.transport.resume_reading()
        await read_to_end(reader)  # the bridge cut it: reading ends
        writer.close()


#: Limits under which a resume's replay of 200 events of 6 KB is far over the send limit.
REPLAY_LIMITS = Limits(resume_window=0.2, max_send_buffer=64 * 1024)


def big_event(n: int) -> Event:
    return Event.of(
        DashboardUpdate.model_validate({"services": {"total": 1, "blob": "x" * 6_000}}),
        id=f"d{n}",
    )


@contextlib.asynccontextmanager
async def large_replay(tmp_path: Path) -> AsyncIterator[tuple[Bridge, socket.socket]]:
    """A bridge holding d0 … d199 (1.2 MB), and a socket to it with a 16 KiB
    receive buffer, so the kernel cannot take the replay in for its reader."""
    async with running(settings(tmp_path, limits=REPLAY_LIMITS, history_size=300)) as bridge:
        for n in range(200):
            await bridge.broker.publish(big_event(n))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", bridge.port))
        yield bridge, sock


async def test_a_client_on_a_slow_link_that_resumes_a_large_replay_is_not_dropped(
    tmp_path: Path,
) -> None:
    # A replay is a burst the bridge chose to send, here to a client whose small
    # receive buffer keeps most of it waiting in the bridge. The live events below
    # are flushed while it has read at most 10 of the 199 replayed: as long as it
    # keeps reading, it is not too slow.
    async with large_replay(tmp_path) as (bridge, sock):
        async with connect(url(bridge, token=token(bridge)), sock=sock, max_queue=4) as ws:
            assert (await recv_json(ws))["type"] == "bridge:welcome"
            await ws.send('{"op": "resume", "after": "d0"}')
            got = []
            for n in range(209):
                if n < 10:  # live events come while the replay is still on its way
                    await bridge.broker.publish(big_event(200 + n))
                got.append((await recv_json(ws))["id"])
        assert got == [f"d{n}" for n in range(1, 210)]  # and never closed with 1013


async def test_a_client_that_stops_reading_during_a_large_replay_is_still_dropped(
    tmp_path: Path,
) -> None:
    async with large_replay(tmp_path) as (bridge, sock):
        frozen_url = url(bridge, token=token(bridge))
        # It never reads the bridge's close: no need to wait long for it on the way out.
        async with connect(frozen_url, sock=sock, max_queue=1, close_timeout=0.1) as frozen:
            assert (await recv_json(frozen))["type"] == "bridge:welcome"
            (conn,) = bridge.hub.sessions
            await frozen.send('{"op": "resume", "after": "d0"}')  # then it reads no more
            async with client(bridge, token=token(bridge)) as other:
                await other.send('{"op": "resume", "after": "d199"}')  # no snapshot
                # Each event reaches the other client after the frozen one was
                # flushed; counted from when the replay went out.
                after_replay = 0
                for n in range(200, 260):
                    await bridge.broker.publish(big_event(n))
                    assert (await recv_json(other))["id"] == f"d{n}"
                    after_replay += conn.allowance > 0
                    if conn.phase is Phase.CLOSING:
                        break
        # About 6 KB each: past the replay, 64 KiB more is reached within 12.
        assert conn.phase is Phase.CLOSING
        assert 0 < after_replay <= 12


async def test_a_peer_that_stops_answering_pings_is_dropped(tmp_path: Path) -> None:
    async with running(settings(tmp_path, limits=Limits(ping_interval=0.1))) as bridge:
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        writer.write(
            f"GET /ws?token={token(bridge)} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        async with client(bridge, token=token(bridge)) as alive:
            # The raw socket never answers a ping: reading it to the end proves it was cut.
            await read_to_end(reader)
            await alive.send('{"op": "ping"}')
            assert await recv_json(alive) == {"type": "bridge:pong"}
        writer.close()


async def test_shutdown_closes_clients_with_1001(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as bridge:
        ws = await connect(url(bridge, token=token(bridge)))
        await recv(ws)
    with pytest.raises(ConnectionClosed) as caught:
        await recv(ws)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1001


async def test_the_history_outlives_a_restart(tmp_path: Path) -> None:
    config = settings(tmp_path)
    async with running(config) as bridge:
        for n in range(3):
            await bridge.broker.publish(reserva(n))
        async with client(bridge, token=token(bridge)) as ws:
            await ws.send('{"op": "resume", "after": "e0"}')
            assert [(await recv_json(ws))["id"] for _ in range(2)] == ["e1", "e2"]
    async with running(replace(config)) as bridge, client(bridge, token=token(bridge)) as ws:
        await ws.send('{"op": "resume", "after": "e0"}')
        assert [(await recv_json(ws))["id"] for _ in range(2)] == ["e1", "e2"]


async def test_the_history_is_readable_by_the_bridges_user_only(tmp_path: Path) -> None:
    """Events may carry personal data; the state folder may be a shared one."""
    config = settings(tmp_path / "state")
    async with running(config) as bridge:
        await bridge.broker.publish(reserva(1))
    modes = (config.state_dir.stat().st_mode & 0o777, config.history_file.stat().st_mode & 0o777)
    assert modes == (0o700, 0o600)


async def test_health_says_ok_with_the_connection_count(bridge: Bridge) -> None:
    async with client(bridge, token=token(bridge)):
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        writer.write(b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        response = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    head, body = response.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    assert json.loads(body) == {
        "status": "ok",
        "broker": "connected",
        "connections": 1,
        "instance": "test",
    }


async def test_a_reset_names_the_newest_event_to_resume_from_after_reloading(
    bridge: Bridge,
) -> None:
    await bridge.broker.publish(reserva(1))
    await bridge.broker.publish(reserva(2, audience=Role(role="admin")))
    async with client(bridge, token=token()) as ws:
        await ws.send('{"op": "resume", "after": "long-gone"}')
        assert await recv_json(ws) == {
            "type": "bridge:reset",
            "latest": "e1",
            "lost": ["all", "user:u1"],
        }


async def test_a_resume_without_an_id_replays_the_whole_history(bridge: Bridge) -> None:
    for n in (1, 2):
        await bridge.broker.publish(reserva(n))
    async with client(bridge, token=token()) as ws:
        await ws.send('{"op": "resume"}')
        await bridge.broker.publish(reserva(3))
        assert [(await recv_json(ws))["id"] for _ in range(3)] == ["e1", "e2", "e3"]


async def test_a_refusal_reason_too_long_for_a_close_frame_still_closes(
    bridge: Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    # Issue 14, vulnerability 2: a token header with a long `crit` entry made the
    # refusal reason longer than a close frame holds (123 bytes). Building the
    # frame raised after the connection was marked closing, and it stayed open.
    header = base64.urlsafe_b64encode(
        json.dumps({"alg": "HS256", "typ": "JWT", "crit": ["é" * 200]}).encode()
    ).rstrip(b"=")
    forged = header.decode() + ".eyJzdWIiOiJ4In0.c2ln"
    async with connect(url(bridge)) as ws:
        await ws.send(json.dumps({"op": "auth", "token": forged}))
        with pytest.raises(ConnectionClosed) as caught:
            await asyncio.wait_for(ws.recv(), 5)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 4401
    assert len(caught.value.rcvd.reason.encode()) <= 123
    async with asyncio.timeout(5):
        while bridge.hub.sessions:
            await bridge.hub.emptied.wait()
    assert "Traceback" not in caplog.text
