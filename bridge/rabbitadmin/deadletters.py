"""The dead letters in ``bridge.dead``: listed without taking them, replayed on request."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import amqp
from amqp.exceptions import NotFound
from kombu import Connection

from bridge.decode import Decoder
from bridge.exceptions import AdminError, Undecodable
from bridge.rabbitadmin.connection import open_channel
from schemas.topology import DEAD_LETTER_QUEUE, EVENTS, routing_key

__all__ = ["DeadLetter", "Replayed", "dead_letters", "replay"]

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
        with open_channel(connection) as channel:
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
        with open_channel(connection) as reader, open_channel(connection) as writer:
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
