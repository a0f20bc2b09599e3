"""Both brokers keep the same promises: the tests below run against each of them.

The RabbitMQ broker runs against this run's vhost; each test uses an instance
(and so a queue) of its own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from kombu import Connection

from bridge.amqp import RabbitBroker
from bridge.broker import Broker
from bridge.exceptions import BrokerUnavailable
from bridge.memory import MemoryBroker
from producer.entities import queue
from schemas import Event, Reserva, ReservaCreada
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


@pytest.fixture(params=["memory", "rabbitmq"])
def make_broker(request: pytest.FixtureRequest) -> Iterator[MakeBroker]:
    if request.param == "memory":
        yield lambda on_state: MemoryBroker(on_state=on_state)
        return
    amqp_url: str = request.getfixturevalue("amqp_url")
    instance = unique_instance("contract")
    yield lambda on_state: RabbitBroker(amqp_url, instance=instance, on_state=on_state)
    delete_instance_queue(amqp_url, instance)


def test_published_events_arrive_equal_and_in_order(make_broker: MakeBroker) -> None:
    sent = reservas(50)

    async def scenario() -> None:
        recorder = Recorder()
        async with running(make_broker(recorder.on_state), recorder) as broker:
            for event in sent:
                await broker.publish(event)
            await recorder.until(lambda: len(recorder.events) >= len(sent))
        assert recorder.events == sent

    run(scenario())


def test_events_are_handed_over_outside_the_publishers_task(make_broker: MakeBroker) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        handed_in: list[asyncio.Task[Any] | None] = []
        broker = make_broker(recorder.on_state)
        await broker.start(lambda event: handed_in.append(asyncio.current_task()))
        try:
            await recorder.until_connected()
            await broker.publish(reservas(1)[0])
            await recorder.until(lambda: bool(handed_in))
        finally:
            await broker.close()
        assert handed_in[0] is not asyncio.current_task()

    run(scenario())


def test_connected_from_start_to_close(make_broker: MakeBroker) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        broker = make_broker(recorder.on_state)
        assert not broker.connected
        async with running(broker, recorder):
            assert broker.connected
        assert not broker.connected
        assert recorder.states == [True, False]

    run(scenario())


def test_publishing_after_close_is_refused(make_broker: MakeBroker) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        async with running(make_broker(recorder.on_state), recorder) as broker:
            pass
        with pytest.raises(BrokerUnavailable, match="closed"):
            await broker.publish(reservas(1)[0])

    run(scenario())


def test_publishing_before_start_is_refused(make_broker: MakeBroker) -> None:
    async def scenario() -> None:
        broker = make_broker(lambda _: None)
        with pytest.raises(BrokerUnavailable):
            await broker.publish(reservas(1)[0])

    run(scenario())


def test_a_broker_starts_only_once(make_broker: MakeBroker) -> None:
    async def scenario() -> None:
        recorder = Recorder()
        async with running(make_broker(recorder.on_state), recorder) as broker:
            with pytest.raises(RuntimeError, match="only once"):
                await broker.start(recorder.on_event)

    run(scenario())
