"""The topology declares on the real RabbitMQ and routes every kind of event."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from amqp.exceptions import PreconditionFailed
from kombu import Connection, Consumer, Message, Producer

from api_rest.events import catalog
from messaging.entities import declare, exchange, queue
from schemas import Event, Everyone, Reader, Role, User
from schemas.topology import DEAD_LETTER_QUEUE, EVENTS, instance_queue
from tests.support.rabbit import publish

parse_event = Reader(catalog, strict=True).event

SEED_EVENTS = [
    (
        {"type": "reserva:creada", "data": {"reserva": {"id": 1, "estado": "confirmada"}}},
        Everyone(),
    ),
    ({"type": "dashboard:update", "data": {"services": {"total": 50, "activos": 45}}}, Everyone()),
    (
        {"type": "nueva_solicitud", "data": {"servicioId": 1, "clienteId": 123}},
        Role(role="proveedor"),
    ),
    ({"type": "reserva_confirmada", "data": {"reservaId": 1}}, User(user="user_123")),
]


@pytest.fixture
def connection(amqp_url: str) -> Iterator[Connection]:
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as conn:
        conn.connect()
        yield conn


def test_each_routing_key_reaches_an_instance_queue(connection: Connection) -> None:
    spec = instance_queue("routing-test")
    declare(connection, spec)
    sent = [Event.of(parse_event(json.dumps(e)).data, audience=a) for e, a in SEED_EVENTS]
    for event in sent:
        publish(connection, event)

    # Publisher confirms are on, so each message is in the queue when publish returns.
    bound = queue(spec).bind(connection.default_channel)
    received = [bound.get(no_ack=True) for _ in sent]
    assert [m.delivery_info["routing_key"] for m in received if m] == [
        "event.reserva.creada",
        "dashboard",
        "role.proveedor",
        "user.user_123",
    ]
    assert [parse_event(m.body) for m in received if m] == sent
    assert bound.get(no_ack=True) is None


def test_a_rejected_message_is_dead_lettered_not_requeued(connection: Connection) -> None:
    spec = instance_queue("dead-letter-test")
    declare(connection, spec)
    Producer(connection.default_channel).publish(
        b"not an event", exchange=exchange(EVENTS), routing_key="event.reserva.creada"
    )
    bound = queue(spec).bind(connection.default_channel)
    message = bound.get()
    assert message is not None
    message.reject(requeue=False)

    # bridge.dead is shared by this run's tests: look for ours among the raw messages,
    # leaving the others unacknowledged (they go back when the consumer closes).
    dead: list[Message] = []

    def ours(message: Message) -> None:
        if message.body == b"not an event":
            dead.append(message)

    with Consumer(connection, [queue(DEAD_LETTER_QUEUE)], on_message=ours):
        while not dead:
            connection.drain_events(timeout=10)
    death = dead[0].headers["x-death"][0]
    assert (death["queue"], death["reason"]) == (spec.name, "rejected")
    dead[0].ack()
    assert bound.get() is None


def test_declaring_twice_is_harmless(connection: Connection) -> None:
    spec = instance_queue("redeclare-test")
    declare(connection, spec)
    event = Event.of(parse_event(json.dumps(SEED_EVENTS[0][0])).data)
    publish(connection, event)
    declare(connection, spec)  # as every process does when it starts: no error, no loss
    bound = queue(spec).bind(connection.default_channel)
    kept = bound.get(no_ack=True)
    assert kept is not None
    assert parse_event(kept.body) == event
    assert bound.get(no_ack=True) is None  # one binding: the event arrived once


def test_an_instance_queue_keeps_its_arguments(connection: Connection) -> None:
    declare(connection, instance_queue("arguments-test"))
    # RabbitMQ refuses to redeclare a queue with other arguments: proof they were set.
    with pytest.raises(PreconditionFailed, match="x-expires"):
        declare(connection, instance_queue("arguments-test", expires=timedelta(minutes=5)))


def test_a_bad_instance_name_is_refused_with_what_to_use() -> None:
    with pytest.raises(ValueError, match="letters, digits"):
        instance_queue("my host:4000")
