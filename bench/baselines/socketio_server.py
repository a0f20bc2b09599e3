"""Baseline: python-socketio's ``AsyncServer`` with its RabbitMQ manager.

What the python-socketio documentation describes for several processes: an
``AsyncServer`` (``async_mode="aiohttp"``, attached to an ``aiohttp``
application) whose client manager is ``socketio.AsyncAioPikaManager(url)``.
Events reach it from another process through a write-only manager on the same
exchange (``bench/baselines/socketio_emitter.py``); the server emits each one
to every client of the default namespace. No handlers, no authentication.

Clients connect to ``ws://HOST:PORT/socket.io/?EIO=4&transport=websocket``
(``bench/baselines/sio_client.py``). Like ``bench/baseline_broadcast.py`` it
prints one line naming ``ws://HOST:PORT/ws`` once it listens (the benchmark
reads the port from it), and stops on SIGTERM or SIGINT.

    python bench/baselines/socketio_server.py --port 0 --broker amqp://guest:guest@127.0.0.1:5672/
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from importlib.metadata import version

import socketio
from aiohttp import web

__all__ = ["main", "run"]

#: The manager's fanout exchange; the emitter must use the same one.
CHANNEL = "socketio"


async def run(host: str, port: int, broker: str, channel: str) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    manager = socketio.AsyncAioPikaManager(broker, channel=channel)
    sio = socketio.AsyncServer(async_mode="aiohttp", client_manager=manager)
    app = web.Application()
    sio.attach(app)
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = runner.addresses[0][1]
        print(
            f"socketio: python-socketio {version('python-socketio')} AsyncServer (aiohttp) on "
            f"ws://{host}:{bound}/ws (socket.io path /socket.io/), "
            f"AsyncAioPikaManager channel {channel!r}",
            flush=True,
        )
        await stop.wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000, help="0: any free port")
    parser.add_argument("--broker", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--channel", default=CHANNEL, help="the manager's exchange")
    args = parser.parse_args()
    asyncio.run(run(args.host, args.port, args.broker, args.channel))


if __name__ == "__main__":
    main()
