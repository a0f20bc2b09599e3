"""Publishing to the real RabbitMQ as a producer would, for tests."""

from __future__ import annotations

from kombu import Connection, Producer

from messaging.entities import exchange
from schemas import Event
from schemas.topology import EVENTS, routing_key


def publish(connection: Connection, *events: Event) -> None:
    """Publish each event to ``bridge.events`` with its routing key, confirmed by RabbitMQ
    when the connection has ``confirm_publish``."""
    producer = Producer(connection.default_channel)
    for event in events:
        producer.publish(
            event.to_json(),
            exchange=exchange(EVENTS),
            routing_key=routing_key(event),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            declare=[exchange(EVENTS)],
        )


def publish_to(amqp_url: str, *events: Event) -> None:
    """Connect, publish each event with a confirm, disconnect."""
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as connection:
        publish(connection, *events)
