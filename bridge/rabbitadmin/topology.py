"""Declaring the topology of :mod:`schemas.topology` on RabbitMQ, and checking what is there."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from amqp.exceptions import ChannelError, NotFound, PreconditionFailed
from kombu import Connection

from bridge.exceptions import AdminError
from bridge.rabbitadmin.connection import open_channel
from messaging.entities import declare
from schemas.topology import DEAD_LETTER_QUEUE, DEAD_LETTERS, EVENTS, Exchange, Queue

__all__ = ["Entity", "check_topology", "declare_topology"]


@dataclass(frozen=True)
class Entity:
    """One exchange or queue as RabbitMQ has it; ``problem`` is set when it is not as expected."""

    name: str
    kind: str
    durable: bool
    arguments: Mapping[str, str | int]
    messages: int | None = None
    consumers: int | None = None
    problem: str | None = None


def _specs(instance: Queue | None) -> tuple[list[Exchange], list[Queue]]:
    queues = [DEAD_LETTER_QUEUE] if instance is None else [DEAD_LETTER_QUEUE, instance]
    return [EVENTS, DEAD_LETTERS], queues


def _queue_kind(spec: Queue) -> str:
    return f"queue ({spec.arguments.get('x-queue-type', 'classic')})"


def declare_topology(connection: Connection, instance: Queue | None = None) -> list[Entity]:
    """Declare the exchanges, ``bridge.dead`` and ``instance`` with their bindings; describe them.

    Raises :class:`AdminError` when RabbitMQ refuses, e.g. a queue that exists
    with other arguments.
    """
    _, queues = _specs(instance)
    try:
        declare(connection, *queues[1:])
    except ChannelError as exc:
        raise AdminError(f"RabbitMQ refused the topology: {exc}") from exc
    return check_topology(connection, instance)


def check_topology(connection: Connection, instance: Queue | None = None) -> list[Entity]:
    """Describe each expected exchange and queue without creating anything.

    An entity that is missing, or exists with another type or other
    arguments, has its ``problem`` set. AMQP cannot read bindings, so they
    are not checked.
    """
    exchanges, queues = _specs(instance)
    found = [_check_exchange(connection, spec) for spec in exchanges]
    found += [_check_queue(connection, spec) for spec in queues]
    return found


def _check_exchange(connection: Connection, spec: Exchange) -> Entity:
    entity = Entity(spec.name, f"exchange ({spec.type})", spec.durable, {})
    try:
        with open_channel(connection) as channel:
            channel.exchange_declare(spec.name, spec.type, passive=True)
    except NotFound:
        return _with_problem(entity, "missing")
    # It exists: declaring it as expected changes nothing, or is refused if it differs.
    try:
        with open_channel(connection) as channel:
            channel.exchange_declare(spec.name, spec.type, durable=spec.durable, auto_delete=False)
    except PreconditionFailed as exc:
        return _with_problem(entity, _refusal(exc))
    return entity


def _check_queue(connection: Connection, spec: Queue) -> Entity:
    entity = Entity(spec.name, _queue_kind(spec), spec.durable, spec.arguments)
    try:
        with open_channel(connection) as channel:
            ok = channel.queue_declare(spec.name, passive=True)
    except NotFound:
        return _with_problem(entity, "missing")
    assert ok is not None
    _, messages, consumers = ok
    entity = Entity(entity.name, entity.kind, entity.durable, entity.arguments, messages, consumers)
    try:
        with open_channel(connection) as channel:
            channel.queue_declare(
                spec.name, durable=spec.durable, auto_delete=False, arguments=dict(spec.arguments)
            )
    except PreconditionFailed as exc:
        return _with_problem(entity, _refusal(exc))
    return entity


def _with_problem(entity: Entity, problem: str) -> Entity:
    return Entity(
        entity.name,
        entity.kind,
        entity.durable,
        entity.arguments,
        entity.messages,
        entity.consumers,
        problem,
    )


def _refusal(exc: ChannelError) -> str:
    text = str(getattr(exc, "reply_text", "") or exc)
    return "different: " + text.removeprefix("PRECONDITION_FAILED - ")
