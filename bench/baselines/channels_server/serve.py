"""Baseline: Django Channels, served by Daphne, with the channels_redis layer.

One ``AsyncWebsocketConsumer`` (``bench_channels/consumers.py``) joins the
group ``all`` and forwards every group message as one text frame;
``bench/baselines/channels_publisher.py`` feeds it with ``group_send``. It
runs Daphne, the server Channels documents, in this process (as Daphne's own
``daphne.testing`` does) so that it can bind port 0 and, like
``bench/baseline_broadcast.py``, print one line naming ``ws://HOST:PORT/ws``
once it listens. Stops on SIGTERM or SIGINT.

    python bench/baselines/channels_server/serve.py --port 0 --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import os
import sys
from importlib.metadata import version
from pathlib import Path

# daphne.server installs Twisted's asyncio reactor: it comes before anything Twisted.
from daphne.endpoints import build_endpoint_description_strings
from daphne.server import Server
from twisted.internet import reactor

__all__ = ["main"]

#: How often to look whether Daphne is listening yet, in seconds.
POLL = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4000, help="0: any free port")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="asgi", help="channels_redis key prefix")
    args = parser.parse_args()
    os.environ["BENCH_CHANNELS_REDIS"] = args.redis
    os.environ["BENCH_CHANNELS_PREFIX"] = args.prefix
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_channels.settings"
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    serve(args.host, args.port, args.redis)


def serve(host: str, port: int, redis: str) -> None:
    # Importing the ASGI module sets Django up: only once main() has set its environment.
    from bench_channels.asgi import application  # noqa: PLC0415

    server = Server(
        application=application,
        endpoints=build_endpoint_description_strings(host=host, port=port),
        signal_handlers=True,
    )

    def announce() -> None:
        if not server.listening_addresses:
            reactor.callLater(POLL, announce)
            return
        bound = server.listening_addresses[0][1]
        print(
            f"channels: channels {version('channels')} AsyncWebsocketConsumer, "
            f"daphne {version('daphne')} on ws://{host}:{bound}/ws, "
            f"channels_redis {version('channels-redis')} at {redis}",
            flush=True,
        )

    reactor.callLater(POLL, announce)
    server.run()


if __name__ == "__main__":
    main()
