"""The ``memory://`` broker: events published in this process reach this process.

It needs nothing else running, so a single bridge can serve the HTTP API on its
own; nothing survives a restart and no other instance sees the events.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from bridge.broker import OnEvent, OnPresence, tell_state
from bridge.exceptions import BrokerUnavailable
from schemas import Event

__all__ = ["MemoryBroker"]

logger = logging.getLogger("bridge.memory")


class MemoryBroker:
    """A :class:`~bridge.broker.Broker` inside one event loop.

    :meth:`publish` hands each event to the ``on_event`` given to
    :meth:`start` on a later turn of the loop, never inside the publisher's
    call, and in publishing order. ``on_state`` is told ``True`` on start and
    ``False`` on close, as :class:`~bridge.amqp.RabbitBroker` tells
    connectivity changes.
    """

    display_url = "memory://"
    #: Nothing is ever dead-lettered here: events arrive already validated.
    dead_lettered = 0

    def __init__(self, *, on_state: Callable[[bool], None] | None = None) -> None:
        self._on_state = on_state
        self._on_event: OnEvent | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    @property
    def connected(self) -> bool:
        """True between :meth:`start` and :meth:`close`."""
        return self._on_event is not None

    async def start(self, on_event: OnEvent, on_presence: OnPresence | None = None) -> None:
        """Accept events from now on; they go to ``on_event``.

        Raises :class:`RuntimeError` if already started or closed: a broker
        runs once.
        """
        if self._on_event is not None or self._closed:
            raise RuntimeError("a MemoryBroker can be started only once")
        self._loop = asyncio.get_running_loop()
        self._on_event = on_event
        tell_state(self._on_state, True)

    async def publish(self, event: Event) -> None:
        """Queue ``event`` for ``on_event``; it is delivered after the caller yields.

        Raises :class:`~bridge.exceptions.BrokerUnavailable` before
        :meth:`start` or after :meth:`close`.
        """
        if self._loop is None or self._on_event is None:
            state = "closed" if self._closed else "not started"
            raise BrokerUnavailable(f"the {self.display_url} broker is {state}")
        # call_soon runs callbacks in the order they were scheduled.
        self._loop.call_soon(self._deliver, event)

    async def share(self, snapshot: bytes) -> None:
        """Nothing to do: one process is the only instance."""

    async def close(self) -> None:
        """Stop delivering; events published but not yet delivered are dropped."""
        was_connected = self.connected
        self._on_event = None
        self._closed = True
        if was_connected:
            tell_state(self._on_state, False)

    def _deliver(self, event: Event) -> None:
        on_event = self._on_event
        if on_event is None:
            return
        try:
            on_event(event)
        except Exception:
            # Nothing can requeue it here, and one bad event must not stop the rest.
            logger.exception("on_event failed for event %s; it is dropped", event.id)
