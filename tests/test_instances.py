"""Bridges on the real RabbitMQ: several instances, a killed one, a dropped connection."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

from websockets.asyncio.client import ClientConnection

from api_rest.events import Reserva, ReservaCreada
from schemas import Event
from tests.support.bridges import Served, Watch, client, rabbit, recv_json, running, settings, token
from tests.support.rabbit import publish_to


def reserva(n: int) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}")


async def ready(ws: ClientConnection) -> None:
    """End the resume window, so live events flow at once."""
    await ws.send('{"op": "ping"}')
    assert (await recv_json(ws))["type"] == "bridge:pong"


async def test_an_event_published_once_reaches_the_clients_of_every_instance(
    amqp_url: str, tmp_path: Path
) -> None:
    one = settings(tmp_path / "one", broker_url=amqp_url, instance="multi-one")
    two = settings(tmp_path / "two", broker_url=amqp_url, instance="multi-two")
    watch_one, watch_two = Watch(), Watch()
    async with (
        running(one, rabbit(one, watch_one)) as a,
        running(two, rabbit(two, watch_two)) as b,
    ):
        await asyncio.wait_for(watch_one.up.wait(), 15)
        await asyncio.wait_for(watch_two.up.wait(), 15)
        async with client(a, token=token()) as wa, client(b, token=token()) as wb:
            await ready(wa)
            await ready(wb)
            await asyncio.to_thread(publish_to, amqp_url, reserva(1))
            assert (await recv_json(wa))["id"] == "e1"
            assert (await recv_json(wb))["id"] == "e1"


async def test_a_dropped_connection_recovers_and_loses_nothing(
    amqp_url: str, tmp_path: Path
) -> None:
    config = settings(tmp_path, broker_url=amqp_url, instance="dropped")
    watch = Watch()
    async with running(config, rabbit(config, watch)) as bridge:
        await asyncio.wait_for(watch.up.wait(), 15)
        async with client(bridge, token=token()) as ws:
            await ready(ws)
            vhost = unquote(urlsplit(amqp_url).path[1:])
            await asyncio.to_thread(
                subprocess.run,
                ["rabbitmqctl", "close_all_connections", "-p", vhost, "test: dropped"],
                check=True,
                capture_output=True,
            )
            await asyncio.wait_for(watch.down.wait(), 15)
            assert (await bridge.api.health(None)).status == 503  # type: ignore[arg-type]
            await asyncio.to_thread(publish_to, amqp_url, reserva(1))  # while it is away
            await asyncio.wait_for(watch.up.wait(), 15)
            assert (await bridge.api.health(None)).status == 200  # type: ignore[arg-type]
            assert (await recv_json(ws, timeout=15))["id"] == "e1"


async def test_a_killed_instance_restarts_and_its_client_resumes_in_order(
    amqp_url: str, tmp_path: Path
) -> None:
    args = ("--broker", amqp_url, "--instance", "killed", "--state-dir", str(tmp_path))
    first = Served(*args)
    await first.start()
    await first.logged("connected to")
    try:
        async with client(first, token=token()) as ws:
            await ready(ws)
            await asyncio.to_thread(publish_to, amqp_url, reserva(1), reserva(2))
            assert [(await recv_json(ws, timeout=15))["id"] for _ in range(2)] == ["e1", "e2"]
        first.signal(signal.SIGKILL)
        await first.wait()
        # Published while the instance is down: they wait in its queue.
        await asyncio.to_thread(publish_to, amqp_url, reserva(3), reserva(4))
    finally:
        await first.kill()
    second = Served(*args)
    await second.start()
    try:
        async with client(second, token=token()) as ws:
            await ws.send(json.dumps({"op": "resume", "after": "e1"}))
            await asyncio.to_thread(publish_to, amqp_url, reserva(5))
            got = [(await recv_json(ws, timeout=15))["id"] for _ in range(4)]
        assert got == ["e2", "e3", "e4", "e5"]
    finally:
        await second.kill()
