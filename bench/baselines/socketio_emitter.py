"""The producer for the python-socketio baseline: a write-only ``AsyncAioPikaManager``.

As python-socketio documents for emitting from an external process (a Django
view, a Celery worker), it creates ``socketio.AsyncAioPikaManager(url,
write_only=True)`` on the server's exchange and calls ``emit("event", data)``
for every event, to all clients of the default namespace.

The runs come on standard input and it keeps their schedule itself (``feed.py``),
emitting one event after another, in order; each event's ``sentAt`` is stamped
right before its ``emit()``. It prints ``ready`` once connected to RabbitMQ.

    printf '{"run": "r", "rate": 10, "duration": 1, "pad": 8}\\n' | \\
        python bench/baselines/socketio_emitter.py --broker amqp://guest:guest@127.0.0.1:5672/
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import socketio
from feed import event_body, feed, now

__all__ = ["EVENT", "main", "run"]

#: The socket.io event name every client receives.
EVENT = "event"
#: The server's manager exchange (``socketio_server.CHANNEL``).
CHANNEL = "socketio"


async def run(broker: str, channel: str) -> int:
    manager = socketio.AsyncAioPikaManager(broker, channel=channel, write_only=True)
    # The manager connects on its first publish: an emit to an empty room connects it
    # before the first real event, so that connecting is not counted as that event's latency.
    await manager.emit("warm-up", {}, room="nobody")

    def prepare(run: str, seq: int, pad: int) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(event_body(run, seq, pad))
        return event

    async def emit(event: dict[str, Any]) -> None:
        event["data"]["sentAt"] = now()
        await manager.emit(EVENT, event)

    emitted = await feed(prepare, emit, ordered=True)
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
