"""Both brokers keep the same promises: the tests below run against each of them.

The RabbitMQ broker runs against this run's vhost; each test uses an instance
(and so a queue) of its own, deleted afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from api_rest.events import catalog
from bridge.amqp import RabbitBroker
from bridge.decode import Decoder
from bridge.exceptions import BrokerUnavailable
from bridge.memory import MemoryBroker
from schemas import Reader
from tests.support.brokers import (
    MakeBroker,
    Recorder,
    delete_instance_queue,
    reservas,
    run,
    running,
    unique_instance,
)


@pytest.fixture(params=["memory", "rabbitmq"])
def make_broker(request: pytest.FixtureRequest) -> Iterator[MakeBroker]:
    if request.param == "memory":
        yield lambda on_state: MemoryBroker(on_state=on_state)
        return
    amqp_url: str = request.getfixturevalue("amqp_url")
    instance = unique_instance("contract")
    yield lambda on_state: RabbitBroker(
        amqp_url, instance=instance, on_state=on_state, decoder=Decoder(Reader(catalog))
    )
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
