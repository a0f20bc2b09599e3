"""A thousand cheap WebSocket clients for the fault tests, on one event loop.

A ``websockets`` client task per connection costs more than the bridge spends
on it, so that one test process could not follow 1,000 clients at 200 events/s.
Each :class:`Watcher` is a bare :class:`asyncio.Protocol` around the library's
Sans-I/O :class:`~websockets.client.ClientProtocol` (the handshake, framing,
pings and closes stay the library's), and reads from each frame only the
number and send time of the test's events, with a regular expression. It
counts what arrived as ``/client.js`` would show it: duplicates (by id)
dropped, the rest in the order received. It can reconnect elsewhere and
resume after the last event it saw, as ``/client.js`` does.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import random
import re
import time
from collections.abc import Iterator

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

__all__ = ["Fleet", "Watcher"]

#: How long a connection's handshake and welcome may take.
OPEN_TIMEOUT = 30.0
#: The longest delay before /client.js's first reconnection, in seconds.
FIRST_RETRY = 0.5


class Watcher(asyncio.Protocol):
    """One client: records the ``seq`` of every event of its run it is shown."""

    def __init__(self, fleet: Fleet) -> None:
        self.fleet = fleet
        self.seqs = array.array("q")
        self.latencies = array.array("d")
        self.duplicates = 0
        self.resets = 0
        self.reconnects = 0
        #: When its latest connection was welcomed (time.monotonic()).
        self.welcomed = 0.0
        self.closed: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._seen: set[int] = set()
        self._welcomed: asyncio.Future[None] | None = None
        self._protocol: ClientProtocol | None = None
        self._transport: asyncio.Transport | None = None
        self._first_message = b'{"op": "ping"}'
        #: How many of the fleet's marks it has passed.
        self._passed = 0

    # Connecting

    async def open(self, port: int, *, resume: bool = False) -> None:
        """Connect to ``port``, then resume after the last event seen, or start live."""
        loop = asyncio.get_running_loop()
        self._welcomed = loop.create_future()
        if resume:
            last = self.seqs[-1] if self.seqs else None
            after = "null" if last is None else f'"{self.fleet.run}-{last}"'
            self._first_message = f'{{"op": "resume", "after": {after}}}'.encode()
        self._protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}{self.fleet.path}"), max_size=None
        )
        await loop.create_connection(lambda: self, "127.0.0.1", port)
        await asyncio.wait_for(self._welcomed, OPEN_TIMEOUT)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        assert self._protocol is not None
        self._transport = transport
        self._protocol.send_request(self._protocol.connect())
        self._write()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._welcomed is not None and not self._welcomed.done():
            self._welcomed.set_exception(ConnectionError(f"closed before the welcome: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None if self._protocol is None else self._protocol.close_code)
        self.fleet.lost(self)

    # Reading

    def data_received(self, data: bytes) -> None:
        received = time.time()
        assert self._protocol is not None
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
            if isinstance(event, Response):
                continue
            if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                self._read(bytes(event.data), received)
        self._write()

    def _read(self, payload: bytes, received: float) -> None:
        if self._welcomed is not None and not self._welcomed.done():
            if b'"bridge:welcome"' in payload:
                self.welcomed = time.monotonic()
                self._welcomed.set_result(None)
                self._send(self._first_message)
            return
        if b'"bridge:reset"' in payload:
            self.resets += 1
        for seq, sent_at in self.fleet.pattern.findall(payload):
            number = int(seq)
            if number in self._seen:
                self.duplicates += 1
                continue
            self._seen.add(number)
            self.seqs.append(number)
            self.latencies.append(received - float(sent_at))
        marks = self.fleet.marks
        while self._passed < len(marks) and len(self._seen) >= marks[self._passed]:
            self.fleet.passed(self._passed)
            self._passed += 1

    # Writing

    def _send(self, text: bytes) -> None:
        assert self._protocol is not None
        self._protocol.send_text(text)
        self._write()

    def _write(self) -> None:
        if self._protocol is None or self._transport is None:
            return
        for data in self._protocol.data_to_send():
            if data:
                self._transport.write(data)
            else:
                self._transport.close()

    def stop_reading(self) -> None:
        """Stop reading the socket, as a frozen tab would."""
        assert self._transport is not None
        self._transport.pause_reading()

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    # What it saw

    @property
    def done(self) -> bool:
        """Whether it has seen every event it expects."""
        return self._passed == len(self.fleet.marks)

    def in_order(self) -> bool:
        return all(a < b for a, b in zip(self.seqs, self.seqs[1:], strict=False))

    def lost(self, sent: int) -> int:
        return sent - len(self._seen)


class Fleet:
    """Clients of one test run: they wait together for the events of ``run``.

    ``marks`` are counts of distinct events to wait for, in increasing order,
    the last one all the events the clients expect.
    """

    def __init__(self, run: str, marks: tuple[int, ...], *, path: str = "/ws?batch=1") -> None:
        self.run = run
        self.marks = marks
        self.path = path
        # The test's events are dashboard updates whose data is {"run", "seq", "sentAt"}.
        self.pattern = re.compile(
            rb'"run":"' + re.escape(run.encode()) + rb'","seq":(\d+),"sentAt":([0-9.eE+-]+)'
        )
        self.watchers: list[Watcher] = []
        self.reconnect_to: int | None = None
        self._short_of = [0] * len(marks)
        self._reached = [asyncio.Event() for _ in marks]
        self._reconnecting: set[asyncio.Task[None]] = set()

    async def open(self, port: int, count: int, *, concurrency: int = 50) -> None:
        """Connect ``count`` more clients to ``port``, ``concurrency`` handshakes at a time."""
        gate = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with gate:
                watcher = Watcher(self)
                self.watchers.append(watcher)
                self._short_of = [short + 1 for short in self._short_of]
                for reached in self._reached:
                    reached.clear()
                await watcher.open(port)

        await asyncio.gather(*(one() for _ in range(count)))

    def passed(self, mark: int) -> None:
        self._short_of[mark] -= 1
        if self._short_of[mark] == 0:
            self._reached[mark].set()

    def lost(self, watcher: Watcher) -> None:
        # A client whose server went away reconnects to the other one, as /client.js does.
        if self.reconnect_to is not None and not watcher.done:
            watcher.reconnects += 1
            task = asyncio.create_task(self._reconnect(watcher, self.reconnect_to))
            self._reconnecting.add(task)
            task.add_done_callback(self._reconnecting.discard)

    @staticmethod
    async def _reconnect(watcher: Watcher, port: int) -> None:
        # /client.js's first retry comes after a random delay of up to 0.5 s (full
        # jitter): the client's own schedule, which spreads the reconnections.
        await asyncio.sleep(random.uniform(0, FIRST_RETRY))
        await watcher.open(port, resume=True)

    async def reached(self, count: int, timeout: float) -> None:
        """Wait until every client has seen ``count`` (one of the marks) distinct events."""
        await asyncio.wait_for(self._reached[self.marks.index(count)].wait(), timeout)

    def latencies(self) -> Iterator[float]:
        for watcher in self.watchers:
            yield from watcher.latencies

    async def close(self) -> None:
        self.reconnect_to = None
        for task in list(self._reconnecting):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, TimeoutError):
                await task
        for watcher in self.watchers:
            watcher.close()
