"""Channels on one bridge, with real clients on the memory:// broker: subscribe and
unsubscribe, who may, refusals, catch-up, and the HTTP endpoint."""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from api_rest.events import Reserva, ReservaCreada
from bridge.app import Bridge
from bridge.auth import Authenticator
from bridge.config import Limits
from schemas import Channel, Event, User
from tests.support.bridges import SECRET, client, recv_json, running, settings, url
from tests.support.httpclient import request

AUTH = Authenticator(SECRET)


def token(user: str = "u1", *, channels: tuple[str, ...] = (), ttl: float = 300) -> str:
    return AUTH.issue(user, [], ttl=timedelta(seconds=ttl), channels=channels)


def ticket(channel: str, user: str | None = "u1", ttl: float = 60) -> str:
    """A subscription token, as ``issue_subscription_token`` makes it in Django."""
    return AUTH.issue_subscription(channel, user, ttl=timedelta(seconds=ttl))


def event(n: int, *, channel: str | None = None, user: str | None = None) -> Event:
    audience = Channel(channel=channel) if channel else User(user=user) if user else None
    return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}", audience=audience)


async def send(ws: ClientConnection, **op: Any) -> None:
    await ws.send(json.dumps(op))


async def reply(ws: ClientConnection) -> dict[str, Any]:
    """The next message that is not an event."""
    while True:
        message = await recv_json(ws)
        if message["type"].startswith("bridge:") and message["type"] != "bridge:pong":
            return message


MARKERS = itertools.count()


async def ids_until_marker(ws: ClientConnection, bridge: Bridge) -> list[str]:
    """The ids of every event before a broadcast sent now: what the client got, counted.
    The marker's id is the bridge's last id: ``marker-<n>``."""
    marker = f"marker-{next(MARKERS)}"
    await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=0)), id=marker))
    seen = []
    while True:
        message = await recv_json(ws)
        if message["type"].startswith("bridge:"):
            continue
        if message["id"] == marker:
            return seen
        seen.append(message["id"])


def last_marker() -> str:
    return f"marker-{next(copy.copy(MARKERS)) - 1}"


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running(settings(tmp_path)) as b:
        yield b


async def test_a_channel_the_token_lists_delivers_its_events_only(bridge: Bridge) -> None:
    async with client(bridge, token=token(channels=("order:*",))) as ws:
        await send(ws, op="subscribe", channel="order:42")
        assert await reply(ws) == {
            "type": "bridge:subscribed",
            "channel": "order:42",
            "recovered": None,
        }
        await bridge.broker.publish(event(1, channel="order:42"))
        await bridge.broker.publish(event(2, channel="order:43"))
        await bridge.broker.publish(event(3, channel="order:42"))
        assert await ids_until_marker(ws, bridge) == ["e1", "e3"]
        await send(ws, op="unsubscribe", channel="order:42")
        assert await reply(ws) == {
            "type": "bridge:unsubscribed",
            "channel": "order:42",
            "reason": "",
        }
        await bridge.broker.publish(event(4, channel="order:42"))
        assert await ids_until_marker(ws, bridge) == []


async def test_a_channel_the_token_does_not_list_is_refused_and_sends_nothing(
    bridge: Bridge,
) -> None:
    async with client(bridge, token=token(channels=("order:1",))) as ws:
        await send(ws, op="subscribe", channel="order:42")
        refused = await reply(ws)
        assert refused["type"] == "bridge:refused"
        assert refused["channel"] == "order:42"
        assert "subscription token" in refused["reason"]
        await bridge.broker.publish(event(1, channel="order:42"))
        assert await ids_until_marker(ws, bridge) == []


async def test_a_subscription_token_allows_its_channel_for_its_user(bridge: Bridge) -> None:
    async with client(bridge, token=token("u1")) as ws:
        await send(ws, op="subscribe", channel="order:42", token=ticket("order:42"))
        assert (await reply(ws))["type"] == "bridge:subscribed"
        await bridge.broker.publish(event(1, channel="order:42"))
        assert await ids_until_marker(ws, bridge) == ["e1"]


@pytest.mark.parametrize(
    ("given", "why"),
    [
        (lambda: ticket("order:42", user="u2"), "another user"),
        (lambda: ticket("order:43"), "another channel"),
        (lambda: ticket("order:42", ttl=-1), "expired"),
        (lambda: token("u1", channels=("order:42",)), "channel"),  # a connection token
        (
            lambda: Authenticator("another-secret-that-is-long-enough").issue_subscription(
                "order:42", "u1", ttl=timedelta(seconds=60)
            ),
            "signature",
        ),
    ],
    ids=["another user", "another channel", "expired", "a connection token", "forged"],
)
async def test_a_subscription_token_that_does_not_fit_is_refused(
    bridge: Bridge, given: Any, why: str
) -> None:
    async with client(bridge, token=token("u1")) as ws:
        await send(ws, op="subscribe", channel="order:42", token=given())
        refused = await reply(ws)
        assert refused["type"] == "bridge:refused", refused
        assert why in refused["reason"]
        await bridge.broker.publish(event(1, channel="order:42"))
        assert await ids_until_marker(ws, bridge) == []


async def test_a_subscription_token_for_anyone_lets_an_anonymous_connection_follow(
    tmp_path: Path,
) -> None:
    config = settings(tmp_path, allow_anonymous=True)
    async with running(config) as bridge, client(bridge) as ws:
        await send(ws, op="subscribe", channel="match:7", token=ticket("match:7", user=None))
        assert (await reply(ws))["type"] == "bridge:subscribed"
        await send(ws, op="subscribe", channel="match:8", token=ticket("match:8", user="u1"))
        assert (await reply(ws))["type"] == "bridge:refused"


async def test_a_subscription_token_does_not_open_a_connection(bridge: Bridge) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url(bridge, token=ticket("order:42"))):
            pass
    assert refused.value.response.status_code == 401
    assert b"subscription token" in refused.value.response.body


async def test_a_connection_holds_at_most_max_channels(tmp_path: Path) -> None:
    config = settings(tmp_path, limits=replace(Limits(resume_window=0.2), max_channels=2))
    async with running(config) as bridge, client(bridge, token=token(channels=("*",))) as ws:
        for name in ("a", "b", "a"):  # the same one again is no more
            await send(ws, op="subscribe", channel=name)
            assert (await reply(ws))["type"] == "bridge:subscribed"
        await send(ws, op="subscribe", channel="c")
        refused = await reply(ws)
        assert refused == {
            "type": "bridge:refused",
            "channel": "c",
            "reason": "at most 2 channels per connection: unsubscribe from one first",
        }


async def test_a_bad_channel_name_is_refused_and_the_connection_stays(bridge: Bridge) -> None:
    async with client(bridge, token=token(channels=("*",))) as ws:
        await send(ws, op="subscribe", channel="no spaces")
        refused = await reply(ws)
        assert (refused["type"], refused["channel"]) == ("bridge:refused", "no spaces")
        assert "not a channel name" in refused["reason"]
        for name in ("", "x" * 201):
            await send(ws, op="subscribe", channel=name)
            refused = await reply(ws)
            assert (refused["type"], refused["channel"]) == ("bridge:refused", name)
        await send(ws, op="subscribe", channel="x" * 1025)  # not even worth repeating
        error = await reply(ws)
        assert error["type"] == "bridge:error"
        assert error["detail"][0]["loc"] == ["channel"]
        await send(ws, op="ping")
        assert await recv_json(ws) == {"type": "bridge:pong"}


async def test_subscribing_after_an_event_replays_what_the_channel_missed(bridge: Bridge) -> None:
    async with client(bridge, token=token(channels=("order:*",))) as ws:
        await send(ws, op="subscribe", channel="order:42")
        await reply(ws)
        await bridge.broker.publish(event(1, channel="order:42"))
        assert await ids_until_marker(ws, bridge) == ["e1"]
    for n in (2, 3):
        await bridge.broker.publish(event(n, channel="order:42"))
    await bridge.broker.publish(event(4, channel="order:43"))
    async with client(bridge, token=token(channels=("order:*",))) as ws:
        await send(ws, op="subscribe", channel="order:42", after="e1")
        assert await reply(ws) == {
            "type": "bridge:subscribed",
            "channel": "order:42",
            "recovered": True,
        }
        assert await ids_until_marker(ws, bridge) == ["e2", "e3"]
        await send(ws, op="subscribe", channel="order:43", after="never-seen")
        assert (await reply(ws))["recovered"] is False


async def test_channels_in_the_url_resume_with_the_connection(bridge: Bridge) -> None:
    async with client(bridge, token=token(channels=("order:*",))) as ws:
        await bridge.broker.publish(event(1))
        assert await ids_until_marker(ws, bridge) == ["e1"]
    await bridge.broker.publish(event(2, channel="order:42"))
    await bridge.broker.publish(event(3, channel="order:43"))
    await bridge.broker.publish(event(4))
    query = {"token": token(channels=("order:*",)), "after": last_marker(), "channels": "order:42"}
    async with client(bridge, **query) as ws:
        assert (await reply(ws))["type"] == "bridge:subscribed"
        assert await ids_until_marker(ws, bridge) == ["e2", "e4"]


async def test_a_new_token_without_the_channel_ends_the_subscription(bridge: Bridge) -> None:
    async with client(bridge, token=token(channels=("order:42",))) as ws:
        await send(ws, op="subscribe", channel="order:42")
        await reply(ws)
        await send(ws, op="auth", token=token())
        ended = await reply(ws)
        assert ended["type"] == "bridge:unsubscribed"
        assert "new token" in ended["reason"]
        await bridge.broker.publish(event(1, channel="order:42"))
        assert await ids_until_marker(ws, bridge) == []


async def test_notifications_outlive_a_busy_stream_of_broadcasts(bridge: Bridge) -> None:
    """A user away while 1,000 broadcasts pass (10 times the history) gets their
    notifications on reconnect, with bridge:reset saying the broadcasts are gone."""
    async with client(bridge, token=token("u1")) as ws:
        assert await ids_until_marker(ws, bridge) == []
    notifications = []
    for n in range(1, 1001):
        await bridge.broker.publish(event(n))
        if n % 100 == 0:
            notifications.append(f"n{n}")
            await bridge.broker.publish(
                Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"n{n}", audience=User(user="u1"))
            )
    async with client(bridge, token=token("u1"), after=last_marker()) as ws:
        reset = await reply(ws)
        assert reset["type"] == "bridge:reset"
        assert reset["lost"] == ["all"]
        assert await ids_until_marker(ws, bridge) == notifications


async def test_the_http_api_publishes_to_a_channel(bridge: Bridge) -> None:
    async with client(bridge, token=token(channels=("order:*",))) as ws:
        await send(ws, op="subscribe", channel="order:42")
        await reply(ws)
        body = {"channel": "order:42", "event": "order:shipped", "payload": {"id": 42}, "id": "s1"}
        sent = await request(
            bridge.port, "POST", "/api/dashboard/publish", json.dumps(body).encode()
        )
        assert (sent.status, sent.json()) == (202, {"id": "s1"})
        message = await recv_json(ws)
        assert message["type"] == "order:shipped"
        assert message["audience"] == {"kind": "channel", "channel": "order:42"}
        assert message["data"] == {"id": 42}
    bad = {"channel": "no spaces", "event": "order:shipped", "payload": {}}
    refused = await request(bridge.port, "POST", "/api/dashboard/publish", json.dumps(bad).encode())
    assert refused.status == 422
    assert refused.json()["detail"][0]["loc"][-1] == "channel"


async def test_an_event_stream_names_its_channels_in_its_url(bridge: Bridge) -> None:
    path = f"/sse?token={token('u1')}&channels=order:42&channel_tokens={ticket('order:43')}"
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    try:
        messages = []

        async def read_until(kind: str) -> None:
            while True:
                line = await asyncio.wait_for(reader.readline(), 5)
                if line.startswith(b"data: "):
                    messages.append(json.loads(line[6:]))
                    if messages[-1]["type"] == kind or messages[-1].get("id") == kind:
                        return

        await read_until("bridge:subscribed")
        await bridge.broker.publish(event(1, channel="order:43"))
        await bridge.broker.publish(event(2, channel="order:42"))
        await bridge.broker.publish(event(3))
        await read_until("e3")
        kinds = [(m["type"], m.get("channel"), m.get("id")) for m in messages]
        assert ("bridge:refused", "order:42", None) in kinds  # the token does not list it
        assert ("bridge:subscribed", "order:43", None) in kinds
        assert [m["id"] for m in messages if "id" in m] == ["e1", "e3"]
    finally:
        writer.close()
