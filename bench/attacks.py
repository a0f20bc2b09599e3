"""The attacks of the security review (issue 14), replayed against a real ``event-bridge serve``.

One command, from the repository's root::

    uv run --frozen python bench/attacks.py

Each attack gets a fresh bridge (``--port 0``, a temporary ``--state-dir``, the
options the attack needs), whose VmRSS (``/proc/PID/status``) is read before the
attack and every 50 ms during it. It prints a Markdown table, one row per attack:
what the bridge did, RSS before, peak RSS during, and the bound the bridge is
meant to keep; then the total run time. Progress goes to standard error. It
takes about two minutes and needs nothing but this repository's environment:
the bridge runs on its embedded broker (``memory://``), on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import jwt
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode

EVENT_BRIDGE = str(Path(sys.executable).parent / "event-bridge")
HOST = "127.0.0.1"
#: Extra source addresses, so that attacks needing more than --max-connections-per-ip
#: (500) sockets are not stopped by that bound before they reach the one under test.
SOURCES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
SECRET = "attacks-bench-secret-that-is-long-enough"  # noqa: S105 - a throwaway test secret
API_KEY = "attacks-bench-api-key-0123456789"
#: Signs forged tokens: an attacker does not know the bridge's secret.
ATTACKER_KEY = "an-attacker-key-that-is-long-enough-too"
RSS_PERIOD = 0.05
#: The bridge's wait for a closing client's close frame before it cuts the socket.
CLOSE_TIMEOUT = 2.0
MIB = 1024 * 1024
#: Concurrent connects: the bridge listens with asyncio's default backlog (100); a
#: full SYN queue would add 1 s retransmits, not measure the bridge.
CONNECTS_AT_ONCE = 64

HANDSHAKE = (
    "GET /ws{query} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n{extra}\r\n"
)
HEALTH = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
EMIT = "/api/dashboard/emit-event"
SMALL_EVENT = b'{"type": "x:y", "data": {}}'


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# Tokens and frames


def token(ttl: float = 300, *, key: str = SECRET, headers: dict[str, object] | None = None) -> str:
    """An HS256 token with the claims the bridge reads (sub, roles, exp)."""
    claims = {"sub": "mallory", "roles": ["cliente"], "exp": int(time.time() + ttl)}
    return jwt.encode(claims, key, algorithm="HS256", headers=headers)


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client's frame, masked, as RFC 6455 wants it (the same as tests/test_abuse.py's)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 1 << 16:
        head += bytes([0x80 | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([0x80 | 127]) + length.to_bytes(8, "big")
    key = b"\x01\x02\x03\x04"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text_frame(message: dict[str, object]) -> bytes:
    return frame(Opcode.TEXT, json.dumps(message).encode())


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One frame the bridge sent (never masked): its opcode and payload."""
    head = await reader.readexactly(2)
    length = head[1] & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    elif length == 127:
        length = int.from_bytes(await reader.readexactly(8), "big")
    return head[0] & 0x0F, await reader.readexactly(length)


def close_code(payload: bytes) -> int:
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005


async def next_control(reader: asyncio.StreamReader) -> tuple[str, int | None]:
    """The next pong or close frame, skipping text: ("pong"|"close"|"cut", close code)."""
    try:
        while True:
            opcode, payload = await read_frame(reader)
            if opcode == Opcode.PONG:
                return "pong", None
            if opcode == Opcode.CLOSE:
                return "close", close_code(payload)
    except (asyncio.IncompleteReadError, ConnectionError):
        return "cut", None


async def until_closed(reader: asyncio.StreamReader) -> int | None:
    """Read until the bridge closes: its close code, or None if it cut without one."""
    while True:
        kind, code = await next_control(reader)
        if kind != "pong":
            return code


# Connections


async def connected(
    port: int, *, local: str | None = None, rcvbuf: int | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A TCP connection to the bridge, from ``local`` and with ``rcvbuf`` set before connect."""
    sock = socket.socket()
    try:
        if rcvbuf is not None:
            # Before connect, so that the window the bridge sees is small from the start.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if local is not None:
            sock.bind((local, 0))
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, (HOST, port))
    except BaseException:
        sock.close()
        raise
    return await asyncio.open_connection(sock=sock)


@dataclass
class Raw:
    """A WebSocket opened by hand: the websockets client refuses to send most attacks."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    status: int

    def abort(self) -> None:
        self.writer.transport.abort()

    def reading(self, on: bool) -> None:
        """Pause or resume reading: paused, the kernel's buffers fill and TCP stops the bridge."""
        transport = self.writer.transport
        assert isinstance(transport, asyncio.Transport)
        if on:
            transport.resume_reading()
        else:
            transport.pause_reading()


async def open_ws(
    port: int,
    *,
    query: str = "",
    host: str | None = None,
    extra: str = "",
    local: str | None = None,
    rcvbuf: int | None = None,
    early: bytes = b"",
) -> Raw:
    """Send a handshake (and ``early`` bytes in the same write), read the response head."""
    reader, writer = await connected(port, local=local, rcvbuf=rcvbuf)
    head = HANDSHAKE.format(query=query, host=host or f"{HOST}:{port}", extra=extra)
    writer.write(head.encode() + early)
    try:
        async with asyncio.timeout(10):
            response = await reader.readuntil(b"\r\n\r\n")
    except BaseException:
        writer.transport.abort()
        raise
    return Raw(reader, writer, int(response.split()[1]))


async def read_all(reader: asyncio.StreamReader, seconds: float) -> tuple[bytes, bool]:
    """Everything until EOF, and whether EOF came within ``seconds`` (a reset counts)."""
    data = bytearray()
    with contextlib.suppress(TimeoutError, ConnectionError):
        async with asyncio.timeout(seconds):
            while chunk := await reader.read(65536):
                data += chunk
            return bytes(data), True
    return bytes(data), reader.at_eof()


def statuses(raw: bytes) -> list[int]:
    """The status of each response in ``raw`` (bodies here never hold a status line)."""
    return [int(m) for m in re.findall(rb"HTTP/1\.1 (\d{3}) ", raw)]


def first_status(raw: bytes) -> str:
    found = statuses(raw)
    return str(found[0]) if found else "no response"


async def exchange(port: int, data: bytes, seconds: float = 10) -> tuple[bytes, bool]:
    """Write ``data`` on a new connection; what came back, and whether the bridge closed."""
    reader, writer = await connected(port)
    writer.write(data)
    try:
        return await read_all(reader, seconds)
    finally:
        writer.transport.abort()


async def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    *,
    content_type: str = "application/json",
) -> tuple[int, bytes]:
    """One request with ``Connection: close``: status (0 if none came) and body.

    Headers are encoded as Latin-1, so that a header may carry any byte.
    """
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body is not None:
        lines += [f"Content-Type: {content_type}", f"Content-Length: {len(body)}"]
    raw, _ = await exchange(
        port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
    )
    found = statuses(raw)
    return (found[0] if found else 0), raw.partition(b"\r\n\r\n")[2]


async def metrics(port: int) -> dict[str, float]:
    """The bridge's Prometheus series, each name summed over its labels."""
    _, body = await request(port, "GET", "/metrics", headers={"Authorization": f"Bearer {API_KEY}"})
    values: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            name = series.partition("{")[0]
            values[name] = values.get(name, 0) + float(value)
    return values


async def health_connections(port: int) -> int:
    _, body = await request(port, "GET", "/api/health")
    return int(json.loads(body)["connections"])


async def gather_limited(
    factories: Sequence[Callable[[], Awaitable[Raw]]],
) -> list[Raw | BaseException]:
    """Open connections CONNECTS_AT_ONCE at a time; failures are returned, not raised."""
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def one(factory: Callable[[], Awaitable[Raw]]) -> Raw:
        async with gate:
            return await factory()

    return await asyncio.gather(*(one(f) for f in factories), return_exceptions=True)


def opened(results: list[Raw | BaseException]) -> list[Raw]:
    return [r for r in results if isinstance(r, Raw)]


def counted(items: Sequence[object]) -> str:
    """``Counter`` as text: "101 x500, 429 x2,500", most common first."""
    return ", ".join(f"{k} x{n:,}" for k, n in Counter(items).most_common())


# The bridge under attack


class Bridge:
    """``event-bridge serve`` as a subprocess; its whole log (stderr) is kept."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.port = 0
        self.log = bytearray()
        self._grew = asyncio.Event()
        self._pumps: list[asyncio.Task[None]] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def started(self) -> None:
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        # The log is read from the start and for ever: a full pipe would block the bridge.
        self._pumps.append(asyncio.create_task(self._pump(self.proc.stderr, self.log)))
        line = (await asyncio.wait_for(self.proc.stdout.readline(), 15)).decode()
        match = re.search(r"ws://127\.0\.0\.1:(\d+)/ws", line)
        if match is None:
            raise RuntimeError(f"no port in the bridge's first line: {line!r}")
        self.port = int(match.group(1))
        self._pumps.append(asyncio.create_task(self._pump(self.proc.stdout, bytearray())))

    async def _pump(self, stream: asyncio.StreamReader, into: bytearray) -> None:
        while chunk := await stream.read(65536):
            into += chunk
            self._grew.set()

    async def logged(self, text: str, seconds: float = 15) -> str:
        """The first log line holding ``text``, once it is written."""
        needle = text.encode()
        async with asyncio.timeout(seconds):
            while (at := self.log.find(needle)) < 0:
                self._grew.clear()
                await self._grew.wait()
        start = self.log.rfind(b"\n", 0, at) + 1
        end = self.log.find(b"\n", at)
        return self.log[start : end if end >= 0 else len(self.log)].decode(errors="replace")

    def lines(self, text: str) -> list[str]:
        return [line for line in self.log.decode(errors="replace").split("\n") if text in line]

    def rss(self) -> int:
        return rss_bytes(self.pid)

    async def stop(self) -> None:
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 5)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        await asyncio.gather(*self._pumps, return_exceptions=True)


@contextlib.asynccontextmanager
async def launched(options: Sequence[str]) -> AsyncIterator[Bridge]:
    with tempfile.TemporaryDirectory(prefix="attacks-") as state:
        proc = await asyncio.create_subprocess_exec(
            *(EVENT_BRIDGE, "serve", "--port", "0", "--jwt-secret", SECRET),
            *("--state-dir", state, *options),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        bridge = Bridge(proc)
        try:
            await bridge.started()
            yield bridge
        finally:
            await bridge.stop()


def rss_bytes(pid: int) -> int:
    """VmRSS from /proc/PID/status, as bench/memory.py reads it (0 once the process is gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class RssPeak:
    """The highest VmRSS seen, sampled every RSS_PERIOD in a thread of its own.

    A thread, not a task: an attack that keeps the event loop busy (writing
    megabytes, opening thousands of sockets) would otherwise delay the samples.
    """

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> RssPeak:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes(self.pid))

    def _sample(self) -> None:
        while not self._stop.wait(RSS_PERIOD):
            self.peak = max(self.peak, rss_bytes(self.pid))


# 1. Empty continuation frames

EMPTY_CONT = frame(Opcode.CONT, b"", fin=False)
#: Sent after each batch of fragments: a pong says the bridge read the batch and
#: did not close. Control frames may come between fragments (RFC 6455, 5.4), and
#: the bridge does not count them as fragments.
PING = frame(Opcode.PING, b"ack")


async def fragment_flood(port: int, total: int = 2_000_000) -> str:
    ws = await open_ws(port)
    ws.writer.write(frame(Opcode.TEXT, b"x", fin=False))
    sent, batch = 1, 0
    try:
        while sent <= total:
            acked, last = sent, batch
            # One fragment per round trip at first, to tell the exact frame the bridge
            # stopped at; then batches growing by a quarter, to reach 2M in ~40 rounds.
            batch = 1 if sent < 1024 else min(sent // 4, total + 1 - sent)
            ws.writer.write(EMPTY_CONT * batch + PING)
            sent += batch
            kind, code = await next_control(ws.reader)
            if kind != "pong":
                what = f"closed {code}" if kind == "close" else "cut (no close frame)"
                return f"{what} after {_stopped_at(acked, last, sent)} frames"
        return f"still open after {sent:,} frames"
    finally:
        ws.abort()


def _stopped_at(acked: int, last: int, sent: int) -> str:
    """The frame the bridge closed at, as exactly as the pongs tell.

    The bridge's WebSocket protocol answers a ping as it parses it, and the bridge
    counts fragments afterwards: the batch that went over the limit still gets its
    pong, and the close follows it. A close that comes instead of a pong thus
    ends the previous batch (``acked`` frames sent, the last ``last`` of them in
    it), unless a large batch reached the bridge in several reads.
    """
    if last == 1:
        return f"{acked:,}"
    return f"{acked - last + 1:,}-{sent:,}"


async def attack_fragments(bridge: Bridge) -> str:
    return await fragment_flood(bridge.port)


async def attack_fragments_4(bridge: Bridge) -> str:
    results = await asyncio.gather(*(fragment_flood(bridge.port) for _ in range(4)))
    return "4 at once: " + counted(results)


# 2. Auth messages with a long crit header


async def attack_crit(bridge: Bridge, count: int = 1000, window: float = 10) -> str:
    forged = token(key=ATTACKER_KEY, headers={"crit": ["c" * 200]})
    auth = text_frame({"op": "auth", "token": forged})
    results = await gather_limited(
        [partial(open_ws, bridge.port, local=SOURCES[i % len(SOURCES)]) for i in range(count)]
    )
    sockets = opened(results)
    try:
        for ws in sockets:
            ws.writer.write(auth)
        waits = [asyncio.create_task(until_closed(ws.reader)) for ws in sockets]
        # A fixed window: what matters is what is still open at its end, not the first close.
        await asyncio.sleep(window)
        in_bridge = await health_connections(bridge.port)
        done = [t for t in waits if t.done()]
        pending = [t for t in waits if not t.done()]
        for task in pending:
            task.cancel()
    finally:
        for ws in sockets:
            ws.abort()
    codes = counted([t.result() for t in done])
    failed = f", {count - len(sockets)} handshakes failed" if len(sockets) < count else ""
    return (
        f"{len(pending)} of {len(sockets):,} open after {window:.0f} s "
        f"(health: {in_bridge}); closed {codes}{failed}"
    )


# 3. CSRF


async def attack_csrf(bridge: Bridge) -> str:
    evil = {"Origin": "http://evil.example"}
    plain, _ = await request(
        bridge.port, "POST", EMIT, SMALL_EVENT, evil, content_type="text/plain"
    )
    as_json, _ = await request(bridge.port, "POST", EMIT, SMALL_EVENT, evil)
    return f"text/plain: {plain}; application/json: {as_json}"


# 4. A byte outside ASCII in the bearer


async def attack_latin1_bearer(bridge: Bridge) -> str:
    status, _ = await request(
        bridge.port, "GET", "/api/dashboard/history", headers={"Authorization": "Bearer k\xe9y"}
    )
    return str(status)


# 5. A client that sends and never reads


async def attack_never_reads(bridge: Bridge, query: str) -> str:
    ws = await open_ws(bridge.port, query=query, rcvbuf=4096)
    ws.reading(False)
    try:
        # 8 MB of "[]": each one asks for a bridge:error reply the client never reads.
        ws.writer.write(frame(Opcode.TEXT, b"[]") * 1_000_000)
        try:
            line = await bridge.logged("slow client dropped", 30)
        except TimeoutError:
            return "not dropped within 30 s"
        # Now read what the bridge left, to see its close frame if it sent one.
        ws.reading(True)
        async with asyncio.timeout(10):
            code = await until_closed(ws.reader)
    finally:
        ws.abort()
    fields = dict(re.findall(r"(\w+)=(\S+)", line))
    seen = f"closed {code}" if code else "no close frame seen"
    buffered = int(fields.get("buffered", "0"))
    return f"dropped ({seen}), bound={fields.get('bound')}, buffered={buffered:,}"


async def attack_never_reads_preauth(bridge: Bridge) -> str:
    return await attack_never_reads(bridge, "")


async def attack_never_reads_token(bridge: Bridge) -> str:
    return await attack_never_reads(bridge, f"?token={token()}")


# 6. 413 on keep-alive connections


async def attack_413(bridge: Bridge, count: int = 300) -> str:
    head = (
        f"POST {EMIT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        "Content-Length: 2000000\r\n\r\n"
    )
    attack = head.encode() + b"x" * 1000
    before = len(bridge.log)
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def one() -> str:
        async with gate:
            raw, closed = await exchange(bridge.port, attack, seconds=15)
        return first_status(raw) + ("" if closed else " (left open)")

    results = await asyncio.gather(*(one() for _ in range(count)))
    # What the bridge logs about a request comes right after its answer: give the
    # last ones a fixed second to arrive.
    await asyncio.sleep(1)
    grown = bytes(bridge.log[before:])
    traceback = "Traceback" if b"Traceback" in grown else "no Traceback"
    return f"{counted(results)}; log +{len(grown):,} bytes, {traceback}"


# 7. Slowloris


async def attack_slowloris(bridge: Bridge, count: int = 500, window: float = 12) -> str:
    partial = b"GET /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-a: "
    gate = asyncio.Semaphore(CONNECTS_AT_ONCE)

    async def one() -> tuple[float, bytes, bool]:
        async with gate:
            reader, writer = await connected(bridge.port)
        writer.write(partial)
        sent = time.monotonic()
        try:
            raw, closed = await read_all(reader, window)
        finally:
            writer.transport.abort()
        return time.monotonic() - sent, raw, closed

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    held = [r for r in results if isinstance(r, tuple)]
    closed = [(after, raw) for after, raw, was_closed in held if was_closed]
    answers = counted([first_status(raw) for _, raw in closed])
    span = (
        f", after {min(a for a, _ in closed):.1f}-{max(a for a, _ in closed):.1f} s"
        if closed
        else ""
    )
    failed = f"; {count - len(held)} connects failed" if len(held) < count else ""
    return f"{len(closed)} of {len(held)} closed within {window:.0f} s ({answers}{span}){failed}"


# 8. Connections from one address


async def attack_per_ip(bridge: Bridge, count: int = 3000) -> str:
    query = f"?token={token()}"
    results = await gather_limited([partial(open_ws, bridge.port, query=query)] * count)
    for ws in opened(results):  # all held until every one was tried
        ws.abort()
    outcomes = [r.status if isinstance(r, Raw) else type(r).__name__ for r in results]
    return counted(outcomes)


# 9. Log injection

INJECTED = "x\r\nts=0 level=error msg=forged\x1b[2J\u2028"


async def attack_log_injection(bridge: Bridge) -> str:
    forged = token(headers={"crit": [INJECTED]})
    ws = await open_ws(bridge.port)
    try:
        ws.writer.write(text_frame({"op": "auth", "token": forged}))
        async with asyncio.timeout(10):
            code = await until_closed(ws.reader)
    finally:
        ws.abort()
    await bridge.logged("authentication refused")
    # Records are separated by "\n" only: any other line break inside one is the attack.
    lines = bytes(bridge.log).decode(errors="replace").rstrip("\n").split("\n")
    broken = [line for line in lines if not line.isprintable()]
    forged_lines = [line for line in lines if line.startswith("ts=0")]
    return (
        f"closed {code}; {len(lines)} log lines, {len(broken)} not printable, "
        f"{len(forged_lines)} starting ts=0"
    )


# 10. DNS rebinding


async def attack_rebinding(bridge: Bridge) -> str:
    evil = f"evil.example:{bridge.port}"
    ws = await open_ws(
        bridge.port, query=f"?token={token()}", host=evil, extra=f"Origin: http://{evil}\r\n"
    )
    ws.abort()
    raw, _ = await exchange(
        bridge.port,
        f"GET /api/dashboard/stats HTTP/1.1\r\nHost: {evil}\r\nConnection: close\r\n\r\n".encode(),
    )
    return f"handshake: {ws.status}; stats: {first_status(raw)}"


# 11. Reads without credentials


async def attack_public_reads(bridge: Bridge) -> str:
    paths = ("/api/dashboard/history", "/api/dashboard/stats", "/metrics")
    answers = [(await request(bridge.port, "GET", path))[0] for path in paths]
    return ", ".join(
        f"{path.rsplit('/', 1)[1]} {status}" for path, status in zip(paths, answers, strict=True)
    )


# 12. Token expiry


async def attack_expiry(bridge: Bridge, ttl: int = 3) -> str:
    exp = int(time.time()) + ttl
    tok = jwt.encode({"sub": "mallory", "roles": [], "exp": exp}, SECRET, algorithm="HS256")
    late: list[float] = []
    publishing = asyncio.create_task(_publish_every(bridge.port, 0.5))
    try:
        async with connect(f"ws://{HOST}:{bridge.port}/ws?token={tok}") as ws:
            await ws.recv()  # welcome
            await ws.send('{"op": "ping"}')  # live events flow after a first message
            with contextlib.suppress(ConnectionClosed, TimeoutError):
                async with asyncio.timeout(exp + 10 - time.time()):
                    async for message in ws:
                        if time.time() > exp and not json.loads(message)["type"].startswith(
                            "bridge:"
                        ):
                            late.append(time.time() - exp)
            closed_at = time.time()
            code = ws.close_code
    finally:
        publishing.cancel()
    if code is None:
        return f"still open 10 s after exp; {len(late)} events after exp"
    return f"closed {code} {closed_at - exp:+.2f} s after exp; {len(late)} events after exp"


async def _publish_every(port: int, period: float) -> None:
    """One event for everyone every ``period`` seconds, until cancelled."""
    while True:
        await request(port, "POST", EMIT, SMALL_EVENT)
        await asyncio.sleep(period)  # the pace of the publisher, not a wait for something


# 13. Frames in the same segment as the handshake


async def attack_early_frames(bridge: Bridge) -> str:
    early = text_frame({"op": "auth", "token": token()}) + text_frame({"op": "ping"})
    ws = await open_ws(bridge.port, early=early)
    types: list[str] = []
    try:
        async with asyncio.timeout(5):
            while len(types) < 2:
                opcode, payload = await read_frame(ws.reader)
                if opcode == Opcode.TEXT:
                    types.append(json.loads(payload)["type"])
    except TimeoutError:
        types.append("(nothing more within 5 s)")
    finally:
        ws.abort()
    return f"{ws.status}, then " + ", ".join(types)


# 14. Content-Length and Transfer-Encoding together


async def attack_two_framings(bridge: Bridge) -> str:
    body = SMALL_EVENT
    smuggled = (
        (
            f"POST {EMIT} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
            f"{len(body):x}\r\n"
        ).encode()
        + body
        + b"\r\n0\r\n\r\n"
    )
    raw, closed = await exchange(bridge.port, smuggled + HEALTH, seconds=5)
    answers = statuses(raw)
    return (
        f"{answers[0] if answers else 'nothing'}, "
        f"{'closed' if closed else 'left open'}, {len(answers)} response(s) to 2 requests"
    )


# 15. Large events to frozen clients


async def frozen_client(port: int, source: str) -> Raw:
    """A client past its 101 that sent one ping and reads nothing more, small window."""
    ws = await open_ws(port, query=f"?token={token()}", local=source, rcvbuf=4096)
    ws.reading(False)
    # A first message: the bridge holds live events until one comes (or the resume window).
    ws.writer.write(text_frame({"op": "ping"}))
    return ws


async def attack_frozen(bridge: Bridge, count: int = 300, events: int = 100) -> str:
    keyed = {"X-API-Key": API_KEY}
    results = await gather_limited(
        [partial(frozen_client, bridge.port, SOURCES[i % 3]) for i in range(count)]
    )
    clients = opened(results)
    try:
        huge = json.dumps({"type": "informe:listo", "data": {"texto": "x" * MIB}}).encode()
        big_status, _ = await request(bridge.port, "POST", EMIT, huge, keyed)
        body = json.dumps({"type": "informe:listo", "data": {"texto": "x" * 60_000}}).encode()
        posted = [(await request(bridge.port, "POST", EMIT, body, keyed))[0] for _ in range(events)]
        at_end = await _held(bridge)
        # Dropped clients that never read cannot answer the close frame: the bridge cuts
        # them after its close timeout (2 s). A fixed window past it shows what it freed.
        await asyncio.sleep(CLOSE_TIMEOUT + 1)
        later = await _held(bridge)
    finally:
        for ws in clients:
            ws.abort()
    series = await metrics(bridge.port)
    dropped = int(series.get("bridge_slow_clients_dropped_total", 0))
    bounds = re.findall(r"slow client dropped.*?bound=(\w+)", bridge.log.decode(errors="replace"))
    return (
        f"1 MiB event: {big_status}; {events} x 60 KB: {counted(posted)}; "
        f"dropped {dropped} of {len(clients)} ({counted(bounds) or 'none'}); "
        f"queued/RSS after the last POST {at_end}, {CLOSE_TIMEOUT + 1:.0f} s later {later}"
    )


async def _held(bridge: Bridge) -> str:
    """What the bridge holds now: bytes queued for clients and its VmRSS, in MiB."""
    queued = (await metrics(bridge.port)).get("bridge_queued_bytes", 0)
    return f"{queued / MIB:.0f}/{bridge.rss() / MIB:.0f} MiB"


# 16. HEAD


async def attack_head(bridge: Bridge) -> str:
    raw, _ = await exchange(
        bridge.port, b"HEAD /api/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    body = raw.partition(b"\r\n\r\n")[2]
    return f"{first_status(raw)}, {len(body)} body bytes"


# The run


@dataclass(frozen=True)
class Attack:
    name: str
    run: Callable[[Bridge], Awaitable[str]]
    bound: str
    options: tuple[str, ...] = ()


FRAGMENTS = "256 fragments a message, then 1009"
SEND_BUFFER = "--max-send-buffer 1 MiB (+ socket's 256 KiB): 1013"
KEYED = ("--api-key", API_KEY)
ATTACKS = (
    Attack("1. 2M empty continuation frames, pre-auth", attack_fragments, FRAGMENTS),
    Attack("1. the same, 4 connections at once", attack_fragments_4, FRAGMENTS),
    Attack(
        "2. 1,000 auth messages, 200-char crit header",
        attack_crit,
        "refused 4401 at once; without a token: closed after 5 s",
    ),
    Attack(
        "3. CSRF POST emit-event, Origin evil.example",
        attack_csrf,
        "foreign Origin: 403 (non-JSON: 415)",
    ),
    Attack("4. Bearer with byte 0xE9, --api-key", attack_latin1_bearer, "401, never 500", KEYED),
    Attack("5. 8 MB of [] never read, pre-auth", attack_never_reads_preauth, SEND_BUFFER),
    Attack("5. 8 MB of [] never read, with a token", attack_never_reads_token, SEND_BUFFER),
    Attack(
        "6. 300 x Content-Length 2,000,000, 1000 bytes sent",
        attack_413,
        "413 and close, no traceback",
    ),
    Attack(
        "7. slowloris, 500 partial heads, --max-connections-per-ip 0",
        attack_slowloris,
        "--http-request-timeout 10 s: 408 and close",
        ("--max-connections-per-ip", "0"),
    ),
    Attack(
        "8. 3,000 WebSockets from 127.0.0.1",
        attack_per_ip,
        "--max-connections-per-ip 500: 429",
    ),
    Attack("9. log injection in a crit header", attack_log_injection, "one record a line"),
    Attack("10. DNS rebinding, Host evil.example", attack_rebinding, "other host names: 400"),
    Attack("11. reads without credentials", attack_public_reads, "a token or the API key: 401"),
    Attack(
        "12. token expiring in 3 s, never refreshed",
        attack_expiry,
        "4419 at exp, no event after it",
    ),
    Attack("13. auth + ping in the handshake's segment", attack_early_frames, "welcome and pong"),
    Attack("14. Content-Length + Transfer-Encoding", attack_two_framings, "400 and close"),
    Attack(
        "15. 300 frozen clients, 1 MiB then 100 x 60 KB",
        attack_frozen,
        "--max-event-size 64 KiB: 413; 1 MiB each; --max-queued-bytes 256 MiB together",
        KEYED,
    ),
    Attack(
        "15. the same, --max-queued-bytes 32 MiB",
        attack_frozen,
        "--max-event-size 64 KiB: 413; 1 MiB each; 32 MiB together",
        (*KEYED, "--max-queued-bytes", str(32 * MIB)),
    ),
    Attack("16. HEAD /api/health", attack_head, "200, no body"),
)


@dataclass(frozen=True)
class Row:
    attack: str
    outcome: str
    before: int
    peak: int
    bound: str


async def replay(attack: Attack) -> Row:
    async with launched(attack.options) as bridge:
        before = bridge.rss()
        with RssPeak(bridge.pid) as peak:
            try:
                outcome = await asyncio.wait_for(attack.run(bridge), 60)
            except Exception as exc:  # one failed attack is a row, not the end
                outcome = f"not measured: {type(exc).__name__} {exc}".strip()
        if bridge.proc.returncode is not None:
            outcome += f"; the bridge exited ({bridge.proc.returncode})"
    return Row(attack.name, outcome, before, peak.peak, attack.bound)


def table(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| attack | what the bridge did | RSS before (MiB) | peak RSS during (MiB) | bound |",
        "|---|---|---:|---:|---|",
    ]
    for r in rows:
        cells = (r.attack, r.outcome, f"{r.before / MIB:.0f}", f"{r.peak / MIB:.0f}", r.bound)
        lines.append("| " + " | ".join(c.replace("|", "/") for c in cells) + " |")
    return lines


def raise_open_files() -> None:
    """Soft RLIMIT_NOFILE up to the hard one: 3,000 sockets at once, the bridge inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main() -> int:
    raise_open_files()
    started = time.monotonic()
    rows = []
    for attack in ATTACKS:
        progress(f"{attack.name} ...")
        rows.append(await replay(attack))
        progress(f"  {rows[-1].outcome}")
    print("\n".join(table(rows)))
    elapsed = time.monotonic() - started
    print(f"\nTotal run time: {int(elapsed // 60)} min {elapsed % 60:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
