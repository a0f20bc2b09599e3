"""The seam between the bridge and where events come from: RabbitMQ or the memory broker.

Both implement :class:`Broker` and pass the same contract tests
(``tests/test_broker_contract.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from schemas import Event

__all__ = ["Broker", "OnEvent", "OnPresence", "OnState", "tell_state"]

#: Called once per valid event, in arrival order, on the event loop. It returns
#: once the event is routed and recorded; the broker acknowledges the message
#: only after that. If it raises, the message is returned to its queue, and
#: RabbitMQ's delivery limit dead-letters it if it keeps failing.
OnEvent = Callable[[Event], None]


#: Called with each presence snapshot another instance shares (:mod:`bridge.presence`).
OnPresence = Callable[[bytes], None]


#: Told ``True`` when events start flowing and ``False`` when they stop.
OnState = Callable[[bool], None]


def tell_state(on_state: OnState | None, connected: bool) -> None:
    """Report connectivity to a listener; a failing listener is logged, never raised."""
    if on_state is None:
        return
    try:
        on_state(connected)
    except Exception:
        logging.getLogger("bridge.broker").exception("on_state failed")


class Broker(Protocol):
    """A source of events that can also publish them."""

    #: The broker's URL without its password, for logs and the startup line.
    display_url: str
    #: Messages sent to ``bridge.dead`` since start, as they could not be decoded.
    dead_lettered: int

    @property
    def connected(self) -> bool:
        """Whether events flow now; ``/api/health`` answers 503 while this is false."""
        ...

    async def start(self, on_event: OnEvent, on_presence: OnPresence | None = None) -> None:
        """Start consuming in the background and return at once; other instances'
        presence snapshots go to ``on_presence``.

        A broker that is down is retried with exponential backoff and jitter
        until :meth:`close`; :attr:`connected` tells the state meanwhile.
        """
        ...

    async def publish(self, event: Event) -> None:
        """Publish ``event`` to every instance, returning once the broker confirmed it.

        Raises :class:`~bridge.exceptions.BrokerUnavailable` when it cannot be
        confirmed: not connected, refused, or no answer in time.
        """
        ...

    async def share(self, snapshot: bytes) -> None:
        """Send this instance's presence snapshot to every other instance, unconfirmed:
        the next one follows. Raises :class:`~bridge.exceptions.BrokerUnavailable`
        while not connected."""
        ...

    async def close(self) -> None:
        """Stop consuming and disconnect; unacknowledged messages return to the queue."""
        ...
