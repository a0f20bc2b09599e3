"""The RabbitMQ broker against the real RabbitMQ: Celery messages, poison, failures, outages.

Messages are published with kombu, the producer's client, in a thread so the
broker's event loop keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest
from aio_pika.abc import AbstractIncomingMessage
from celery import Celery
from kombu import Connection, Producer

from api_rest.events import Reserva, ReservaCreada, catalog
from bridge.amqp import RabbitBroker
from bridge.decode import Decoder
from bridge.exceptions import BrokerUnavailable, ConfigError
from messaging.entities import exchange
from messaging.publisher import Publisher
from schemas import Event, Reader
from schemas.topology import DEAD_LETTER_QUEUE, EVENTS, instance_queue, routing_key
from tests.support.brokers import (
    TIMEOUT,
    Recorder,
    delete_instance_queue,
    run,
    running,
    unique_instance,
)

#: Reads against the seed's catalog, strictly: the poison tests need refusals.
SEED = Decoder(Reader(catalog, strict=True))

# Every test here talks to RabbitMQ; a missing broker fails them, never skips them.


@pytest.fixture
def instance(amqp_url: str) -> Iterator[str]:
    """An instance name of this test's own; its queue is deleted afterwards."""
    name = unique_instance("amqp")
    yield name
    delete_instance_queue(amqp_url, name)


def reserva(number: int = 1) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=number, estado="confirmada")))


def kombu_publish(amqp_url: str, body: Any, *, routing_key: str, **options: Any) -> None:
    """Publish as the producer does: kombu, publisher confirms, to ``bridge.events``."""
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.default_channel).publish(
            body, exchange=exchange(EVENTS), routing_key=routing_key, **options
        )


def publish_celery_task(amqp_url: str, event: Event) -> None:
    """Send ``event`` as Celery sends ``bridge.publish.delay(event)``: a protocol 2 task."""
    app = Celery("producer", set_as_current=False)
    task = app.amqp.as_task_v2(
        str(uuid.uuid4()), "bridge.publish", args=[json.loads(event.to_json())], kwargs={}
    )
    kombu_publish(
        amqp_url,
        task.body,
        routing_key=routing_key(event),
        serializer="json",
        headers=task.headers,
        **task.properties,
    )


async def dead_letter(amqp_url: str, message_id: str) -> AbstractIncomingMessage:
    """The message with ``message_id`` from ``bridge.dead``, taken off it (acknowledged).

    Other messages there are left alone: unacknowledged, they return to the queue.
    """
    found: asyncio.Future[AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def take(message: AbstractIncomingMessage) -> None:
        if message.message_id == message_id and not found.done():
            await message.ack()
            found.set_result(message)

    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        dead = await channel.get_queue(DEAD_LETTER_QUEUE.name)
        await dead.consume(take)
        return await asyncio.wait_for(found, TIMEOUT)


async def queue_depth(amqp_url: str, instance: str) -> int:
    """How many messages wait in the queue of ``instance`` (read while nobody consumes it)."""
    async with await aio_pika.connect(amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.get_queue(instance_queue(instance).name)
        depth = queue.declaration_result.message_count
        assert depth is not None
        return depth


def rabbitmqctl(*args: str) -> str:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, check=True)
    return done.stdout


def vhost(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path.removeprefix("/"))


def test_a_celery_task_published_by_kombu_reaches_on_event(amqp_url: str, instance: str) -> None:
    event = reserva()

    async def scenario() -> None:
        recorder = Recorder()
        async with running(
            RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=SEED),
            recorder,
        ):
            await asyncio.to_thread(publish_celery_task, amqp_url, event)
            await recorder.until(lambda: bool(recorder.events))
        assert recorder.events == [event]

    run(scenario())


def test_a_poison_message_is_dead_lettered_with_its_reason_once(
    amqp_url: str, instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    poison_id = f"poison-{uuid.uuid4()}"
    after = reserva()

    async def scenario() -> None:
        recorder = Recorder()
        async with running(
            RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=SEED),
            recorder,
        ) as broker:
            await asyncio.to_thread(
                kombu_publish,
                amqp_url,
                b"not an event",
                routing_key="event.reserva.creada",
                content_type="application/json",
                content_encoding="utf-8",
                message_id=poison_id,
            )
            dead = await dead_letter(amqp_url, poison_id)
            # Queues are FIFO: once a later event is through, the poison is settled.
            await broker.publish(after)
            await recorder.until(lambda: bool(recorder.events))
        assert dead.body == b"not an event"
        assert "not valid JSON" in str(dead.headers["x-bridge-error"])
        assert dead.headers["x-bridge-instance"] == instance
        assert recorder.events == [after]
        assert await queue_depth(amqp_url, instance) == 0

    run(scenario())
    warnings = [
        r for r in caplog.records if r.name == "bridge.amqp" and poison_id in r.getMessage()
    ]
    assert len(warnings) == 1
    assert "not an event" in warnings[0].getMessage()


def test_an_event_over_the_size_limit_is_dead_lettered_with_its_size(
    amqp_url: str, instance: str
) -> None:
    """Issue 14: an event is held for every slow client; its size has a bound (64 KiB)."""
    large = Event.untyped("informe:listo", {"texto": "x" * 70_000}, id=f"large-{uuid.uuid4()}")
    after = reserva()
    decoder = Decoder(Reader(catalog), max_size=64 * 1024)

    async def scenario() -> None:
        recorder = Recorder()
        async with running(
            RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=decoder),
            recorder,
        ) as broker:
            await broker.publish(large)
            dead = await dead_letter(amqp_url, large.id)
            await broker.publish(after)
            await recorder.until(lambda: bool(recorder.events))
        assert str(dead.headers["x-bridge-error"]) == (
            f"a message of {len(dead.body)} bytes is over the bridge's limit of 65536 bytes "
            "for one event (--max-event-size)"
        )
        assert recorder.events == [after]

    run(scenario())


def test_an_event_whose_handler_keeps_failing_is_dead_lettered_after_the_delivery_limit(
    amqp_url: str, instance: str
) -> None:
    event = reserva()
    attempts: list[Event] = []
    limit = instance_queue(instance).arguments["x-delivery-limit"]

    def fail(received: Event) -> None:
        attempts.append(received)
        raise RuntimeError("the router is broken")

    async def scenario() -> None:
        recorder = Recorder()
        broker = RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=SEED)
        await broker.start(fail)
        try:
            await recorder.until_connected()
            await broker.publish(event)
            dead = await dead_letter(amqp_url, event.id)
        finally:
            await broker.close()
        death = dead.headers["x-death"][0]  # type: ignore[index]
        assert (death["queue"], death["reason"]) == (
            instance_queue(instance).name,
            "delivery_limit",
        )  # type: ignore[index]
        assert await queue_depth(amqp_url, instance) == 0

    run(scenario())
    # The first delivery and one redelivery per unit of the limit, then no more.
    assert attempts == [event] * (int(limit) + 1)


def test_after_rabbitmq_drops_the_connection_it_reconnects_and_gets_what_was_sent_meanwhile(
    amqp_url: str, instance: str
) -> None:
    event = reserva()

    async def scenario() -> None:
        recorder = Recorder()
        # A longer first backoff leaves room to publish while the broker is down.
        broker = RabbitBroker(
            amqp_url, instance=instance, min_backoff=3.0, on_state=recorder.on_state, decoder=SEED
        )
        async with running(broker, recorder):
            await asyncio.to_thread(
                rabbitmqctl, "close_all_connections", "-p", vhost(amqp_url), "test"
            )
            await recorder.until_connected(False)
            with pytest.raises(BrokerUnavailable, match="not connected"):
                await broker.publish(reserva(2))
            await asyncio.to_thread(publish_celery_task, amqp_url, event)
            assert not broker.connected, "reconnected before the event was published"
            await recorder.until_connected(True)
            await recorder.until(lambda: bool(recorder.events))
            assert recorder.events == [event]
            assert recorder.states == [True, False, True]

    run(scenario())


def test_operators_see_which_host_and_instance_consume_what(amqp_url: str, instance: str) -> None:
    async def scenario() -> tuple[str, str]:
        recorder = Recorder()
        broker = RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=SEED)
        async with running(broker, recorder):
            where = ("-p", vhost(amqp_url), "--silent")
            consumers = await asyncio.to_thread(
                rabbitmqctl, "list_consumers", *where, "queue_name", "consumer_tag"
            )
            connections = await asyncio.to_thread(
                rabbitmqctl, "list_connections", *where, "client_properties"
            )
        return consumers, connections

    consumers, connections = asyncio.run(scenario())
    tag = f"event-bridge.{socket.gethostname()}.{instance}"
    assert f"{instance_queue(instance).name}\t{tag}" in consumers.splitlines()
    assert f"event-bridge {instance}" in connections


def test_operators_see_the_producers_connections_by_name(amqp_url: str) -> None:
    """Issue 15: the relay's and the direct publisher's connections had no name."""
    publisher = Publisher(amqp_url, name="event-bridge relay")
    try:
        publisher.publish(reserva())  # the pool keeps its connection open
        where = ("-p", vhost(amqp_url), "--silent")
        connections = rabbitmqctl("list_connections", *where, "client_properties")
    finally:
        publisher.close()
    assert f"event-bridge relay {socket.gethostname()} pid {os.getpid()}" in connections


def test_the_producer_passes_over_a_node_that_is_down(amqp_url: str, instance: str) -> None:
    """Issue 17: the producer and the relay take a cluster's nodes, kombu's ``a;b`` form."""
    event = reserva()
    down = urlsplit(amqp_url)._replace(netloc=f"guest:guest@127.0.0.1:{free_port()}").geturl()

    async def scenario() -> None:
        recorder = Recorder()
        broker = RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=SEED)
        async with running(broker, recorder):
            publisher = Publisher(f"{down};{amqp_url}")
            try:
                await asyncio.to_thread(publisher.publish, event)
            finally:
                publisher.close()
            await recorder.until(lambda: bool(recorder.events))
        assert recorder.events == [event]

    run(scenario())


def test_a_deleted_queue_is_declared_again(amqp_url: str, instance: str) -> None:
    event = reserva()

    async def scenario() -> None:
        recorder = Recorder()
        async with running(
            RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=SEED),
            recorder,
        ) as broker:
            await asyncio.to_thread(delete_instance_queue, amqp_url, instance)
            await recorder.until(lambda: recorder.states[-2:] == [False, True])
            await broker.publish(event)
            await recorder.until(lambda: bool(recorder.events))
        assert recorder.events == [event]

    run(scenario())


def free_port() -> int:
    # A port nothing listens on: bound by the OS, then released.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class LogSeen(logging.Handler):
    """Sets :attr:`seen` once a record containing ``text`` is logged."""

    def __init__(self, text: str) -> None:
        super().__init__(logging.INFO)
        self.text = text
        self.seen = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()


def test_while_rabbitmq_is_unreachable_publish_fails_and_close_is_quick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bridge.amqp")
    url = f"amqp://bridge:s3cret-password@127.0.0.1:{free_port()}/vh"

    async def scenario() -> None:
        refused = LogSeen("cannot connect to amqp://bridge:***@127.0.0.1")
        logging.getLogger("bridge.amqp").addHandler(refused)
        broker = RabbitBroker(url, instance=unique_instance("down"))
        try:
            await broker.start(lambda _: None)
            await asyncio.wait_for(refused.seen.wait(), TIMEOUT)
            assert not broker.connected
            with pytest.raises(BrokerUnavailable, match=r"not connected to amqp://bridge:\*\*\*@"):
                await broker.publish(reserva())
            await asyncio.wait_for(broker.close(), 3)
            assert not broker.connected
        finally:
            logging.getLogger("bridge.amqp").removeHandler(refused)

    run(scenario())
    assert "s3cret-password" not in caplog.text


def test_the_display_url_hides_the_password() -> None:
    broker = RabbitBroker("amqp://user:secret@rabbit.example:5672/prod", instance="a")
    assert broker.display_url == "amqp://user:***@rabbit.example:5672/prod"
    assert RabbitBroker("amqp://rabbit/", instance="a").display_url == "amqp://rabbit/"
    nodes = RabbitBroker("amqp://u:p1@a/v; amqp://u:p2@b/v", instance="a").display_url
    assert nodes == "amqp://u:***@a/v;amqp://u:***@b/v"


def test_of_a_cluster_s_nodes_it_uses_one_that_answers(
    amqp_url: str, instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 17: nodes that refuse are passed over, each logged, without a long backoff."""
    caplog.set_level(logging.INFO, logger="bridge.amqp")
    down = [urlsplit(amqp_url)._replace(netloc=f"bridge:pw@127.0.0.1:{free_port()}") for _ in "ab"]
    nodes = ";".join([down[0].geturl(), down[1].geturl(), amqp_url])
    event = reserva()

    async def scenario() -> None:
        recorder = Recorder()
        broker = RabbitBroker(nodes, instance=instance, on_state=recorder.on_state, decoder=SEED)
        async with running(broker, recorder):
            await broker.publish(event)
            await recorder.until(lambda: bool(recorder.events))
        assert recorder.events == [event]

    run(scenario())
    assert "cannot connect to amqp://bridge:***@127.0.0.1" in caplog.text
    assert "(node 2 of 3)" in caplog.text
    assert "connected to " + amqp_url.replace(":guest@", ":***@") in caplog.text
    assert ":pw@" not in caplog.text


def test_an_instance_queue_declared_with_other_arguments_is_used_as_it_is(
    amqp_url: str, instance: str, caplog: pytest.LogCaptureFixture
) -> None:
    """An instance queue declared by an earlier version (here: without a replica
    count) still holds that instance's events: the bridge consumes it, and says how
    to get the new arguments."""
    caplog.set_level(logging.INFO, logger="bridge.amqp")
    spec = instance_queue(instance)
    older = {k: v for k, v in spec.arguments.items() if k != "x-quorum-initial-group-size"}
    waiting, live = reserva(1), reserva(2)

    async def scenario() -> None:
        async with await aio_pika.connect(amqp_url) as connection:
            channel = await connection.channel()
            queue = await channel.declare_queue(spec.name, durable=True, arguments=older)
            await queue.bind(EVENTS.name, "event.#")
        await asyncio.to_thread(publish_celery_task, amqp_url, waiting)
        recorder = Recorder()
        broker = RabbitBroker(amqp_url, instance=instance, on_state=recorder.on_state, decoder=SEED)
        async with running(broker, recorder):
            await broker.publish(live)
            await recorder.until(lambda: len(recorder.events) == 2)
        assert recorder.events == [waiting, live]

    run(scenario())
    assert f"queue {spec.name} exists with other arguments" in caplog.text
    assert "delete the queue" in caplog.text


@pytest.mark.parametrize(
    ("url", "instance", "message"),
    [
        ("amqp://rabbit/", "my host:4000", "letters, digits"),
        ("redis://user:secret@rabbit/", "a", r"amqp://.*not 'redis://user:\*\*\*@rabbit/'"),
    ],
)
def test_bad_configuration_is_a_config_error(url: str, instance: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        RabbitBroker(url, instance=instance)
