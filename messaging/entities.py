"""The shared topology as kombu entities, for Celery and kombu producers.

Kombu is the producer's client; nothing here imports Django.
"""

from __future__ import annotations

from kombu import Connection, binding
from kombu import Exchange as KombuExchange
from kombu import Queue as KombuQueue

from schemas.topology import DEAD_LETTER_QUEUE, DEAD_LETTERS, EVENTS, Exchange, Queue

__all__ = ["declare", "exchange", "queue"]


def exchange(spec: Exchange) -> KombuExchange:
    """The kombu exchange for ``spec``."""
    return KombuExchange(spec.name, type=spec.type, durable=spec.durable)


def queue(spec: Queue) -> KombuQueue:
    """The kombu queue for ``spec``, bound as the spec says."""
    return KombuQueue(
        spec.name,
        bindings=[binding(exchange(b.exchange), routing_key=b.routing_key) for b in spec.bindings],
        queue_arguments=dict(spec.arguments),
        durable=spec.durable,
    )


def declare(connection: Connection, *queues: Queue) -> None:
    """Declare the exchanges, the dead-letter queue and ``queues`` with their bindings.

    Declaring is idempotent. RabbitMQ refuses (PRECONDITION_FAILED) a queue
    that already exists with other arguments; delete it or keep its settings.
    """
    channel = connection.default_channel
    for exchange_spec in (EVENTS, DEAD_LETTERS):
        exchange(exchange_spec).bind(channel).declare()
    for queue_spec in (DEAD_LETTER_QUEUE, *queues):
        queue(queue_spec).bind(channel).declare()
