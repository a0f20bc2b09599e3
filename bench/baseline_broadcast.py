"""The baseline for ``bench/delivery.py``: a bare ``websockets`` server fed by aio-pika.

What someone would write without the bridge: the ``websockets`` asyncio
server, one aio-pika consumer of its own queue bound to ``bridge.events`` with
``#``, and ``websockets.asyncio.server.broadcast()`` of every message body to
every connection. No authentication, no routing, no history, no validation.

Each connection gets ``{"type": "bridge:welcome"}`` first and
``{"type": "bridge:pong"}`` for every message it sends, so the benchmark's
clients treat both servers alike. It declines permessage-deflate, unless started
with ``--compression deflate`` (``websockets``' own default), which
``bench/delivery.py`` uses to show what accepting it costs. Like
``event-bridge serve``, it prints one line naming ``ws://HOST:PORT/ws`` once it
is ready, and stops on SIGTERM or SIGINT.

    python bench/baseline_broadcast.py --port 0 --broker amqp://guest:guest@127.0.0.1:5672/
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import websockets
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from websockets.asyncio.server import ServerConnection, broadcast, serve

from schemas.topology import EVENTS

WELCOME = '{"type": "bridge:welcome"}'
PONG = '{"type": "bridge:pong"}'

#: Connections that were welcomed, as in the ``websockets`` broadcasting guide.
CLIENTS: set[ServerConnection] = set()


async def handler(connection: ServerConnection) -> None:
    """Welcome the connection, add it to the audience, answer what it sends."""
    await connection.send(WELCOME)
    CLIENTS.add(connection)
    try:
        async for _message in connection:
            await connection.send(PONG)
    finally:
        CLIENTS.discard(connection)


async def on_message(message: AbstractIncomingMessage) -> None:
    """Send the message body, as it is, to every client, then acknowledge it."""
    broadcast(CLIENTS, message.body, text=True)
    await message.ack()


async def open_queue(channel: aio_pika.abc.AbstractChannel) -> AbstractQueue:
    """A server-named queue of our own, bound to every event."""
    exchange = await channel.declare_exchange(
        EVENTS.name, aio_pika.ExchangeType(EVENTS.type), durable=EVENTS.durable
    )
    queue = await channel.declare_queue("", exclusive=True, auto_delete=True)
    await queue.bind(exchange, "#")
    return queue


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def run(host: str, port: int, broker: str, compression: str | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connection = await aio_pika.connect(broker, timeout=10)
    try:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=256)
        queue = await open_queue(channel)
        async with serve(handler, host, port, compression=compression) as server:
            await queue.consume(on_message)
            bound = server.sockets[0].getsockname()[1]
            print(
                f"baseline: websockets {websockets.__version__} broadcast() on "
                f"ws://{host}:{bound}/ws, compression={compression}, "
                f"broker {without_password(broker)}",
                flush=True,
            )
            await stop.wait()
    finally:
        await asyncio.wait_for(connection.close(), timeout=5)


def server_parser(doc: str) -> argparse.ArgumentParser:
    """The options of every baseline server: where it listens, which broker it reads."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=4000, help="0: any free port")
    parser.add_argument(
        "--broker", default="amqp://guest:guest@127.0.0.1:5672/", help="RabbitMQ, with its vhost"
    )
    return parser


def main() -> None:
    parser = server_parser(__doc__)
    parser.add_argument(
        "--compression",
        choices=("none", "deflate"),
        default="none",
        help="accept permessage-deflate ('deflate' is websockets' default)",
    )
    args = parser.parse_args()
    compression = None if args.compression == "none" else args.compression
    asyncio.run(run(args.host, args.port, args.broker, compression))


if __name__ == "__main__":
    main()
