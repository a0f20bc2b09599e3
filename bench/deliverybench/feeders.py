"""The feeders: the processes that send each run's events, and the broker's exchange."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from argparse import Namespace
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import aio_pika
from aio_pika.abc import AbstractChannel
from feed import SEND_TIMEOUT as FEED_SEND_TIMEOUT
from feed import event_body as placeholder_body
from feed import stamp

from schemas.topology import EVENTS

from .constants import BASELINES, CONFIRM_TIMEOUT, SERVER_START_TIMEOUT, SERVER_STOP_TIMEOUT
from .progress import progress
from .servers import Running, ServerSpec, log_tail, stop_process


@dataclass(frozen=True)
class Published:
    attempted: int
    failed: int
    #: Events per second actually sent (and, for AMQP, confirmed), from the first
    #: event's due time to the last one's send.
    rate: float
    #: The longest a publish waited for RabbitMQ's confirm, in seconds (AMQP only).
    slowest_confirm: float = 0.0


def event_body(run: str, seq: int, pad: int) -> bytes:
    """A bare dashboard event, stamped now; clients find ``run``, ``seq`` and ``sentAt`` in it."""
    return stamp(placeholder_body(run, seq, pad))


class Feeder:
    """A feeder process on the generator's core that keeps each run's schedule itself.

    ``amqp_feeder.py`` (the bridge, the baseline), ``http_feeder.py`` (NestJS),
    ``socketio_emitter.py``, ``channels_publisher.py``: this process only tells it
    the run, rate and duration (``bench/baselines/feed.py``) and waits for its
    answer. Each event's ``sentAt`` is stamped there, right before its bytes are
    written, in a loop that does nothing else: this process's loop, busy reading
    up to 5,000 sockets, neither delays nor bunches the sends, nor counts in the
    latency. It inherits this process's core; its CPU counts as the load generator's.
    """

    def __init__(self, proc: asyncio.subprocess.Process, pad: int, *, confirms: bool) -> None:
        self._proc = proc
        self._pad = pad
        self._confirms = confirms
        self.pids = (proc.pid,)

    async def run(self, run: str, rate: float, duration: float) -> Published:
        assert self._proc.stdin is not None
        assert self._proc.stdout is not None
        count = max(1, round(rate * duration))
        if self._proc.returncode is not None:
            return Published(count, count, 0.0)
        job = {"run": run, "rate": rate, "duration": duration, "pad": self._pad}
        self._proc.stdin.write(json.dumps(job).encode() + b"\n")
        await self._proc.stdin.drain()
        longest = count / rate + FEED_SEND_TIMEOUT + CONFIRM_TIMEOUT
        line = await asyncio.wait_for(self._proc.stdout.readline(), longest)
        if not line:
            return Published(count, count, 0.0)
        answer = json.loads(line)
        return Published(
            int(answer["attempted"]),
            int(answer["failed"]),
            float(answer["rate"]),
            float(answer["slowest"]) if self._confirms else 0.0,
        )


@contextlib.asynccontextmanager
async def feeder_process(
    command: Sequence[str], pad: int, log_path: Path, *, confirms: bool = False
) -> AsyncIterator[Feeder]:
    """``confirms``: its sends wait for RabbitMQ's confirms (``Published.slowest_confirm``)."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log
        )
        try:
            assert proc.stdout is not None
            try:
                ready = await asyncio.wait_for(proc.stdout.readline(), SERVER_START_TIMEOUT)
            except TimeoutError:
                ready = b""
            if ready.strip() != b"ready":
                raise RuntimeError(f"feeder did not start: {ready!r}\n{log_tail(log_path)}")
            yield Feeder(proc, pad, confirms=confirms)
            assert proc.stdin is not None
            proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                done = await asyncio.wait_for(proc.stdout.readline(), SERVER_STOP_TIMEOUT)
                progress(f"  feeder: {done.decode(errors='replace').strip()}")
        finally:
            await stop_process(proc)


class Broker:
    """This process's own AMQP channel, for what is not publishing."""

    def __init__(self, channel: AbstractChannel) -> None:
        self._channel = channel

    async def delete_queue(self, name: str) -> None:
        """Delete a queue a stopped server left bound, so that it takes no more events."""
        await asyncio.wait_for(self._channel.queue_delete(name), CONFIRM_TIMEOUT)


@contextlib.asynccontextmanager
async def broker(url: str) -> AsyncIterator[Broker]:
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel()
        # The exchange the servers bind to, before any of them starts.
        await channel.declare_exchange(
            EVENTS.name, aio_pika.ExchangeType(EVENTS.type), durable=EVENTS.durable
        )
        yield Broker(channel)
    finally:
        await asyncio.wait_for(connection.close(), 5)


@contextlib.asynccontextmanager
async def feeder_for(
    spec: ServerSpec, server: Running, broker_url: str, args: Namespace, workdir: Path
) -> AsyncIterator[Feeder]:
    """``spec``'s feeder process, on this process's core (it inherits the affinity)."""
    command = {
        "amqp": (
            *(sys.executable, str(BASELINES / "amqp_feeder.py"), "--broker", broker_url),
            *("--audience", spec.audience),
        ),
        "http": (sys.executable, str(BASELINES / "http_feeder.py"), "--port", str(server.port)),
        "own": spec.feeder,
    }[spec.feed]
    log_path = workdir / f"{spec.name}-feeder.log"
    async with feeder_process(command, args.pad, log_path, confirms=spec.feed == "amqp") as feeder:
        cores = sorted(os.sched_getaffinity(feeder.pids[0]))
        progress(f"  feeder pid {feeder.pids[0]}, cores {cores}")
        yield feeder
