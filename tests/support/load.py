"""Load for the fault tests: a bridge process, a steady publisher, clients that count.

Every event carries its run, a sequence number and its send time, so that a
test counts what was sent, delivered, lost and duplicated instead of assuming.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractRobustConnection
from websockets.asyncio.client import ClientConnection, connect

from schemas import DASHBOARD, Channel, Event
from schemas.topology import EVENTS, routing_key
from tests.support.bridges import EVENT_BRIDGE, SECRET

#: How long a publish may wait for RabbitMQ's confirm before it is tried again.
CONFIRM_TIMEOUT = 5.0
#: How long opening a connection may take, and how many a publish may try.
CONNECT_TIMEOUT = 5.0
ATTEMPTS = 20
#: The bridges' environment: ``--catalog api_rest.events``, the example's, is importable.
SERVE_ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2] / "example")}


def event(run: str, seq: int, channels: int = 0) -> Event:
    """A dashboard update that names its run and number, stamped when it leaves; with
    ``channels``, an update of order ``seq % channels`` to its channel ``order:<n>``."""
    data = {"run": run, "seq": seq, "sentAt": time.time()}
    if channels:
        audience = Channel(channel=f"order:{seq % channels}")
        return Event.untyped("order:updated", data, id=f"{run}-{seq}", audience=audience)
    # Written as any producer writes it; a bridge with the example's catalog reads it typed.
    return Event.untyped(DASHBOARD, data, id=f"{run}-{seq}")


@dataclass
class Tally:
    """What one client saw of one run."""

    expected: int
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    _waiters: list[tuple[int, asyncio.Future[None]]] = field(default_factory=list)

    def add(self, seq: int, latency: float) -> None:
        self.seqs.append(seq)
        self.latencies.append(latency)
        for count, future in self._waiters:
            if len(self.seqs) >= count and not future.done():
                future.set_result(None)

    async def received(self, count: int | None = None, timeout: float = 30) -> None:
        """Wait until ``count`` events (all expected ones by default) have arrived."""
        count = self.expected if count is None else count
        if len(self.seqs) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((count, future))
        await asyncio.wait_for(future, timeout)

    def lost(self, sent: int) -> int:
        return sent - len(set(self.seqs))

    def duplicated(self) -> int:
        return len(self.seqs) - len(set(self.seqs))

    def in_order(self) -> bool:
        return self.seqs == sorted(self.seqs)


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


class BridgeProcess:
    """``event-bridge serve`` on RabbitMQ, its log in a file so it never blocks on a pipe."""

    def __init__(self, amqp_url: str, instance: str, workdir: Path, *args: str) -> None:
        self.instance = instance
        self.log = workdir / f"{instance}.log"
        self._counts: dict[str, int] = {}
        self._waiters: list[tuple[str, int, asyncio.Future[None]]] = []
        self._reader: asyncio.Task[None] | None = None
        self.args = [
            EVENT_BRIDGE, "serve", "--port", "0", "--jwt-secret", SECRET, "--allow-anonymous",
            "--broker", amqp_url, "--instance", instance, "--state-dir", str(workdir / instance),
            "--max-connections-per-ip", "0",  # thousands of clients from this machine
            *args,
        ]  # fmt: skip
        self.proc: asyncio.subprocess.Process | None = None
        self.port = 0

    async def __aenter__(self) -> BridgeProcess:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=SERVE_ENV
        )
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self._reader = asyncio.create_task(self._read(self.proc.stderr))
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 15)).decode()
        assert "event-bridge: instance" in line, self.log.read_text()[-2000:]
        self.port = int(line.split("ws://127.0.0.1:")[1].split("/")[0])
        return self

    async def __aexit__(self, *_exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 15)
        if self._reader is not None:
            await asyncio.wait_for(self._reader, 5)

    async def _read(self, stream: asyncio.StreamReader) -> None:
        # Always drained, so a chatty bridge never blocks on a full pipe.
        with self.log.open("a") as log:
            while line := (await stream.readline()).decode():
                log.write(line)
                for text in self._counts:
                    self._counts[text] += text in line
                for text, count, future in self._waiters:
                    if self._counts[text] >= count and not future.done():
                        future.set_result(None)

    def count(self, text: str) -> int:
        """Log lines that contained ``text`` since this was first asked about ``text``."""
        return self._counts.setdefault(text, 0)

    async def counted(self, text: str, count: int, timeout: float) -> None:
        """Wait until ``count`` log lines have contained ``text``."""
        if self.count(text) >= count:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (text, count, future)
        self._waiters.append(waiter)
        try:
            await asyncio.wait_for(future, timeout)
        finally:
            self._waiters.remove(waiter)

    async def logged(self, text: str, timeout: float) -> None:
        """Wait for the next log line containing ``text``."""
        await self.counted(text, self.count(text) + 1, timeout)

    def kill(self) -> None:
        """SIGKILL: no goodbye to clients or RabbitMQ."""
        assert self.proc is not None
        self.proc.kill()

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid


@contextlib.asynccontextmanager
async def counting(port: int, run: str, tally: Tally) -> AsyncIterator[asyncio.Task[None]]:
    """A client that records every event of ``run`` it receives, until cancelled."""
    async with connect(f"ws://127.0.0.1:{port}/ws", max_queue=None) as ws:
        assert json.loads(await ws.recv())["type"] == "bridge:welcome"
        await ws.send('{"op": "ping"}')  # no resume: live events flow at once
        task = asyncio.create_task(_record(ws, run.encode(), tally))
        try:
            yield task
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _record(ws: ClientConnection, run: bytes, tally: Tally) -> None:
    async for message in ws:
        received = time.time()
        raw = message.encode() if isinstance(message, str) else message
        for line in raw.split(b"\n"):
            if run not in line:
                continue
            data = json.loads(line)["data"]
            tally.add(data["seq"], received - data["sentAt"])


class Publisher:
    """Publishes with confirms; reconnects and publishes again what was not confirmed."""

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.reconnects = 0
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self._opening = asyncio.Lock()

    async def _open(self) -> AbstractExchange:
        async with self._opening:  # concurrent publishes share one connection
            return await self._reopen()

    async def _reopen(self) -> AbstractExchange:
        if self._exchange is None or self._channel is None or self._channel.is_closed:
            await self.close()
            self._connection = await aio_pika.connect(self.url)  # type: ignore[assignment]
            assert self._connection is not None
            self._channel = await self._connection.channel(publisher_confirms=True)
            self._exchange = await self._channel.declare_exchange(
                EVENTS.name, aio_pika.ExchangeType.TOPIC, durable=True
            )
        return self._exchange

    async def send(self, body: bytes, key: str, message_id: str) -> None:
        """Publish until RabbitMQ confirms it (at least once: the bridge drops repeats)."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            message_id=message_id,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        for _ in range(ATTEMPTS):
            try:
                # Opening a new connection is what a retry waits on, for CONNECT_TIMEOUT at most.
                exchange = await asyncio.wait_for(self._open(), CONNECT_TIMEOUT)
                await exchange.publish(message, key, timeout=CONFIRM_TIMEOUT)
                return
            except (aio_pika.exceptions.AMQPError, ConnectionError, TimeoutError):
                self.reconnects += 1
                self._exchange = None
        raise AssertionError(f"{message_id} not confirmed after {ATTEMPTS} connections")

    async def steady(
        self,
        run: str,
        count: int,
        rate: float,
        poison: dict[int, bytes],
        inflight: int = 1,
        channels: int = 0,
    ) -> None:
        """Publish events 0 … count-1 of ``run`` at ``rate`` per second, each stamped as it
        leaves, with ``poison[n]`` (if any) just before event ``n``. Up to ``inflight``
        publishes await their confirms at once, still written in order; more than one
        may reorder events that had to be published again after a reconnection."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(inflight)
        pending: set[asyncio.Task[None]] = set()
        start = loop.time()
        for seq in range(count):
            delay = start + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)  # the schedule, not a wait for something
            if seq in poison:
                await self._start(
                    gate, pending, self.send(poison[seq], "dashboard", f"poison-{run}-{seq}")
                )
            ev = event(run, seq, channels)
            await self._start(gate, pending, self.send(ev.to_json(), routing_key(ev), ev.id))
        await asyncio.gather(*pending)

    @staticmethod
    async def _start(
        gate: asyncio.Semaphore,
        pending: set[asyncio.Task[None]],
        publish: Coroutine[Any, Any, None],
    ) -> None:
        # Each publish is its own task, started in order: they reach the channel in order.
        await gate.acquire()
        task = asyncio.create_task(publish)
        task.add_done_callback(lambda _task: gate.release())
        pending.add(task)
        task.add_done_callback(pending.discard)

    async def close(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
        self._connection = self._channel = self._exchange = None


def summary(name: str, sent: int, tallies: list[Tally]) -> str:
    """One line of counts for the test's output and docs/reliability.md."""
    delivered = sum(len(t.seqs) for t in tallies)
    lost = sum(t.lost(sent) for t in tallies)
    duplicated = sum(t.duplicated() for t in tallies)
    latencies = [x for t in tallies for x in t.latencies]
    worst = f", p99 {1000 * p99(latencies):.1f} ms" if latencies else ""
    return (
        f"{name}: sent {sent} x {len(tallies)} clients, delivered {delivered}, "
        f"lost {lost}, duplicated {duplicated}{worst}"
    )


__all__ = [
    "BridgeProcess",
    "Publisher",
    "Tally",
    "counting",
    "event",
    "p99",
    "summary",
]
