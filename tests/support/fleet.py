"""A thousand cheap WebSocket clients for the fault tests, on one event loop.

A ``websockets`` client task per connection costs more than the bridge spends
on it, so that one test process could not follow 1,000 clients at 200 events/s.
Each :class:`Watcher` is a bare non-blocking socket around the library's
Sans-I/O :class:`~websockets.client.ClientProtocol` (the handshake, framing,
pings and closes stay the library's), and reads from each frame only the
numbers of the test's events: a frame of the next events in order is counted
from its first and last number. One client in ten also times every event to
the kernel's receive timestamp (``SO_TIMESTAMPNS``), so that the test process
falling behind a thousand sockets does not count as the bridge's delay. It
counts what arrived as ``/client.js`` would show it: duplicates (by id)
dropped, the rest in the order received. It can reconnect elsewhere and
resume after the last event it saw, as ``/client.js`` does.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import itertools
import random
import re
import socket
import struct
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from tests.support.load import p99

__all__ = ["Fleet", "Watcher"]

#: How long a connection's handshake and welcome may take.
OPEN_TIMEOUT = 30.0
#: The longest delay before /client.js's first reconnection, in seconds.
FIRST_RETRY = 0.5
#: Python's socket module does not name it; 35 on Linux.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
#: One client in this many times every event it gets.
TIMED_EVERY = 10
_READ_SIZE = 256 * 1024
_ANCILLARY_SIZE = socket.CMSG_SPACE(struct.calcsize("qq"))


class Watcher:
    """One client: records the ``seq`` of every event of its run it is shown."""

    def __init__(self, fleet: Fleet, *, timed: bool, path: str) -> None:
        self.fleet = fleet
        #: Where it connects (and reconnects).
        self.path = path
        #: Whether it times the events it counts.
        self.timed = timed
        #: Distinct events of the run, in the order they arrived.
        self.seqs = array.array("q")
        #: Seconds from each one's ``sentAt`` to the kernel's receive timestamp (if timed).
        self.latencies = array.array("d")
        self.duplicates = 0
        self.resets = 0
        self.reconnects = 0
        #: When its latest connection was welcomed (time.monotonic()).
        self.welcomed = 0.0
        self._seen = bytearray(fleet.events)
        self._welcomed: asyncio.Future[None] | None = None
        self._protocol: ClientProtocol | None = None
        self._sock: socket.socket | None = None
        self._first_message = b'{"op": "ping"}'
        #: How many of the fleet's marks it has passed.
        self._passed = 0

    # Connecting

    async def open(self, port: int, *, resume: bool = False) -> None:
        """Connect to ``port``, then resume after the last event seen, or start live."""
        loop = asyncio.get_running_loop()
        self._welcomed = loop.create_future()
        path = self.path
        if resume:
            # As /client.js does: where to resume goes with the request, so no live
            # event can pass the replay however long the welcome takes to be read.
            last = self.seqs[-1] if self.seqs else None
            if last is None:
                self._first_message = b'{"op": "resume", "after": null}'
            else:
                path += ("&" if "?" in path else "?") + f"after={self.fleet.run}-{last}"
        self._protocol = ClientProtocol(parse_uri(f"ws://127.0.0.1:{port}{path}"), max_size=None)
        sock = socket.socket()
        sock.setblocking(False)
        # The kernel stamps each read: a busy test process does not count as latency.
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        await loop.sock_connect(sock, ("127.0.0.1", port))
        self._sock = sock
        self._protocol.send_request(self._protocol.connect())
        self._write()
        loop.add_reader(sock.fileno(), self._readable)
        await asyncio.wait_for(self._welcomed, OPEN_TIMEOUT)

    def _lost(self, reason: object) -> None:
        self.close()
        if self._welcomed is not None and not self._welcomed.done():
            self._welcomed.set_exception(ConnectionError(f"closed before the welcome: {reason}"))
        self.fleet.lost(self)

    def close(self) -> None:
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None

    # Reading

    def _readable(self) -> None:
        assert self._sock is not None
        assert self._protocol is not None
        try:
            data, ancillary, _flags, _address = self._sock.recvmsg(_READ_SIZE, _ANCILLARY_SIZE)
        except BlockingIOError:
            return
        except OSError as exc:
            self._lost(exc)
            return
        if not data:
            self._lost("end of stream")
            return
        received = time.time()
        for level, kind, value in ancillary:
            if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS):
                seconds, nanoseconds = struct.unpack("qq", value)
                received = seconds + nanoseconds / 1e9
        self._protocol.receive_data(data)
        for event in self._protocol.events_received():
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
        marker = self.fleet.marker
        count = payload.count(marker)
        if not count:
            return
        start, end = payload.find(marker) + len(marker), payload.rfind(marker) + len(marker)
        first, last = _number(payload, start), _number(payload, end)
        seen = self._seen
        if (
            self.fleet.sources == 1
            and last - first + 1 == count
            and not any(seen[first : last + 1])
        ):
            # The usual frame: the next events, in order, counted without a loop. Events
            # of several sources may come in any order between them: each is read.
            seen[first : last + 1] = b"\x01" * count
            self.seqs.extend(range(first, last + 1))
            if self.timed:
                found = self.fleet.pattern.findall(payload)
                self.latencies.extend(received - float(sent_at) for _, sent_at in found)
        else:
            self._read_one_by_one(payload, received)
        marks = self.fleet.marks
        while self._passed < len(marks) and len(self.seqs) >= marks[self._passed]:
            self.fleet.passed(self._passed)
            self._passed += 1

    def _read_one_by_one(self, payload: bytes, received: float) -> None:
        seen = self._seen
        for seq, sent_at in self.fleet.pattern.findall(payload):
            number = int(seq)
            if seen[number]:
                self.duplicates += 1
                continue
            seen[number] = 1
            self.seqs.append(number)
            if self.timed:
                self.latencies.append(received - float(sent_at))

    # Writing

    def _send(self, text: bytes) -> None:
        assert self._protocol is not None
        self._protocol.send_text(text)
        self._write()

    def _write(self) -> None:
        if self._protocol is None or self._sock is None:
            return
        for data in self._protocol.data_to_send():
            if data:
                # A handshake, a pong or a close: far less than an empty socket buffer.
                sent = self._sock.send(data)
                assert sent == len(data), f"sent {sent} of {len(data)} bytes"
            else:
                self._sock.shutdown(socket.SHUT_WR)

    def stop_reading(self) -> None:
        """Stop reading the socket, as a frozen tab would."""
        assert self._sock is not None
        asyncio.get_running_loop().remove_reader(self._sock.fileno())

    # What it saw

    @property
    def done(self) -> bool:
        """Whether it has seen every event it expects."""
        return self._passed == len(self.fleet.marks)

    def in_order(self) -> bool:
        """Whether it saw each source's events in the order they were sent, whatever
        came between them from the other sources."""
        sources = self.fleet.sources
        return all(
            a < b
            for source in range(sources)
            for a, b in itertools.pairwise(s for s in self.seqs if s % sources == source)
        )


def _number(data: bytes, start: int) -> int:
    end = start
    while data[end] in _DIGITS:
        end += 1
    return int(data[start:end])


_DIGITS = frozenset(b"0123456789")


class Fleet:
    """Clients of one test run: they wait together for the events of ``run``.

    ``marks`` are counts of distinct events to wait for, in increasing order,
    the last one all the events the clients expect. With several ``sources``,
    event ``n`` comes from source ``n % sources``, each in order. ``paths`` gives
    each client its own path, by its number; ``events``, the run's events when
    each client expects only some of them.
    """

    def __init__(
        self,
        run: str,
        marks: tuple[int, ...],
        *,
        path: str = "/ws?batch=1",
        sources: int = 1,
        paths: Callable[[int], str] | None = None,
        events: int | None = None,
    ) -> None:
        self.run = run
        self.paths = paths or (lambda _number: path)
        self.events = events or marks[-1]
        self.sources = sources
        self.marks = marks
        # The test's events are dashboard updates whose data is {"run", "seq", "sentAt"}.
        self.marker = b'"run":"' + run.encode() + b'","seq":'
        self.pattern = re.compile(re.escape(self.marker) + rb'(\d+),"sentAt":([0-9.eE+-]+)')
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
                # Every client gets the same frames at nearly the same time: a tenth of
                # them timing every event is the whole's latency, for a tenth of the work.
                number = len(self.watchers)
                watcher = Watcher(self, timed=number % TIMED_EVERY == 0, path=self.paths(number))
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

    def p99(self, block: int | None = None) -> list[float]:
        """The 99th percentile of the latency of every event at the timed clients, or
        one for each ``block`` consecutive events of the run."""
        blocks: dict[int, list[float]] = {}
        for watcher in self.watchers:
            if watcher.timed:
                for seq, latency in zip(watcher.seqs, watcher.latencies, strict=True):
                    blocks.setdefault(0 if block is None else seq // block, []).append(latency)
        return [p99(blocks[number]) for number in sorted(blocks)]

    def totals(self, sent: int) -> tuple[int, int, int]:
        """Events delivered, lost and shown twice (dropped by id), all clients together."""
        delivered = sum(len(w.seqs) for w in self.watchers)
        return (
            delivered,
            sent * len(self.watchers) - delivered,
            sum(w.duplicates for w in self.watchers),
        )

    async def close(self) -> None:
        self.reconnect_to = None
        for task in list(self._reconnecting):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, TimeoutError):
                await task
        for watcher in self.watchers:
            watcher.close()
