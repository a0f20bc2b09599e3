"""Brokers under test: a recorder of what they deliver, and their lifecycle."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from kombu import Connection

from api_rest.events import Reserva, ReservaCreada
from bridge.broker import Broker
from messaging.entities import queue
from schemas import Event
from schemas.topology import instance_queue

#: How long any one wait in these tests may take before it fails.
TIMEOUT = 10.0

#: Builds a broker that reports connectivity changes to the callable it is given.
MakeBroker = Callable[[Callable[[bool], None]], Broker]


class Recorder:
    """Collects what a broker hands over, and lets a test wait for a condition on it."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.states: list[bool] = []
        self._changed = asyncio.Event()

    def on_event(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    def on_state(self, connected: bool) -> None:
        self.states.append(connected)
        self._changed.set()

    async def until(self, condition: Callable[[], bool], limit: float = TIMEOUT) -> None:
        """Return once ``condition()`` holds; fail after ``limit`` seconds."""

        async def wait() -> None:
            while not condition():
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), limit)

    async def until_connected(self, connected: bool = True) -> None:
        await self.until(lambda: bool(self.states) and self.states[-1] is connected)


@asynccontextmanager
async def running(broker: Broker, recorder: Recorder) -> AsyncIterator[Broker]:
    """``broker`` started and connected; closed on the way out, whatever happens."""
    await broker.start(recorder.on_event)
    try:
        await recorder.until_connected()
        yield broker
    finally:
        await asyncio.wait_for(broker.close(), TIMEOUT)


def run(scenario: Coroutine[Any, Any, None]) -> None:
    asyncio.run(scenario)


def unique_instance(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def delete_instance_queue(amqp_url: str, instance: str) -> None:
    with Connection(amqp_url) as connection:
        queue(instance_queue(instance)).bind(connection.default_channel).delete()


def reservas(count: int) -> list[Event]:
    return [
        Event.of(ReservaCreada(reserva=Reserva(id=i, estado="confirmada"))) for i in range(count)
    ]
