"""The load generator's clients: plain WebSocket, Server-Sent Events and socket.io,
recording each event."""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from sio_client import FrameReader, SioClient
from sio_client import connect as sio_connect
from websockets.frames import Frame, Opcode

from .constants import CONNECT_TIMEOUT
from .progress import progress

#: The benchmark's fields, in the order the publisher writes them.
_EVENT = re.compile(rb'"run":"([^"]*)","seq":(\d+),"sentAt":([0-9.eE+-]+)')
_PING_OP = Frame(Opcode.TEXT, b'{"op": "ping"}')


class Records:
    """What one client saw of the current run: ``(seq, latency)`` per event, and frames."""

    def begin(self, run: bytes) -> None:
        """Start recording the events of ``run``; forget anything recorded before."""
        self.run = run
        self.records: list[tuple[int, float]] = []
        self.frames = 0
        self.last_receive = 0.0

    def _record(self, event: re.Match[bytes] | None, now: float) -> bool:
        """Record ``event`` if it is one of this run's; false if it is no event at all."""
        if event is None:
            return False
        if event[1] == self.run:
            self.records.append((int(event[2]), now - float(event[3])))
        return True


class Client(Records, FrameReader):
    """A plain WebSocket client that does only what the benchmark needs, cheaply.

    :class:`FrameReader` (``bench/baselines/sio_client.py``) parses the frames and,
    with ``deflate=True``, offers permessage-deflate as browsers do and inflates.
    For each event of the current run it records ``(seq, latency)``, latency from the
    kernel's receive time of the read that completed the frame. A batched frame holds
    several events separated by ``\\n``; one receive time applies to every event
    that a read completed.
    """

    def __init__(self, port: int, path: str, *, deflate: bool = False) -> None:
        super().__init__(port, path, deflate=deflate)
        self.begin(b"")
        #: The bridge instance its welcome named: which worker of ``serve --workers`` took it.
        self.instance: str | None = None

    @property
    def welcomed(self) -> asyncio.Future[None]:
        return self.ready

    def _text(self, payload: bytes | bytearray, now: float) -> None:
        self.frames += 1
        self.last_receive = now
        for message in payload.split(b"\n"):
            self._message(message, now)

    def _message(self, message: bytes | bytearray, now: float) -> None:
        if not self._record(_EVENT.search(message), now):
            self._control(message)

    def _control(self, message: bytes | bytearray) -> None:
        parsed = json.loads(message)
        kind = str(parsed.get("type", ""))
        if kind == "bridge:welcome" and not self.ready.done():
            self.instance = parsed.get("instance")
            # The bridge holds live events until a client's first message.
            self._send(_PING_OP)
            self.ready.set_result(None)


class StreamClient(Client):
    """A client of the bridge's ``/sse``: the same records, from ``text/event-stream``.

    It reuses the socket, the kernel receive times and the buffer of
    :class:`Client`; only the request and the parsing differ. Each message's
    ``data:`` lines are joined with "\n", as ``EventSource`` does, so a batch reads
    as a batched WebSocket frame does.
    """

    def __init__(self, port: int, path: str, *, deflate: bool = False) -> None:
        super().__init__(port, path)
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {self._host}:{port}\r\nAccept: text/event-stream\r\n\r\n"
        ).encode()

    def _received(self, size: int, now: float) -> None:
        buffer = self._buffer
        pos = 0
        if not self._upgraded:
            end = buffer.find(b"\r\n\r\n", 0, size)
            if end < 0:
                self._filled = size
                return
            if not buffer.startswith(b"HTTP/1.1 200"):
                status = bytes(buffer[: buffer.find(b"\r\n")])
                self._fail(f"stream refused: {status!r}")
                return
            self._upgraded, pos = True, end + 4
        while (end := buffer.find(b"\n\n", pos, size)) >= 0:
            lines = bytes(buffer[pos:end]).split(b"\n")
            data = [line[6:] for line in lines if line.startswith(b"data: ")]
            if data:  # not a comment or a retry
                self._text(b"\n".join(data), now)
            pos = end + 2
        self._filled = size - pos
        if pos and self._filled:
            buffer[: self._filled] = buffer[pos:size]

    def _control(self, message: bytes | bytearray) -> None:
        parsed = json.loads(message)
        kind = str(parsed.get("type", ""))
        if kind == "bridge:welcome" and not self.ready.done():
            self.ready.set_result(None)  # a stream is not held: nothing to send
        elif kind == "bridge:close":
            self.close_code = int(parsed["code"])

    async def close(self) -> None:
        self.abort()  # a stream ends when its client goes


async def connect_clients(
    port: int,
    count: int,
    path: str,
    concurrency: int,
    *,
    deflate: bool = False,
    kind: type[Client] = Client,
) -> list[Client]:
    """Connect ``count`` clients, ``concurrency`` handshakes at a time; drop those that fail.

    ``deflate``: they offer permessage-deflate, as browsers do. ``kind``:
    :class:`StreamClient` for ``/sse``.
    """
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()

    async def one() -> Client | None:
        async with gate:
            client = kind(port, path, deflate=deflate)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await client.open()
                    await client.welcomed
            except (OSError, TimeoutError) as exc:
                failures[str(exc) or type(exc).__name__] += 1
                client.abort()
                return None
            return client

    return await _all_that_connect(count, one, failures)


#: The same fields as ``_EVENT``, in what python-socketio and NestJS re-encode.
_SIO_EVENT = re.compile(rb'"run":\s*"([^"]*)",\s*"seq":\s*(\d+),\s*"sentAt":\s*([0-9.eE+-]+)')


class SioRecorder(Records):
    """What ``Client`` records, for a socket.io client (``bench/baselines/sio_client.py``).

    socket.io sends one event per frame, so ``frames`` counts the events of any run.
    """

    def __init__(self) -> None:
        self.sio: SioClient | None = None
        self.begin(b"")

    def on_event(self, data: bytes | bytearray, now: float) -> None:
        self.frames += 1
        self.last_receive = now
        self._record(_SIO_EVENT.search(data), now)

    @property
    def lost(self) -> asyncio.Future[None]:
        assert self.sio is not None
        return self.sio.lost

    @property
    def is_open(self) -> bool:
        return self.sio is not None and self.sio.is_open

    @property
    def compressed(self) -> bool:
        return self.sio is not None and self.sio.compressed

    @property
    def close_code(self) -> int | None:
        return None if self.sio is None else self.sio.close_code

    async def close(self) -> None:
        if self.sio is not None:
            await self.sio.close()


AnyClient = Client | SioRecorder
C = TypeVar("C", Client, SioRecorder)


async def connect_sio_clients(
    port: int, count: int, namespace: str, event: str, concurrency: int, *, deflate: bool = False
) -> list[SioRecorder]:
    """Connect ``count`` socket.io clients to ``namespace``; drop those that fail."""
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()

    async def one() -> SioRecorder | None:
        async with gate:
            recorder = SioRecorder()
            try:
                recorder.sio = await sio_connect(
                    port,
                    recorder.on_event,
                    namespace=namespace,
                    event=event,
                    deflate=deflate,
                    connect_timeout=CONNECT_TIMEOUT,
                )
            except (OSError, TimeoutError) as exc:
                failures[str(exc) or type(exc).__name__] += 1
                return None
            return recorder

    return await _all_that_connect(count, one, failures)


async def _all_that_connect(
    count: int, one: Callable[[], Awaitable[C | None]], failures: Counter[str]
) -> list[C]:
    """``count`` attempts of ``one`` at once; those that failed were counted in ``failures``."""
    clients = [c for c in await asyncio.gather(*(one() for _ in range(count))) if c is not None]
    if failures:
        progress(f"  {count - len(clients)} of {count} clients could not connect: {dict(failures)}")
    if not clients:
        raise RuntimeError("no client could connect")
    return clients


async def close_clients(clients: Sequence[AnyClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients))
