"""The feeder of the bridge and the bare ``websockets`` baseline: AMQP with confirms.

It publishes each event (a ``dashboard:update`` event, for everyone unless
``--audience`` says a role, a user or a channel, all named ``bench``: the routing key
follows; persistent) to the ``bridge.events`` exchange on a channel with publisher confirms;
an event counts as published once RabbitMQ confirmed it. Publishes are pipelined: the
next goes out on schedule while earlier ones wait for their confirms, in order (one
channel). ``sentAt`` is stamped right before the publish; aio-pika's writer hands the
frames to the kernel on the next turn of this otherwise idle loop. Runs come on
standard input (``feed.py``). It prints ``ready`` once connected.

    python bench/baselines/amqp_feeder.py --broker amqp://guest:guest@127.0.0.1:5672/VHOST
"""

from __future__ import annotations

import argparse
import asyncio
from functools import partial

import aio_pika
from feed import event_body, feed, stamp

from schemas.audience import Audience, Channel, Everyone, Role, User
from schemas.envelope import Event
from schemas.topology import EVENTS, routing_key

#: Whom the events are for, by ``--audience``: the benchmark's clients are all of them.
AUDIENCES: dict[str, Audience] = {
    "all": Everyone(),
    "role": Role(role="bench"),
    "user": User(user="bench"),
    "channel": Channel(channel="bench:1"),
}

__all__ = ["main", "run"]

#: Longest wait for one publish's confirm, in seconds.
CONFIRM_TIMEOUT = 10.0


async def run(broker: str, audience: str = "all") -> int:
    connection = await aio_pika.connect(broker, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            EVENTS.name, aio_pika.ExchangeType(EVENTS.type), durable=EVENTS.durable
        )

        whom = AUDIENCES[audience]
        key = routing_key(Event.untyped("dashboard:update", {}, audience=whom))

        async def publish(body: bytes) -> None:
            message = aio_pika.Message(
                stamp(body),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
            await exchange.publish(message, key, timeout=CONFIRM_TIMEOUT)

        return await feed(partial(event_body, audience=whom), publish)
    finally:
        await asyncio.wait_for(connection.close(), 5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", required=True, help="AMQP URL, vhost included")
    parser.add_argument("--audience", choices=sorted(AUDIENCES), default="all")
    args = parser.parse_args()
    asyncio.run(run(args.broker, args.audience))


if __name__ == "__main__":
    main()
