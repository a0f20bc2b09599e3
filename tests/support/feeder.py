"""Publish a run of test events from a process of its own.

A test process that also reads a thousand sockets would stamp ``sentAt``
long before its publish leaves; alone, this one writes each event as soon as
it is stamped. Exits 0 once RabbitMQ confirmed every event.

    python -m tests.support.feeder AMQP_URL RUN COUNT RATE [CHANNELS]

With CHANNELS, event n goes to channel ``order:<n % CHANNELS>``.
"""

from __future__ import annotations

import asyncio
import sys

from tests.support.load import SERVE_ENV, Publisher


async def feed(amqp_url: str, run: str, count: int, rate: float, channels: int = 0) -> None:
    publisher = Publisher(amqp_url)
    try:
        await publisher.steady(run, count, rate, {}, inflight=16, channels=channels)
    finally:
        await publisher.close()


async def started(
    amqp_url: str, run: str, count: int, rate: float, channels: int = 0
) -> asyncio.subprocess.Process:
    """Start publishing events 0 … count-1 of ``run`` at ``rate`` per second (to
    ``channels`` channels, if given)."""
    args = [amqp_url, run, str(count), str(rate), str(channels)]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.feeder", *args, env=SERVE_ENV
    )


async def finished(feeder: asyncio.subprocess.Process, timeout: float) -> None:
    """Wait for the feeder to have every event confirmed."""
    code = await asyncio.wait_for(feeder.wait(), timeout)
    assert code == 0, f"the feeder exited with {code}"


if __name__ == "__main__":
    url, run, count, rate, *channels = sys.argv[1:]
    asyncio.run(feed(url, run, int(count), float(rate), int(channels[0]) if channels else 0))
