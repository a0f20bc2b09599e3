"""Channels and presence on the real RabbitMQ, with two bridge processes and real clients.

Issue 18: 1,000 clients, each subscribed to one of 100 order channels, get exactly
their channel's events, also after their instance is killed and they resume on the
other; a subscription without permission gets nothing; presence counts follow
connects, disconnects and a killed instance within the bounds docs/channels.md states.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bridge.amqp import MAX_PRESENCE_BYTES
from bridge.auth import Authenticator
from bridge.config import Limits
from schemas.topology import PRESENCE
from tests.support import feeder as feeding
from tests.support.bridges import SECRET, Watch, operator, rabbit, recv_json, running, settings
from tests.support.fleet import Fleet
from tests.support.httpclient import request
from tests.support.load import BridgeProcess

AUTH = Authenticator(SECRET)
CHANNELS = 100


def token(user: str, channels: tuple[str, ...] = ("order:*",)) -> str:
    return AUTH.issue(user, [], ttl=timedelta(hours=1), channels=channels)


async def two_bridges(
    stack: contextlib.AsyncExitStack, amqp_url: str, workdir: Path, prefix: str
) -> tuple[BridgeProcess, BridgeProcess]:
    """Two ``event-bridge serve`` on RabbitMQ, ``<prefix>-doomed`` and ``<prefix>-survivor``,
    each consuming, stopped with ``stack``."""
    bridges = []
    for name in (f"{prefix}-doomed", f"{prefix}-survivor"):
        bridge = await stack.enter_async_context(BridgeProcess(amqp_url, name, workdir))
        await bridge.logged("connected to", 15)
        bridges.append(bridge)
    return bridges[0], bridges[1]


@pytest.mark.timeout(240)
async def test_a_thousand_clients_get_exactly_their_channels_events_across_a_kill(
    own_amqp_url: str, tmp_path: Path
) -> None:
    sent, rate, clients = 3000, 200.0, 1000
    per_channel = sent // CHANNELS
    run = uuid.uuid4().hex[:8]

    def path(number: int) -> str:
        channel = f"order:{number % CHANNELS}"
        return f"/ws?batch=1&token={token(f'u{number}')}&channels={channel}"

    fleet = Fleet(run, marks=(per_channel // 3, per_channel), paths=path, events=sent)
    async with contextlib.AsyncExitStack() as stack:
        doomed, survivor = await two_bridges(stack, own_amqp_url, tmp_path, "channels")
        # Half on each instance; the doomed one's clients move to the survivor.
        await fleet.open(doomed.port, clients // 2)
        await fleet.open(survivor.port, clients // 2)
        fleet.reconnect_to = survivor.port
        outsider = await stack.enter_async_context(
            connect(f"ws://127.0.0.1:{survivor.port}/ws?token={token('mallory', ())}")
        )
        assert (await recv_json(outsider))["type"] == "bridge:welcome"
        await outsider.send(json.dumps({"op": "subscribe", "channel": "order:7"}))
        refused = await recv_json(outsider)
        assert (refused["type"], refused["channel"]) == ("bridge:refused", "order:7")
        try:
            feeder = await feeding.started(own_amqp_url, run, sent, rate, CHANNELS)
            await fleet.reached(per_channel // 3, timeout=60)
            doomed.kill()
            await feeding.finished(feeder, 60)
            with contextlib.suppress(TimeoutError):  # the counts below say what is missing
                await fleet.reached(per_channel, timeout=30)
            strays = await drained(outsider)
        finally:
            await fleet.close()
    missed = outside = twice = 0
    for number, watcher in enumerate(fleet.watchers):
        mine = [s for s in range(sent) if s % CHANNELS == number % CHANNELS]
        got = set(watcher.seqs)
        missed += len(set(mine) - got)
        outside += len(got - set(mine))
        twice += watcher.duplicates + len(watcher.seqs) - len(got)
    moved = sum(w.reconnects for w in fleet.watchers)
    print(
        f"channels: {sent} events to {CHANNELS} channels, {clients} clients: missed {missed}, "
        f"outside the audience {outside}, twice {twice}, out of order "
        f"{sum(not w.in_order() for w in fleet.watchers)}; {moved} moved to the other "
        f"instance, {sum(w.resets for w in fleet.watchers)} resets; the refused client got "
        f"{len(strays)} events"
    )
    assert (missed, outside, twice) == (0, 0, 0)
    assert all(w.in_order() for w in fleet.watchers)
    assert moved == clients // 2
    assert strays == []


async def drained(ws: ClientConnection) -> list[dict[str, Any]]:
    """Every event that reached ``ws`` so far: what came before the answer to a ping."""
    await ws.send('{"op": "ping"}')
    events = []
    while (message := await recv_json(ws, timeout=10))["type"] != "bridge:pong":
        if not message["type"].startswith("bridge:"):
            events.append(message)
    return events


# Presence


async def presence(port: int, channel: str | None = None) -> dict[str, Any]:
    path = "/api/presence" + (f"?channel={channel}" if channel else "")
    reply = await request(port, "GET", path, headers=operator())
    assert reply.status == 200, reply.body
    answer: dict[str, Any] = reply.json()
    return answer


async def presence_news(ws: ClientConnection, wanted: set[tuple[str, str]]) -> float:
    """Seconds until ``ws`` was told each of ``wanted``: ``(bridge:join or bridge:leave, user)``."""
    began = time.monotonic()
    while wanted:
        message = await recv_json(ws, timeout=30)
        wanted.discard((message["type"], message.get("user", "")))
    return time.monotonic() - began


@pytest.mark.timeout(120)
async def test_presence_follows_connects_disconnects_and_a_killed_instance(
    own_amqp_url: str, tmp_path: Path
) -> None:
    limits = Limits()
    async with contextlib.AsyncExitStack() as stack:
        doomed, survivor = await two_bridges(stack, own_amqp_url, tmp_path, "presence")

        async def opened(port: int, user: str, query: str = "") -> ClientConnection:
            ws = await stack.enter_async_context(
                connect(f"ws://127.0.0.1:{port}/ws?token={token(user)}{query}")
            )
            assert (await recv_json(ws))["type"] == "bridge:welcome"
            return ws

        # A client on the survivor follows order:1's presence, as a page showing who
        # else looks at the order would.
        follower = await opened(survivor.port, "watcher")
        await follower.send(json.dumps({"op": "subscribe", "channel": "order:1", "presence": True}))
        began = time.monotonic()
        await opened(doomed.port, "bob")
        await opened(doomed.port, "dora", "&channels=order:1")
        ana = [await opened(doomed.port, "ana", "&channels=order:1") for _ in range(2)]
        await opened(survivor.port, "carla", "&channels=order:1")
        users = {"ana", "carla", "dora", "watcher"}
        await presence_news(follower, {("bridge:join", user) for user in users})
        connected = time.monotonic() - began
        seen = await presence(survivor.port)
        assert seen["instances"] == ["presence-doomed", "presence-survivor"]
        assert (seen["connections"], seen["users"]) == (6, sorted({*users, "bob"}))
        on_order = await presence(survivor.port, "order:1")
        assert (on_order["connections"], on_order["users"]) == (5, sorted(users))

        # ana closes her last tab on one instance: she leaves the other's presence.
        await ana[0].close()
        await ana[1].close()
        left = await presence_news(follower, {("bridge:leave", "ana")})
        assert "ana" not in (await presence(survivor.port))["users"]

        # The doomed instance dies without a word: its users leave once it is silent.
        doomed.kill()
        expired = await presence_news(follower, {("bridge:leave", "dora")})
        seen = await presence(survivor.port)
        assert seen["instances"] == ["presence-survivor"]
        assert (seen["connections"], seen["users"]) == (2, ["carla", "watcher"])
    print(
        f"presence: 6 connections on 2 instances counted on the other {connected:.2f} s after "
        f"the first connected; a user's last tab closed left the other instance's presence "
        f"in {left:.2f} s (bound {limits.presence_min_interval:g} s); a killed instance's "
        f"users left in {expired:.1f} s (bound {4 * limits.presence_interval:g} s)"
    )
    assert left <= limits.presence_min_interval + 1
    assert expired <= 4 * limits.presence_interval + 1


class Heard(logging.Handler):
    """Sets ``event`` when a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.event = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


async def test_a_presence_message_over_the_bound_is_dropped_and_said(
    own_amqp_url: str, tmp_path: Path
) -> None:
    config = settings(tmp_path, broker_url=own_amqp_url, instance="presence-bound")
    watch = Watch()
    heard = Heard("presence message of")
    logging.getLogger("bridge.amqp").addHandler(heard)
    try:
        async with running(config, rabbit(config, watch)) as bridge:
            await asyncio.wait_for(watch.up.wait(), 15)
            connection = await aio_pika.connect(own_amqp_url)
            async with connection:
                channel = await connection.channel()
                exchange = await channel.get_exchange(PRESENCE.name)
                huge = b" " * (MAX_PRESENCE_BYTES + 1)
                await exchange.publish(aio_pika.Message(huge), "")
                await asyncio.wait_for(heard.event.wait(), 15)
            assert bridge.roster.presence.others() == []
    finally:
        logging.getLogger("bridge.amqp").removeHandler(heard)
