"""The producer for the Channels baseline: ``group_send("all", ...)`` per event.

As Channels documents for sending to consumers from outside them (a view, a
Celery task), it takes the project's channel layer with ``get_channel_layer()``
and calls ``group_send("all", {"type": "event.message", "text": event})``.

The runs come on standard input and it keeps their schedule itself (``feed.py``),
sending one event after another, in order; each event's ``sentAt`` is stamped
right before its ``group_send()``. It prints ``ready`` once the layer answered.

    printf '{"run": "r", "rate": 10, "duration": 1, "pad": 8}\\n' | \\
        python bench/baselines/channels_publisher.py --redis redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import django
from channels.layers import get_channel_layer

# The Channels project beside this file, as ``serve.py`` runs it.
sys.path.insert(0, str(Path(__file__).resolve().parent / "channels_server"))
from bench_channels.consumers import GROUP
from feed import event_body, feed, stamp

__all__ = ["main", "run"]


async def run() -> int:
    layer = get_channel_layer()
    assert layer is not None, "CHANNEL_LAYERS is not configured"
    # The layer connects on first use: a send to an empty group connects it first.
    await layer.group_send("nobody", {"type": "event.message", "text": "{}"})

    async def send(body: bytes) -> None:
        await layer.group_send(GROUP, {"type": "event.message", "text": stamp(body).decode()})

    return await feed(event_body, send, ordered=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--prefix", default="asgi", help="channels_redis key prefix")
    args = parser.parse_args()
    os.environ["BENCH_CHANNELS_REDIS"] = args.redis
    os.environ["BENCH_CHANNELS_PREFIX"] = args.prefix
    os.environ["DJANGO_SETTINGS_MODULE"] = "bench_channels.settings"
    django.setup()
    asyncio.run(run())


if __name__ == "__main__":
    main()
