"""The producer for the python-socketio baseline: a write-only ``AsyncAioPikaManager``.

As python-socketio documents for emitting from an external process (a Django
view, a Celery worker), it creates ``socketio.AsyncAioPikaManager(url,
write_only=True)`` on the server's exchange and calls ``emit("event", data)``
for every event, to all clients of the default namespace.

Events come on standard input as JSON lines, one event per line, sent the
moment each line arrives, so the benchmark's publisher keeps its own schedule
and stamps ``sentAt`` itself. It prints ``ready`` once connected to RabbitMQ,
and ``done N`` after standard input ends, N events emitted.

    printf '{"seq": 1}\\n' | python bench/baselines/socketio_emitter.py \\
        --broker amqp://guest:guest@127.0.0.1:5672/
"""

from __future__ import annotations

import argparse
import asyncio
import json

import socketio
from feed import feed

__all__ = ["EVENT", "main", "run"]

#: The socket.io event name every client receives.
EVENT = "event"
#: The server's manager exchange (``socketio_server.CHANNEL``).
CHANNEL = "socketio"
#: Longest JSON line accepted on standard input.


async def run(broker: str, channel: str) -> int:
    manager = socketio.AsyncAioPikaManager(broker, channel=channel, write_only=True)
    # The manager connects on its first publish: an emit to an empty room connects it
    # before the first real event, so that connecting is not counted as that event's latency.
    await manager.emit("warm-up", {}, room="nobody")

    async def emit(line: bytes) -> None:
        await manager.emit(EVENT, json.loads(line))

    emitted = await feed(emit)
    if manager.publisher_connection is not None:
        await manager.publisher_connection.close()
    return emitted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--channel", default=CHANNEL, help="the manager's exchange")
    args = parser.parse_args()
    asyncio.run(run(args.broker, args.channel))


if __name__ == "__main__":
    main()
