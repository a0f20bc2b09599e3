"""What operators see in RabbitMQ's management UI while a bridge runs."""

from __future__ import annotations

import asyncio
import json
import socket
import urllib.request
from base64 import b64encode
from pathlib import Path
from typing import Any
from urllib.error import URLError
from urllib.parse import quote, unquote, urlsplit

import pytest

from tests.support.bridges import Watch, rabbit, running, settings

MANAGEMENT = "http://127.0.0.1:15672/api"


def management(path: str, amqp_url: str) -> Any:
    """GET from the management API with the broker's own credentials."""
    parts = urlsplit(amqp_url)
    credentials = b64encode(f"{parts.username}:{parts.password}".encode()).decode()
    request = urllib.request.Request(
        MANAGEMENT + path, headers={"Authorization": f"Basic {credentials}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return json.load(reply)
    except URLError as exc:
        pytest.fail(
            f"RabbitMQ's management API is not reachable ({exc}): "
            "rabbitmq-plugins enable rabbitmq_management (./scripts/test does it)"
        )


async def consumers_of(vhost: str, queue: str, amqp_url: str) -> list[Any]:
    """The queue's consumers, once the management database has caught up.

    It refreshes its statistics every few seconds and notifies nobody, so this
    asks again, briefly, until the consumer shows or 20 s have passed.
    """
    async with asyncio.timeout(20):
        while True:
            found = await asyncio.to_thread(management, f"/consumers/{vhost}", amqp_url)
            mine = [c for c in found if c["queue"]["name"] == queue]
            if mine:
                return mine
            await asyncio.sleep(0.25)


async def test_the_ui_shows_the_exchange_the_queues_and_the_consumer_tag(
    amqp_url: str, tmp_path: Path
) -> None:
    config = settings(tmp_path, broker_url=amqp_url, instance="ui-check")
    watch = Watch()
    vhost = quote(unquote(urlsplit(amqp_url).path[1:]), safe="")
    async with running(config, rabbit(config, watch)):
        await asyncio.wait_for(watch.up.wait(), 15)
        exchange = await asyncio.to_thread(
            management, f"/exchanges/{vhost}/bridge.events", amqp_url
        )
        queue = await asyncio.to_thread(
            management, f"/queues/{vhost}/bridge.instance.ui-check", amqp_url
        )
        dead = await asyncio.to_thread(management, f"/queues/{vhost}/bridge.dead", amqp_url)
        consumers = await consumers_of(vhost, "bridge.instance.ui-check", amqp_url)
    assert (exchange["type"], exchange["durable"]) == ("topic", True)
    assert queue["arguments"]["x-queue-type"] == "quorum"
    assert queue["arguments"]["x-dead-letter-exchange"] == "bridge.dlx"
    assert dead["durable"] is True
    tags = {
        c["consumer_tag"] for c in consumers if c["queue"]["name"] == "bridge.instance.ui-check"
    }
    assert tags == {f"event-bridge.{socket.gethostname()}.ui-check"}
