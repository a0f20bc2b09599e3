"""RabbitMQ for an operator, synchronously with kombu: the topology and the dead letters.

The command line uses this module; the bridge itself never does (it has
:mod:`bridge.amqp`). Names come only from :mod:`schemas.topology`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import amqp
from amqp.exceptions import ChannelError, NotFound, PreconditionFailed
from kombu import Connection

from bridge.decode import Decoder
from bridge.exceptions import AdminError, Undecodable
from messaging.entities import declare
from schemas.topology import (
    DEAD_LETTER_QUEUE,
    DEAD_LETTERS,
    EVENTS,
    Exchange,
    Queue,
    display_url,
    is_amqp_url,
    routing_key,
)

__all__ = [
    "DeadLetter",
    "Entity",
    "Replayed",
    "check_topology",
    "connect",
    "dead_letters",
    "declare_topology",
    "replay",
    "table",
]

#: Headers that say how a message died; a replayed message leaves without them.
_DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
        "x-bridge-error",
        "x-bridge-instance",
    }
)

#: Properties copied from a dead letter to its replay.
_KEPT_PROPERTIES = (
    "content_type",
    "content_encoding",
    "message_id",
    "correlation_id",
    "timestamp",
    "type",
    "app_id",
)


def _checked(url: str) -> str:
    if not is_amqp_url(url):
        raise ValueError(
            f"--broker must be an amqp:// or amqps:// URL, not {display_url(url)!r}: "
            "this command works on RabbitMQ"
        )
    return url


@contextmanager
def connect(url: str, *, timeout: float = 5.0) -> Iterator[Connection]:
    """A connection to RabbitMQ with publisher confirms, or :class:`AdminError` saying why not.

    Raises :class:`ValueError` for a URL that is not ``amqp://`` or ``amqps://``.
    """
    connection = Connection(
        _checked(url), connect_timeout=timeout, transport_options={"confirm_publish": True}
    )
    try:
        try:
            connection.connect()
        except (OSError, amqp.AMQPError) as exc:
            raise AdminError(f"cannot connect to {display_url(url)}: {exc}") from exc
        yield connection
    finally:
        with contextlib.suppress(OSError, amqp.AMQPError):
            connection.release()


@contextmanager
def _channel(connection: Connection) -> Iterator[amqp.Channel]:
    # A channel of its own per step: RabbitMQ closes a channel on any refusal.
    channel = cast(amqp.Channel, connection.channel())
    try:
        yield channel
    finally:
        with contextlib.suppress(OSError, amqp.AMQPError):
            channel.close()


# The topology.


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
        with _channel(connection) as channel:
            channel.exchange_declare(spec.name, spec.type, passive=True)
    except NotFound:
        return _with_problem(entity, "missing")
    # It exists: declaring it as expected changes nothing, or is refused if it differs.
    try:
        with _channel(connection) as channel:
            channel.exchange_declare(spec.name, spec.type, durable=spec.durable, auto_delete=False)
    except PreconditionFailed as exc:
        return _with_problem(entity, _refusal(exc))
    return entity


def _check_queue(connection: Connection, spec: Queue) -> Entity:
    entity = Entity(spec.name, _queue_kind(spec), spec.durable, spec.arguments)
    try:
        with _channel(connection) as channel:
            ok = channel.queue_declare(spec.name, passive=True)
    except NotFound:
        return _with_problem(entity, "missing")
    assert ok is not None
    _, messages, consumers = ok
    entity = Entity(entity.name, entity.kind, entity.durable, entity.arguments, messages, consumers)
    try:
        with _channel(connection) as channel:
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


def table(rows: Sequence[Sequence[str]]) -> str:
    """``rows`` (the first one a header) as aligned columns."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


# Dead letters.


@dataclass(frozen=True)
class DeadLetter:
    """One message of ``bridge.dead``, as read without consuming it."""

    position: int
    message_id: str | None
    reason: str
    when: datetime | None
    body: bytes
    routing_key: str
    headers: Mapping[str, Any]
    properties: Mapping[str, Any]
    delivery_tag: int


@dataclass(frozen=True)
class Replayed:
    """What :func:`replay` did with one selected dead letter."""

    letter: DeadLetter
    #: Published to ``bridge.events`` with this routing key (or would be, on a dry run).
    routing_key: str | None
    #: Why it stayed in ``bridge.dead``; ``None`` if it was replayed.
    kept_because: str | None


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _letter(position: int, message: amqp.Message) -> DeadLetter:
    properties = dict(message.properties)
    headers: dict[str, Any] = dict(properties.get("application_headers") or {})
    body = message.body
    if isinstance(body, str):  # py-amqp decodes bodies that name their encoding
        body = body.encode(properties.get("content_encoding") or "utf-8")
    deaths = headers.get("x-death")
    death: Mapping[str, Any] = deaths[0] if isinstance(deaths, list) and deaths else {}
    if "x-bridge-error" in headers:
        reason = _text(headers["x-bridge-error"])
        instance = headers.get("x-bridge-instance")
        if instance is not None:
            reason = f"{reason} (instance {_text(instance)})"
    elif death:
        reason = f"{_text(death.get('reason', '?'))} in {_text(death.get('queue', '?'))}"
    else:
        reason = "unknown: no x-bridge-error or x-death header"
    when = death.get("time") or properties.get("timestamp")
    return DeadLetter(
        position=position,
        message_id=_text(properties["message_id"]) if properties.get("message_id") else None,
        reason=reason,
        when=when if isinstance(when, datetime) else None,
        body=body,
        routing_key=_text(message.delivery_info.get("routing_key", "")),
        headers=headers,
        properties=properties,
        delivery_tag=int(message.delivery_info["delivery_tag"]),
    )


def _read(channel: amqp.Channel, limit: int | None) -> list[DeadLetter]:
    # Every message is taken unacknowledged and stays so until the channel
    # closes, which hands back all of them at once in their order.
    letters: list[DeadLetter] = []
    while limit is None or len(letters) < limit:
        message = channel.basic_get(DEAD_LETTER_QUEUE.name, no_ack=False)
        if message is None:
            break
        letters.append(_letter(len(letters) + 1, message))
    return letters


def dead_letters(connection: Connection, limit: int | None = None) -> list[DeadLetter]:
    """The first ``limit`` messages of ``bridge.dead`` (all if ``None``), left in the queue."""
    try:
        with _channel(connection) as channel:
            return _read(channel, limit)
    except NotFound as exc:
        raise AdminError(
            f"there is no queue {DEAD_LETTER_QUEUE.name}: run 'event-bridge topology' first"
        ) from exc


def replay(
    connection: Connection,
    selected: Callable[[DeadLetter], bool],
    *,
    dry_run: bool = False,
    confirm_timeout: float = 5.0,
    decoder: Decoder | None = None,
) -> list[Replayed]:
    """Republish the selected dead letters that now decode; keep the others.

    Each selected message is decoded again, by ``decoder`` as the bridge
    would (default: no catalog, lenient): one that still is not an event
    stays in ``bridge.dead``. The others are published to ``bridge.events``
    with the routing key of their event, mandatory and confirmed, and only
    then acknowledged in ``bridge.dead``. Messages not selected, and every
    message on a dry run, stay where they were, in their order.
    """
    outcomes: list[Replayed] = []
    try:
        with _channel(connection) as reader, _channel(connection) as writer:
            returned: list[str] = []
            # py-amqp calls these for a message RabbitMQ could not route (mandatory).
            cast(Any, writer).events["basic_return"].add(
                lambda exc, *_: returned.append(str(getattr(exc, "reply_text", exc)))
            )
            for letter in _read(reader, None):
                if not selected(letter):
                    continue
                outcome = _replay_one(
                    letter, reader, writer, returned, dry_run, confirm_timeout, decoder or Decoder()
                )
                outcomes.append(outcome)
    except NotFound as exc:
        raise AdminError(
            f"there is no queue {DEAD_LETTER_QUEUE.name}: run 'event-bridge topology' first"
        ) from exc
    return outcomes


def _replay_one(
    letter: DeadLetter,
    reader: amqp.Channel,
    writer: amqp.Channel,
    returned: list[str],
    dry_run: bool,
    confirm_timeout: float,
    decoder: Decoder,
) -> Replayed:
    try:
        event = decoder.decode(letter.body, letter.headers, letter.properties.get("content_type"))
    except Undecodable as exc:
        return Replayed(letter, None, f"still not an event: {exc}")
    key = routing_key(event)
    if dry_run:
        return Replayed(letter, key, "dry run")
    properties = {k: letter.properties[k] for k in _KEPT_PROPERTIES if k in letter.properties}
    headers = {k: v for k, v in letter.headers.items() if k not in _DEATH_HEADERS}
    message = amqp.Message(letter.body, application_headers=headers, delivery_mode=2, **properties)
    returned.clear()
    try:
        writer.basic_publish(
            message, EVENTS.name, key, mandatory=True, confirm_timeout=confirm_timeout
        )
    except (OSError, amqp.AMQPError) as exc:
        return Replayed(letter, key, f"RabbitMQ did not take it: {exc}")
    if returned:
        return Replayed(letter, key, f"no queue is bound for routing key {key!r} ({returned[0]})")
    reader.basic_ack(letter.delivery_tag)
    return Replayed(letter, key, None)
