"""The RabbitMQ broker: consumes this instance's queue and publishes with confirms.

On every (re)connection it declares the topology of :mod:`schemas.topology`,
then consumes ``bridge.instance.<instance>`` with manual acknowledgement:

- an event is handed to ``on_event``, then acknowledged;
- a message that is not an event is copied to ``bridge.dlx`` with the reason
  in its ``x-bridge-error`` header, then acknowledged;
- if ``on_event`` raises, the message goes back to the queue, whose delivery
  limit dead-letters it after a few tries.

The connection is plain (not aio-pika's "robust" one): this module owns the
reconnect loop, so the backoff and :attr:`RabbitBroker.connected` are its own,
and so is failover between the nodes of a cluster, which aio-pika's connect
does not do: each attempt goes to the next URL of the list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import urlsplit

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
)
from aio_pika.exceptions import (
    CONNECTION_EXCEPTIONS,
    ChannelClosed,
    ChannelPreconditionFailed,
    DeliveryError,
    PublishError,
)
from pamqp.common import FieldTable

from bridge.broker import OnEvent, OnPresence, tell_state
from bridge.decode import Decoder
from bridge.exceptions import BrokerUnavailable, ConfigError, Undecodable
from schemas import Event
from schemas.topology import (
    DEAD_LETTER_QUEUE,
    DEAD_LETTERS,
    EVENTS,
    PRESENCE,
    Exchange,
    Queue,
    broker_urls,
    display_url,
    instance_queue,
    is_amqp_url,
    presence_queue,
    routing_key,
)

__all__ = ["CLOSE_TIMEOUT", "RabbitBroker"]

logger = logging.getLogger("bridge.amqp")

#: How long :meth:`RabbitBroker.close` waits for each of its four steps (cancel
#: the consumer, settle messages in hand, close the channel, close the
#: connection) before going on: RabbitMQ answers in milliseconds when it is up.
CLOSE_TIMEOUT = 1.0

# A cap on the exponent, so the delay computation never overflows a float.
_MAX_DOUBLINGS = 32

#: The largest presence snapshot read from another instance; a larger one is dropped.
MAX_PRESENCE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class _Session:
    """One live connection with its channel, its entities, and a future set when it dies."""

    #: The node it is connected to, password hidden.
    node: str
    connection: AbstractConnection
    channel: AbstractChannel
    events: AbstractExchange
    dead_letters: AbstractExchange
    queue: AbstractQueue
    lost: asyncio.Future[str]
    #: Where presence snapshots go; ``None`` if it could not be set up.
    presence: AbstractExchange | None = None


class RabbitBroker:
    """A :class:`~bridge.broker.Broker` on RabbitMQ, for ``amqp://`` and ``amqps://`` URLs.

    ``url`` may list the nodes of a cluster, separated by ``;``: each attempt to
    connect goes to the next one, and after a lost connection the first try is
    another node, so a node that is down costs one short wait, not a backoff.

    ``instance`` names this bridge's queue, ``bridge.instance.<instance>``:
    keep it stable across restarts so events wait there meanwhile. At most
    ``prefetch`` messages are unacknowledged at once. :meth:`publish` waits
    ``confirm_timeout`` seconds for RabbitMQ's confirm. While RabbitMQ is
    unreachable it retries every ``min_backoff`` seconds, doubling up to
    ``max_backoff``, with jitter. ``on_state`` is called with the new value
    of :attr:`connected` each time it changes. ``decoder`` reads messages
    against the bridge's catalog (default: none, every event untyped).

    Raises :class:`~bridge.exceptions.ConfigError` for a URL or instance name
    that cannot work.
    """

    def __init__(
        self,
        url: str,
        *,
        instance: str,
        prefetch: int = 256,
        confirm_timeout: float = 5.0,
        connect_timeout: float = 10.0,
        min_backoff: float = 0.5,
        max_backoff: float = 30.0,
        on_state: Callable[[bool], None] | None = None,
        decoder: Decoder | None = None,
    ) -> None:
        self.display_url = display_url(url)
        self._decoder = decoder or Decoder()
        self._urls = broker_urls(url)
        #: The index in ``_urls`` of the node to try next.
        self._turn = 0
        self._instance = instance
        self._queue_spec = _checked_queue(self.display_url, instance, prefetch)
        self._consumer_tag = f"event-bridge.{socket.gethostname()}.{instance}"
        self._prefetch = prefetch
        self._confirm_timeout = confirm_timeout
        self._connect_timeout = connect_timeout
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._on_state = on_state
        self._on_event: OnEvent | None = None
        self._on_presence: OnPresence | None = None
        self._session: _Session | None = None
        self._runner: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Task[Any]] = set()
        self._closing = False
        self._last_error = "not started"
        #: Messages this instance sent to the dead-letter queue since it started.
        self.dead_lettered = 0

    @property
    def connected(self) -> bool:
        """Whether the topology is declared and this instance's queue is consumed now."""
        return self._session is not None

    async def start(self, on_event: OnEvent, on_presence: OnPresence | None = None) -> None:
        """Connect and consume in the background; return at once. Other instances'
        presence snapshots go to ``on_presence``.

        Until :meth:`close`, a lost or refused connection is retried with
        backoff. Raises :class:`RuntimeError` if already started or closed.
        """
        if self._runner is not None or self._closing:
            raise RuntimeError("a RabbitBroker can be started only once")
        self._on_event = on_event
        self._on_presence = on_presence
        self._runner = asyncio.create_task(self._run(), name=f"bridge.amqp {self._instance}")

    async def publish(self, event: Event) -> None:
        """Publish ``event`` to ``bridge.events`` and wait for RabbitMQ's confirm.

        Raises :class:`~bridge.exceptions.BrokerUnavailable` saying why when
        not connected, when RabbitMQ refuses or cannot route it, or when no
        confirm comes within ``confirm_timeout``: the event was not taken.
        """
        session = self._session
        if session is None:
            raise BrokerUnavailable(f"not connected to {self.display_url}: {self._last_error}")
        message = aio_pika.Message(
            event.to_json(),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=event.id,
        )
        key = routing_key(event)
        try:
            await session.events.publish(message, key, timeout=self._confirm_timeout)
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable(self._publish_failure(event, key, exc)) from exc

    async def share(self, snapshot: bytes) -> None:
        """Send this instance's presence to the others, without a confirm."""
        session = self._session
        if session is None or session.presence is None:
            raise BrokerUnavailable(f"not connected to {self.display_url}: {self._last_error}")
        message = aio_pika.Message(snapshot, content_type="application/json")
        try:
            await session.presence.publish(message, "", timeout=self._confirm_timeout)
        except CONNECTION_EXCEPTIONS as exc:
            raise BrokerUnavailable(self._describe(exc)) from exc

    async def close(self) -> None:
        """Stop consuming, settle messages being handled, and disconnect.

        Messages delivered but not yet acknowledged return to the queue. It
        returns within a few seconds even while RabbitMQ is unreachable.
        """
        self._closing = True
        self._last_error = "the broker is closed"
        session = self._session
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if session is not None:
            await self._say_goodbye(session)
        self._set_session(None)

    # The reconnect loop.

    async def _run(self) -> None:
        failures = 0
        while True:
            url = self._urls[self._turn]
            session = await self._try_open(url)
            if session is not None:
                uptime = await self._hold(session, url)
                # Only a connection that stayed up resets the backoff, so one that
                # RabbitMQ keeps dropping at once is not retried in a tight loop.
                if uptime >= self._max_backoff:
                    failures = 0
            self._turn = (self._turn + 1) % len(self._urls)
            # The delay grows once every node was tried: the next node of a cluster
            # is tried as soon as the first retry of a single node would be.
            delay = self._backoff(failures // len(self._urls))
            failures += 1
            logger.info("reconnecting to %s in %.1f s", self._node(), delay)
            await asyncio.sleep(delay)

    def _node(self) -> str:
        """The node tried next, for log lines: its URL, and which of the list it is."""
        shown = display_url(self._urls[self._turn])
        if len(self._urls) == 1:
            return shown
        return f"{shown} (node {self._turn + 1} of {len(self._urls)})"

    def _backoff(self, failures: int) -> float:
        ceiling = self._min_backoff * 2 ** min(failures, _MAX_DOUBLINGS)
        ceiling = min(self._max_backoff, ceiling)
        # Jitter spreads the instances out after RabbitMQ comes back.
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - not for security

    async def _try_open(self, url: str) -> _Session | None:
        node = self._node()
        logger.info("connecting to %s", node)
        try:
            return await self._open(url)
        except CONNECTION_EXCEPTIONS as exc:
            self._last_error = self._at(url, self._describe(exc))
            logger.warning("cannot connect to %s: %s", node, self._describe(exc))
        except Exception as exc:
            # Not a network problem: a bug or an unexpected answer. Keep trying anyway,
            # since the bridge is useless without its broker, but show the traceback.
            self._last_error = self._at(url, self._describe(exc))
            logger.exception("unexpected error connecting to %s", node)
        return None

    def _at(self, url: str, text: str) -> str:
        # Which node it was matters only when there are several.
        return text if len(self._urls) == 1 else f"{display_url(url)}: {text}"

    async def _hold(self, session: _Session, url: str) -> float:
        """Serve ``session`` until it is lost; return how long it lasted, in seconds."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        self._set_session(session, url)
        try:
            lost = await session.lost
        finally:
            self._set_session(None)
        self._last_error = self._at(url, lost)
        logger.warning("lost the connection to %s: %s", display_url(url), lost)
        await _quietly(session.connection.close())
        return loop.time() - began

    def _set_session(self, session: _Session | None, url: str = "") -> None:
        was_connected = self.connected
        self._session = session
        if self.connected == was_connected:
            return
        if session is not None:
            logger.info(
                "connected to %s; consuming %s as %s",
                display_url(url),
                self._queue_spec.name,
                self._consumer_tag,
            )
        tell_state(self._on_state, self.connected)

    # Opening a session: connection, channel, topology, consumer.

    async def _open(self, url: str) -> _Session:
        connection = await aio_pika.connect(
            url,
            timeout=self._connect_timeout,
            client_properties={"connection_name": f"event-bridge {self._instance}"},
        )
        lost: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        connection.close_callbacks.add(partial(_mark_lost, lost, "connection closed"))
        try:
            return await self._prepare(url, connection, lost)
        except BaseException:
            await _quietly(connection.close())
            raise

    async def _prepare(
        self, url: str, connection: AbstractConnection, lost: asyncio.Future[str]
    ) -> _Session:
        await self._declare(connection)
        # on_return_raises: an event no queue takes is an error for publish(),
        # not a log line; our own queue is bound, so it means something is wrong.
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        channel.close_callbacks.add(partial(_mark_lost, lost, "channel closed"))
        await channel.set_qos(prefetch_count=self._prefetch)
        events = await channel.get_exchange(EVENTS.name, ensure=False)
        dead_letters = await channel.get_exchange(DEAD_LETTERS.name, ensure=False)
        queue = await channel.get_queue(self._queue_spec.name, ensure=False)
        node = display_url(url)
        presence = await self._hear_presence(connection)
        session = _Session(node, connection, channel, events, dead_letters, queue, lost, presence)
        await self._consume(session)
        return session

    async def _hear_presence(self, connection: AbstractConnection) -> AbstractExchange | None:
        """Consume the others' presence on a channel of its own; ``None`` if that fails,
        which costs presence, never events."""
        if self._on_presence is None:
            return None
        try:
            channel = await connection.channel(publisher_confirms=False)
            exchange = await _declare_exchange(channel, PRESENCE)
            spec = presence_queue(self._instance, uuid.uuid4().hex[:8])
            queue = await _declare_queue(channel, spec)
            await queue.consume(self._presence_message, no_ack=True)
        except CONNECTION_EXCEPTIONS as exc:
            logger.warning("presence is off on this connection: %s", self._describe(exc))
            return None
        return exchange

    async def _presence_message(self, message: AbstractIncomingMessage) -> None:
        if self._on_presence is None:
            return
        if len(message.body) > MAX_PRESENCE_BYTES:
            logger.warning(
                "presence message of %d bytes dropped (at most %d)",
                len(message.body),
                MAX_PRESENCE_BYTES,
            )
            return
        self._on_presence(message.body)

    async def _declare(self, connection: AbstractConnection) -> None:
        # On channels of their own: RabbitMQ closes a channel that a declaration
        # offends, and the one that consumes must not be that channel.
        async with connection.channel() as channel:
            await _declare_exchange(channel, EVENTS)
            await _declare_exchange(channel, DEAD_LETTERS)
        try:
            await self._declare_queue(connection, DEAD_LETTER_QUEUE)
        except ChannelClosed as exc:
            # Not needed to deliver: a classic one declared by an earlier version
            # lives on one node, which may be the one that is down.
            logger.warning(
                "cannot declare %s (%s); events flow, but a message that is not an event "
                "cannot be dead-lettered until it is back",
                DEAD_LETTER_QUEUE.name,
                exc,
            )
        await self._declare_queue(connection, self._queue_spec)

    async def _declare_queue(self, connection: AbstractConnection, spec: Queue) -> None:
        try:
            async with connection.channel() as channel:
                await _declare_queue(channel, spec)
        except ChannelPreconditionFailed as exc:
            # Declared by an earlier version with other arguments: it still holds
            # what it held, so use it as it is, bindings renewed.
            logger.warning(
                "queue %s exists with other arguments than this version declares; using it "
                "as it is (%s). To get the new ones, stop the bridges, delete the queue "
                "(what waits in it goes with it), and start them again.",
                spec.name,
                exc,
            )
            async with connection.channel() as channel:
                queue = await channel.declare_queue(spec.name, passive=True)
                for binding in spec.bindings:
                    await queue.bind(binding.exchange.name, binding.routing_key)

    async def _consume(self, session: _Session) -> None:
        # If the queue is deleted under us, RabbitMQ cancels the consumer and the
        # channel stays open but idle: treat it as lost, so the queue is redeclared.
        underlay = await session.channel.get_underlay_channel()
        underlay.on_consumer_cancel_callbacks.add(
            lambda _frame: _mark_lost(session.lost, "RabbitMQ cancelled the consumer", None, None)
        )
        await session.queue.consume(
            partial(self._on_message, session), no_ack=False, consumer_tag=self._consumer_tag
        )

    # Handling one message.

    async def _on_message(self, session: _Session, message: AbstractIncomingMessage) -> None:
        if self._closing or self._on_event is None:
            return  # left unacknowledged: back to the queue when the connection closes
        # close() waits for these, so that what was handed over gets acknowledged.
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._handle(session, message, self._on_event)
        finally:
            if task is not None:
                self._inflight.discard(task)

    async def _handle(
        self, session: _Session, message: AbstractIncomingMessage, on_event: OnEvent
    ) -> None:
        # Nothing is awaited before on_event: aio-pika starts one task per
        # delivery, in order, so events reach on_event in queue order.
        try:
            event = self._decoder.decode(message.body, message.headers, message.content_type)
        except Undecodable as exc:
            await self._dead_letter(session, message, str(exc))
            return
        try:
            on_event(event)
        except Exception:
            logger.exception("on_event failed for event %s; returning it to the queue", event.id)
            await _settle(message.nack(requeue=True), message)
            return
        await _settle(message.ack(), message)

    async def _dead_letter(
        self, session: _Session, message: AbstractIncomingMessage, reason: str
    ) -> None:
        self.dead_lettered += 1
        logger.warning(
            "message %s (routing key %s) is not an event, dead-lettering it: %s",
            message.message_id,
            message.routing_key,
            reason,
        )
        try:
            await session.dead_letters.publish(
                self._dead_copy(message, reason),
                message.routing_key or "",
                timeout=self._confirm_timeout,
            )
        except CONNECTION_EXCEPTIONS as exc:
            # Rejecting without requeue hands it to the queue's own dead-lettering,
            # which keeps the body though not the reason.
            logger.warning(
                "could not dead-letter message %s (%s); rejecting it instead",
                message.message_id,
                self._describe(exc),
            )
            await _settle(message.reject(requeue=False), message)
            return
        await _settle(message.ack(), message)

    def _dead_copy(self, message: AbstractIncomingMessage, reason: str) -> aio_pika.Message:
        return aio_pika.Message(
            message.body,
            headers={
                **message.headers,
                "x-bridge-error": reason,
                "x-bridge-instance": self._instance,
            },
            content_type=message.content_type,
            content_encoding=message.content_encoding,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=message.message_id,
            correlation_id=message.correlation_id,
            timestamp=message.timestamp,
            type=message.type,
            app_id=message.app_id,
        )

    # Closing.

    async def _say_goodbye(self, session: _Session) -> None:
        # Cancel first, so nothing new arrives, then let the messages being
        # handled be acknowledged before the connection goes.
        await _quietly(session.queue.cancel(self._consumer_tag))
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=CLOSE_TIMEOUT)
        await _quietly(session.channel.close())
        await _quietly(session.connection.close())
        logger.info("disconnected from %s", session.node)

    # Messages for people.

    def _publish_failure(self, event: Event, key: str, exc: BaseException) -> str:
        where = f"event {event.id} to {self.display_url}"
        if isinstance(exc, TimeoutError):
            return f"{where}: no confirm within {self._confirm_timeout} s"
        if isinstance(exc, PublishError):
            return f"{where}: no queue is bound for routing key {key!r}"
        if isinstance(exc, DeliveryError):
            return f"{where}: RabbitMQ refused it"
        return f"{where}: {self._describe(exc)}"

    def _describe(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        # Should a client error quote a URL, its password still never reaches a log.
        for url in self._urls:
            password = urlsplit(url).password
            if password:
                text = text.replace(f":{password}@", ":***@")
        return text


def _mark_lost(lost: asyncio.Future[str], what: str, _sender: object, exc: object) -> None:
    if not lost.done():
        lost.set_result(f"{what}: {exc}" if exc else what)


async def _quietly(step: Awaitable[object]) -> None:
    # Used while closing or after a loss: there is nothing left to do on failure.
    with contextlib.suppress(*CONNECTION_EXCEPTIONS):
        await asyncio.wait_for(step, CLOSE_TIMEOUT)


async def _settle(step: Awaitable[None], message: AbstractIncomingMessage) -> None:
    try:
        await step
    except CONNECTION_EXCEPTIONS as exc:
        # The channel is gone; RabbitMQ redelivers the message after reconnecting.
        logger.warning("could not settle message %s: %s", message.message_id, exc)


async def _declare_exchange(channel: AbstractChannel, spec: Exchange) -> AbstractExchange:
    return await channel.declare_exchange(spec.name, spec.type, durable=spec.durable)


async def _declare_queue(channel: AbstractChannel, spec: Queue) -> AbstractQueue:
    arguments: FieldTable = dict(spec.arguments)
    queue = await channel.declare_queue(
        spec.name,
        durable=spec.durable,
        exclusive=spec.exclusive,
        auto_delete=spec.exclusive,
        arguments=arguments,
    )
    for binding in spec.bindings:
        await queue.bind(binding.exchange.name, binding.routing_key)
    return queue


def _checked_queue(url: str, instance: str, prefetch: int) -> Queue:
    if not is_amqp_url(url):
        raise ConfigError(
            f"the RabbitMQ URL must start with amqp:// or amqps://, not {display_url(url)!r}"
        )
    if prefetch < 1:
        raise ConfigError(f"prefetch must be at least 1, not {prefetch}")
    try:
        return instance_queue(instance)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
