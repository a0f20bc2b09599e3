"""The floor for bench/delivery.py: the least a Python server does to deliver an event.

For every message from RabbitMQ it builds one WebSocket frame and calls
``transport.write(frame)`` for every connected client, in one loop, and does
nothing else: the consumer takes messages without acknowledgements, nothing
is routed, validated, recorded or coalesced, and a client that stops reading
is never noticed. No real server should be this bare; its CPU per delivered
event is what the bridge's is compared with, to show what its guarantees cost.
With ``--durable`` it consumes, as the bridge does, from a quorum queue of its
own and acknowledges each message once written: the same floor, with the
broker doing for it what it does for the bridge.

Connections are accepted by the ``websockets`` asyncio server, as in
``baseline_broadcast.py``: each gets ``{"type": "bridge:welcome"}`` and a
``{"type": "bridge:pong"}`` for every message it sends, so the benchmark's
clients treat every server alike. It prints one line naming
``ws://HOST:PORT/ws`` once it is ready, and stops on SIGTERM or SIGINT.

    python bench/baseline_floor.py --port 0 --broker amqp://guest:guest@127.0.0.1:5672/
"""

from __future__ import annotations

import asyncio
import signal

import aio_pika
import websockets
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from baseline_broadcast import PONG, WELCOME, open_queue, server_parser, without_password
from websockets.asyncio.server import ServerConnection, serve
from websockets.frames import Frame, Opcode

from schemas.topology import EVENTS, instance_queue

#: The transports of welcomed connections: writing to them is all delivery does.
TRANSPORTS: dict[ServerConnection, asyncio.Transport] = {}


async def handler(connection: ServerConnection) -> None:
    """Welcome the connection, add its transport to the audience, answer what it sends."""
    await connection.send(WELCOME)
    TRANSPORTS[connection] = connection.transport
    try:
        async for _message in connection:
            await connection.send(PONG)
    finally:
        del TRANSPORTS[connection]


def deliver(message: AbstractIncomingMessage) -> None:
    """One frame, written to every transport."""
    frame = Frame(Opcode.TEXT, message.body).serialize(mask=False)
    for transport in TRANSPORTS.values():
        transport.write(frame)


async def on_message(message: AbstractIncomingMessage) -> None:
    deliver(message)


async def on_durable_message(message: AbstractIncomingMessage) -> None:
    deliver(message)
    await message.ack()


async def open_durable_queue(channel: aio_pika.abc.AbstractChannel) -> AbstractQueue:
    """The bridge's kind of queue (``schemas.topology.instance_queue``), named for the floor."""
    spec = instance_queue("floor")
    exchange = await channel.declare_exchange(
        EVENTS.name, aio_pika.ExchangeType(EVENTS.type), durable=EVENTS.durable
    )
    queue = await channel.declare_queue(spec.name, durable=True, arguments=dict(spec.arguments))
    await queue.purge()
    await queue.bind(exchange, "#")
    return queue


async def run(host: str, port: int, broker: str, *, durable: bool = False) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    connection = await aio_pika.connect(broker, timeout=10)
    try:
        channel = await connection.channel()
        if durable:
            await channel.set_qos(prefetch_count=256)
            queue = await open_durable_queue(channel)
            await queue.consume(on_durable_message)
        else:
            queue = await open_queue(channel)
            await queue.consume(on_message, no_ack=True)
        async with serve(handler, host, port, compression=None) as server:
            bound = server.sockets[0].getsockname()[1]
            print(
                f"floor: websockets {websockets.__version__} handshake, one prebuilt frame "
                f"written to every transport, "
                f"{'a quorum queue, acks' if durable else 'no acks'}, on ws://{host}:{bound}/ws, "
                f"broker {without_password(broker)}",
                flush=True,
            )
            await stop.wait()
    finally:
        await asyncio.wait_for(connection.close(), timeout=5)


def main() -> None:
    parser = server_parser(__doc__)
    parser.add_argument(
        "--durable", action="store_true", help="a quorum queue and an ack per message"
    )
    args = parser.parse_args()
    asyncio.run(run(args.host, args.port, args.broker, durable=args.durable))


if __name__ == "__main__":
    main()
