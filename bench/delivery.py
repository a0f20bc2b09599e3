"""Delivery benchmark: the bridge against a bare ``websockets`` broadcast server.

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    uv run --frozen python bench/delivery.py            # 1,000 clients, 10/40/80 events/s
    uv run --frozen python bench/delivery.py --clients 100 --duration 2

It makes a RabbitMQ vhost of its own, starts each server under test pinned to
core 0, and runs the load generator (the clients and the publisher) here,
pinned to core 1. For every scenario (server x batch mode x rate) a publisher
with confirms sends dashboard events at a fixed rate; every client records
each event's ``seq`` and its latency (receive time - ``sentAt``). The server's
CPU time comes from ``/proc/PID/stat``, the cores' load from ``/proc/stat``.
Everything it started, and the vhost, is removed at the end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from argparse import Namespace
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import websockets
from aio_pika.abc import AbstractChannel, AbstractExchange
from websockets.frames import Frame, Opcode

from schemas import Event
from schemas.catalog import DashboardUpdate
from schemas.topology import EVENTS, instance_queue

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SERVER_CORE = 0
GENERATOR_CORE = 1
#: A fresh one per run; the benchmark's clients are anonymous anyway.
JWT_SECRET = secrets.token_urlsafe(32)
VHOST_PREFIX = "event-bridge-bench-"
BRIDGE_INSTANCE = "bench"

# Timeouts, in seconds: every wait in the benchmark is bounded.
RABBITMQCTL_TIMEOUT = 60
SERVER_START_TIMEOUT = 30
SERVER_STOP_TIMEOUT = 12
CONNECT_TIMEOUT = 15
CLOSE_TIMEOUT = 3
CONFIRM_TIMEOUT = 10
#: Percent load of a core, before the run, above which the report warns.
BUSY = 20.0
#: A scenario's delivery is over once nothing arrived for this long.
QUIET_PERIOD = 2.0


# Command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure event delivery of the bridge against a bare websockets "
        "broadcast server, both fed by RabbitMQ.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[10.0, 40.0, 80.0], help="events/s to publish"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of publishing each")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=["baseline", "bridge"],
        default=["baseline", "bridge"],
        help="servers to measure, in this order",
    )
    parser.add_argument("--no-batch", action="store_true", help="skip the bridge's ?batch=1 mode")
    parser.add_argument("--pad", type=int, default=120, help="characters of padding per event")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=20.0,
        help="longest wait for deliveries after publishing",
    )
    parser.add_argument(
        "--amqp", default="amqp://guest:guest@127.0.0.1:5672", help="broker, without vhost"
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="handshakes in flight at once"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or min(args.rates) <= 0:
        parser.error("--clients, --duration and --rates must be positive")
    return args


# The machine: cores, CPU time, limits, versions


def pin_to_core(core: int) -> None:
    if core >= (os.cpu_count() or 1):
        sys.exit(f"delivery: needs at least {core + 1} cores")
    os.sched_setaffinity(0, {core})


def raise_open_files(clients: int) -> None:
    """Each client is one socket here and one in the server, which inherits the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = clients + 256
    if hard != resource.RLIM_INFINITY and hard < wanted:
        sys.exit(f"delivery: {clients} clients need {wanted} open files; the hard limit is {hard}")
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class ServerGone(RuntimeError):
    """The server under test exited during the benchmark."""


def process_cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads, in seconds."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        raise ServerGone(f"process {pid} exited") from None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_times() -> dict[int, tuple[int, int]]:
    """Per core: (busy, total) jiffies since boot."""
    cores = {}
    for line in Path("/proc/stat").read_text().splitlines():
        name, *values = line.split()
        if name.startswith("cpu") and name != "cpu":
            ticks = [int(v) for v in values[:8]]  # user … steal; guest is inside user
            idle = ticks[3] + ticks[4]
            cores[int(name[3:])] = (sum(ticks) - idle, sum(ticks))
    return cores


def core_load(before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> list[float]:
    """Percent busy of each core between two readings."""
    loads = []
    for core in sorted(after):
        busy = after[core][0] - before[core][0]
        total = after[core][1] - before[core][1]
        loads.append(100.0 * busy / total if total else 0.0)
    return loads


def rabbitmqctl(*args: str) -> str:
    path = shutil.which("rabbitmqctl")
    if path is None:
        sys.exit("delivery: rabbitmqctl is not on the PATH; it makes the benchmark's vhost")
    done = subprocess.run(  # noqa: S603 - fixed arguments
        [path, *args], capture_output=True, text=True, timeout=RABBITMQCTL_TIMEOUT, check=True
    )
    return done.stdout.strip()


def versions() -> str:
    try:
        rabbit = rabbitmqctl("version")
    except (subprocess.SubprocessError, OSError) as exc:
        rabbit = f"unknown ({exc})"
    return (
        f"Python {platform.python_version()}, websockets {websockets.__version__}, "
        f"aio-pika {aio_pika.__version__}, RabbitMQ {rabbit}, "
        f"{os.cpu_count()} cores, Linux {platform.release()}"
    )


def background_load(seconds: float = 1.0) -> str:
    """The cores' load before the benchmark starts: others may be using this machine."""
    before = core_times()
    time.sleep(seconds)
    loads = core_load(before, core_times())
    text = "load before the run: " + ", ".join(f"core{i} {v:.0f} %" for i, v in enumerate(loads))
    if max(loads) > BUSY:
        text += " (BUSY: other processes share the cores; expect noisy numbers)"
    return text


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost that guest may use, deleted afterwards."""
    name = VHOST_PREFIX + uuid.uuid4().hex[:12]
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        try:
            rabbitmqctl("delete_vhost", name)
        except (subprocess.SubprocessError, OSError) as exc:
            print(f"delivery: could not delete vhost {name}: {exc}", file=sys.stderr)


# The servers under test


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: it prints ``ws://HOST:PORT/ws`` on its first line."""

    name: str
    command: tuple[str, ...]
    #: Path of a GET that answers 200 once the server consumes its queue, if any.
    health: str | None = None
    batch_modes: tuple[bool, ...] = (False,)
    #: A durable queue it leaves behind when it stops, still bound to the exchange.
    queue: str | None = None


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    port: int


def server_specs(broker_url: str, state_dir: Path, batch: bool) -> dict[str, ServerSpec]:
    bin_dir = Path(sys.executable).parent
    bridge = (
        str(bin_dir / "event-bridge"),
        "serve",
        *("--port", "0", "--broker", broker_url, "--instance", BRIDGE_INSTANCE),
        *("--jwt-secret", JWT_SECRET, "--allow-anonymous", "--state-dir", str(state_dir)),
    )
    baseline = (sys.executable, str(HERE / "baseline_broadcast.py"), "--port", "0")
    return {
        "baseline": ServerSpec("baseline", (*baseline, "--broker", broker_url)),
        "bridge": ServerSpec(
            "bridge",
            bridge,
            health="/api/health",
            batch_modes=(False, True) if batch else (False,),
            queue=instance_queue(BRIDGE_INSTANCE).name,
        ),
    }


@contextlib.asynccontextmanager
async def served(spec: ServerSpec, log_path: Path) -> AsyncIterator[Running]:
    """Start ``spec`` on the server core; stop it (SIGTERM, then SIGKILL) afterwards."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            "taskset", "-c", str(SERVER_CORE), *spec.command,
            stdout=subprocess.PIPE, stderr=log,
        )  # fmt: skip
        discard: asyncio.Task[None] | None = None
        try:
            port = await _read_port(proc, log_path)
            # Read whatever else it prints, so its stdout never blocks it.
            discard = asyncio.create_task(_discard(proc))
            if spec.health is not None:
                await _wait_healthy(port, spec.health)
            try:
                yield Running(spec.name, proc.pid, port)
            except ServerGone as exc:
                raise ServerGone(f"{spec.name} exited: {exc}\n{_tail(log_path)}") from None
        finally:
            if discard is not None:
                discard.cancel()
            await _stop(proc)


async def _read_port(proc: asyncio.subprocess.Process, log_path: Path) -> int:
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), SERVER_START_TIMEOUT)
    except TimeoutError:
        line = b""
    found = re.search(rb"ws://[\w.\[\]:]+?:(\d+)/ws", line)
    if found is None:
        await _stop(proc)
        raise RuntimeError(f"server did not start: {line!r}\n{_tail(log_path)}")
    return int(found[1])


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


async def _discard(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(4096):
        pass


async def _wait_healthy(port: int, path: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError):
            if await asyncio.wait_for(_http_status(port, path), 2) == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"GET {path} did not answer 200 within {SERVER_START_TIMEOUT} s")


async def _http_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        status = await reader.readline()
        return int(status.split()[1])
    finally:
        writer.close()


async def _stop(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM; SIGKILL if it is still there after a while, or if we are interrupted."""
    try:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), SERVER_STOP_TIMEOUT)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


# The clients


_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: The benchmark's fields, in the order the publisher writes them.
_EVENT = re.compile(rb'"run":"([^"]*)","seq":(\d+),"sentAt":([0-9.eE+-]+)')
_PING_OP = Frame(Opcode.TEXT, b'{"op": "ping"}')
#: Initial read buffer per client; it doubles when a read could not fit.
_BUFFER_SIZE = 16 * 1024


class Client(asyncio.BufferedProtocol):
    """A WebSocket client that does only what the benchmark needs, cheaply.

    It reads into a buffer of its own (no allocation per read), parses server
    frames itself (unmasked, unfragmented, as both servers send them), answers
    pings and close frames, and for each event of the current run records
    ``(seq, latency)``. A batched frame holds several events separated by
    ``\\n``; one receive time applies to every event that arrived in the same read.
    """

    def __init__(self, port: int, path: str) -> None:
        key = base64.b64encode(os.urandom(16))
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())  # noqa: S324 - RFC 6455
        self._request = (
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        loop = asyncio.get_running_loop()
        self.welcomed: asyncio.Future[None] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray(_BUFFER_SIZE)
        self._filled = 0
        self._upgraded = False
        self.closing = False
        self.close_code: int | None = None
        self.begin(b"")

    def begin(self, run: bytes) -> None:
        """Start recording the events of ``run``; forget anything recorded before."""
        self.run = run
        self.records: list[tuple[int, float]] = []
        self.frames = 0
        self.last_receive = 0.0

    @property
    def is_open(self) -> bool:
        return not self.lost.done() and not self.closing

    # asyncio.BufferedProtocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(f"closed before the welcome: {exc}"))

    def get_buffer(self, sizehint: int) -> memoryview:
        if len(self._buffer) - self._filled < _BUFFER_SIZE // 4:
            # A new, larger buffer: the old one may still be exported, so never resize it.
            larger = bytearray(2 * len(self._buffer))
            larger[: self._filled] = self._buffer[: self._filled]
            self._buffer = larger
        return memoryview(self._buffer)[self._filled :]

    def buffer_updated(self, nbytes: int) -> None:
        now = time.time()
        buffer, size = self._buffer, self._filled + nbytes
        pos = 0 if self._upgraded else self._handshake(buffer, size)
        if pos < 0:
            self._filled = size
            return
        while size - pos >= 2:
            length, head = buffer[pos + 1], 2
            if length & 0x80 or not buffer[pos] & 0x80:
                self._fail("masked or fragmented frame from the server")
                return
            if length == 126:
                if size - pos < 4:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 4], "big"), 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, head = int.from_bytes(buffer[pos + 2 : pos + 10], "big"), 10
            end = pos + head + length
            if end > size:
                break
            self._frame(buffer[pos] & 0x0F, buffer[pos + head : end], now)
            pos = end
        # Keep the start of an incomplete frame; same-length slice assignment, no resize.
        self._filled = size - pos
        if pos and self._filled:
            buffer[: self._filled] = buffer[pos:size]

    # Frames and messages

    def _handshake(self, buffer: bytearray, size: int) -> int:
        """Where the frames start once the 101 response is complete; -1 until then."""
        end = buffer.find(b"\r\n\r\n", 0, size)
        if end < 0:
            return -1
        head = bytes(buffer[:end]).lower()
        if not head.startswith(b"http/1.1 101") or self._accept.lower() not in head:
            self._fail(f"handshake refused: {head.splitlines()[0]!r}")
            return -1
        self._upgraded = True
        return end + 4

    def _frame(self, opcode: int, payload: bytearray, now: float) -> None:
        if opcode == Opcode.TEXT:
            self.frames += 1
            self.last_receive = now
            for message in payload.split(b"\n"):
                self._message(message, now)
        elif opcode == Opcode.PING:
            self._send(Frame(Opcode.PONG, bytes(payload)))
        elif opcode == Opcode.CLOSE:
            if self.close_code is None:
                self.close_code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            if not self.closing:
                self.closing = True
                self._send(Frame(Opcode.CLOSE, bytes(payload[:2])))
            if self.transport is not None:
                self.transport.close()

    def _message(self, message: bytearray, now: float) -> None:
        event = _EVENT.search(message)
        if event is None:
            self._control(message)
        elif event[1] == self.run:
            self.records.append((int(event[2]), now - float(event[3])))

    def _control(self, message: bytearray) -> None:
        kind = str(json.loads(message).get("type", ""))
        if kind == "bridge:welcome" and not self.welcomed.done():
            # The bridge holds live events until a client's first message.
            self._send(_PING_OP)
            self.welcomed.set_result(None)

    def _send(self, frame: Frame) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame.serialize(mask=True))

    def _fail(self, reason: str) -> None:
        if not self.welcomed.done():
            self.welcomed.set_exception(ConnectionError(reason))
        self.abort()

    # Closing

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    async def close(self) -> None:
        """Close cleanly (code 1000), or cut the connection after a few seconds."""
        if not self.lost.done() and not self.closing:
            self.closing = True
            self._send(Frame(Opcode.CLOSE, (1000).to_bytes(2, "big")))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self.lost), CLOSE_TIMEOUT)
        self.abort()


async def connect_clients(port: int, count: int, path: str, concurrency: int) -> list[Client]:
    """Connect ``count`` clients, ``concurrency`` handshakes at a time; drop those that fail."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()

    async def one() -> Client | None:
        async with gate:
            client = Client(port, path)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await loop.create_connection(lambda: client, HOST, port)
                    await client.welcomed
            except (OSError, TimeoutError) as exc:
                failures[str(exc) or type(exc).__name__] += 1
                client.abort()
                return None
            return client

    clients = [c for c in await asyncio.gather(*(one() for _ in range(count))) if c is not None]
    if failures:
        progress(f"  {count - len(clients)} of {count} clients could not connect: {dict(failures)}")
    if not clients:
        raise RuntimeError("no client could connect")
    return clients


async def close_clients(clients: list[Client]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


# The publisher


@dataclass(frozen=True)
class Published:
    attempted: int
    failed: int
    #: Events per second actually achieved by the schedule.
    rate: float


def event_body(run: str, seq: int, pad: int) -> bytes:
    """A bare dashboard event, stamped now; clients find ``run``, ``seq`` and ``sentAt`` in it."""
    fields = {"run": run, "seq": seq, "sentAt": time.time(), "pad": "x" * pad}
    return Event.of(DashboardUpdate.model_validate(fields)).to_json()


class Publisher:
    """Publishes bare dashboard events to ``bridge.events`` with publisher confirms."""

    def __init__(self, channel: AbstractChannel, exchange: AbstractExchange, pad: int) -> None:
        self._channel = channel
        self._exchange = exchange
        self._pad = pad

    async def delete_queue(self, name: str) -> None:
        """Delete a queue a stopped server left bound, so that it takes no more events."""
        await asyncio.wait_for(self._channel.queue_delete(name), CONFIRM_TIMEOUT)

    async def _publish(self, run: str, seq: int) -> None:
        body = event_body(run, seq, self._pad)
        message = aio_pika.Message(
            body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT
        )
        await self._exchange.publish(message, "dashboard", timeout=CONFIRM_TIMEOUT)

    async def run(self, run: str, rate: float, duration: float) -> Published:
        """Publish ``rate * duration`` events on a fixed schedule; confirms are awaited apart."""
        count = max(1, round(rate * duration))
        loop = asyncio.get_running_loop()
        start = loop.time()
        sends = []
        for seq in range(count):
            delay = start + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            sends.append(asyncio.create_task(self._publish(run, seq)))
        took = loop.time() - start + 1 / rate
        outcomes = await asyncio.wait_for(
            asyncio.gather(*sends, return_exceptions=True), CONFIRM_TIMEOUT + 5
        )
        failed = sum(isinstance(o, BaseException) for o in outcomes)
        return Published(count, failed, (count - failed) / took)


@contextlib.asynccontextmanager
async def publisher(url: str, pad: int) -> AsyncIterator[Publisher]:
    connection = await aio_pika.connect(url, timeout=10)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            EVENTS.name, aio_pika.ExchangeType(EVENTS.type), durable=EVENTS.durable
        )
        yield Publisher(channel, exchange, pad)
    finally:
        await asyncio.wait_for(connection.close(), 5)


# Scenarios


@dataclass(frozen=True)
class Scenario:
    server: str
    batch: bool
    rate: float


@dataclass(frozen=True)
class Reading:
    """CPU time of the server and of this process, and the cores' counters, at one moment."""

    server: float
    generator: float
    cores: dict[int, tuple[int, int]]
    wall: float

    @classmethod
    def take(cls, pid: int) -> Reading:
        here = process_cpu_seconds(os.getpid())
        return cls(process_cpu_seconds(pid), here, core_times(), time.time())


@dataclass(frozen=True)
class Usage:
    """What a scenario cost, from its first publish until its last delivery came in."""

    server: float
    generator: float
    seconds: float
    loads: list[float]

    @classmethod
    def between(cls, before: Reading, after: Reading) -> Usage:
        return cls(
            server=after.server - before.server,
            generator=after.generator - before.generator,
            seconds=after.wall - before.wall,
            loads=core_load(before.cores, after.cores),
        )


@dataclass
class Result:
    scenario: Scenario
    clients: int
    published: Published
    delivered: int
    frames: int
    #: From the first publish to the last delivery.
    seconds: float
    loss: int
    duplicates: int
    dropped: int
    latencies_ms: list[float] = field(repr=False)
    usage: Usage
    close_codes: Counter[int]

    def percentile(self, q: float) -> float:
        values = self.latencies_ms
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.usage.server / self.delivered if self.delivered else float("nan")


async def drain(clients: list[Client], expected: int, longest: float) -> None:
    """Wait until every open client has every event, nothing arrives any more, or ``longest``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + longest
    total, changed = -1, loop.time()
    while loop.time() < deadline:
        if all(len(c.records) >= expected for c in clients if c.is_open):
            return
        now_total = sum(len(c.records) for c in clients)
        if now_total != total:
            total, changed = now_total, loop.time()
        elif loop.time() - changed > QUIET_PERIOD:
            return
        await asyncio.sleep(0.02)


async def run_scenario(
    server: Running, clients: list[Client], pub: Publisher, scenario: Scenario, args: Namespace
) -> Result:
    run = uuid.uuid4().hex[:12]
    live = [c for c in clients if c.is_open]
    for client in live:
        client.begin(run.encode())
    before = Reading.take(server.pid)
    published = await pub.run(run, scenario.rate, args.duration)
    await drain(live, published.attempted, args.drain_timeout)
    usage = Usage.between(before, Reading.take(server.pid))
    return summarize(scenario, live, published, before.wall, usage)


def summarize(
    scenario: Scenario, clients: list[Client], published: Published, started: float, usage: Usage
) -> Result:
    delivered = frames = loss = duplicates = 0
    latencies: list[float] = []
    last = started
    for client in clients:
        seqs = {seq for seq, _ in client.records}
        delivered += len(client.records)
        duplicates += len(client.records) - len(seqs)
        loss += published.attempted - len(seqs)
        frames += client.frames
        last = max(last, client.last_receive)
        latencies.extend(1000 * latency for _, latency in client.records)
    latencies.sort()
    # The benchmark closes its clients only after the last scenario: these the server closed.
    gone = [c for c in clients if c.lost.done() or c.close_code is not None]
    return Result(
        scenario=scenario,
        clients=len(clients),
        published=published,
        delivered=delivered,
        frames=frames,
        seconds=max(last - started, 1e-9),
        loss=loss,
        duplicates=duplicates,
        dropped=len(gone),
        latencies_ms=latencies,
        usage=usage,
        close_codes=Counter(c.close_code or 1006 for c in gone),
    )


async def run_group(server: Running, pub: Publisher, batch: bool, args: Namespace) -> list[Result]:
    """Connect the clients once, warm up, then one scenario per rate."""
    path = "/ws?batch=1" if batch else "/ws"
    label = f"{server.name}{' batch=1' if batch else ''}"
    progress(f"{label}: connecting {args.clients} clients")
    clients = await connect_clients(server.port, args.clients, path, args.connect_concurrency)
    results = []
    try:
        await asyncio.sleep(0.5)  # the pongs to the clients' pings
        await run_scenario(server, clients, pub, Scenario(server.name, batch, 20), _warmup(args))
        for rate in args.rates:
            await asyncio.sleep(1)
            result = await run_scenario(
                server, clients, pub, Scenario(server.name, batch, rate), args
            )
            progress("  " + summary_line(result))
            results.append(result)
    finally:
        progress(f"{label}: closing clients")
        await close_clients(clients)
    return results


def _warmup(args: Namespace) -> Namespace:
    return Namespace(**{**vars(args), "duration": 0.5, "drain_timeout": 5.0})


async def bench(args: Namespace, broker_url: str, workdir: Path) -> list[Result]:
    task = asyncio.current_task()
    assert task is not None
    # Our own handlers: SIGINT may arrive ignored (a background job), and SIGTERM must clean up.
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    specs = server_specs(broker_url, workdir / "state", batch=not args.no_batch)
    results: list[Result] = []
    async with publisher(broker_url, args.pad) as pub:
        for name in args.servers:
            spec = specs[name]
            async with served(spec, workdir / f"{name}.log") as server:
                affinity = sorted(os.sched_getaffinity(server.pid))
                progress(f"{name}: pid {server.pid} on port {server.port}, cores {affinity}")
                for batch in spec.batch_modes:
                    results += await run_group(server, pub, batch, args)
            if spec.queue is not None:
                # Otherwise it would keep storing every event of the servers measured next.
                await pub.delete_queue(spec.queue)
    return results


# Output


HEADERS = (
    "server", "batch", "rate", "pub/s", "clients", "frames/s", "events/s", "loss", "dup",
    "dropped", "p50 ms", "p99 ms", "max ms", "µs/event", "server %", "gen %", "core0 %",
    "core1 %",
)  # fmt: skip


def row(result: Result) -> list[str]:
    s = result.scenario
    return [
        s.server,
        "on" if s.batch else "off",
        f"{s.rate:g}",
        f"{result.published.rate:.1f}",
        str(result.clients),
        f"{result.frames / result.seconds:,.0f}",
        f"{result.delivered / result.seconds:,.0f}",
        str(result.loss),
        str(result.duplicates),
        str(result.dropped),
        f"{result.percentile(0.5):.1f}",
        f"{result.percentile(0.99):.1f}",
        f"{result.latencies_ms[-1] if result.latencies_ms else float('nan'):.1f}",
        f"{result.cpu_us_per_event:.2f}",
        f"{100 * result.usage.server / result.usage.seconds:.0f}",
        f"{100 * result.usage.generator / result.usage.seconds:.0f}",
        *(f"{load:.0f}" for load in result.usage.loads[:2]),
    ]


def summary_line(result: Result) -> str:
    return "  ".join(f"{h}={c}" for h, c in zip(HEADERS, row(result), strict=True))


def table(results: list[Result]) -> str:
    rows = [list(HEADERS), *(row(r) for r in results)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADERS))]
    lines = [_line(r, widths) for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _line(cells: list[str], widths: list[int]) -> str:
    # Names to the left, numbers to the right.
    aligned = (
        c.ljust(w) if i < 2 else c.rjust(w)
        for i, (c, w) in enumerate(zip(cells, widths, strict=True))
    )
    return "  ".join(aligned).rstrip()


def ratios(results: list[Result]) -> list[str]:
    baseline = {r.scenario.rate: r for r in results if r.scenario.server == "baseline"}
    lines = []
    for result in results:
        base = baseline.get(result.scenario.rate)
        if result.scenario.server == "baseline" or base is None:
            continue
        batch = " batch=1" if result.scenario.batch else ""
        lines.append(
            f"  {result.scenario.rate:g} events/s: bridge{batch} {result.cpu_us_per_event:.2f} µs"
            f" / baseline {base.cpu_us_per_event:.2f} µs = "
            f"{result.cpu_us_per_event / base.cpu_us_per_event:.2f}x"
        )
    return lines


def notes(results: list[Result]) -> list[str]:
    lines = []
    for r in results:
        s = r.scenario
        where = f"  {s.server}{' batch=1' if s.batch else ''} at {s.rate:g}/s:"
        if r.published.failed:
            lines.append(f"{where} {r.published.failed} publishes were not confirmed")
        if r.close_codes:
            lines.append(f"{where} clients closed by the server, by code: {dict(r.close_codes)}")
    return lines


LEGEND = """
rate: events/s asked for; pub/s: published and confirmed, per second of publishing.
frames/s, events/s: received by all clients together, from the first publish to the last receipt.
loss, dup: events x clients missing or received twice; dropped: clients the server closed or lost.
p50/p99/max: receive time - sentAt, over every event at every client; the publisher and the
  clients share core 1, so a busy generator (gen % near 100) adds to them.
µs/event: server CPU time (utime + stime, /proc/PID/stat, 10 ms ticks) per event delivered.
server %, gen %: CPU of the server and of this load generator, in % of one core.
core0 %, core1 %: load of each core from /proc/stat, whoever used it: core0 % - server % and
  core1 % - gen % is RabbitMQ (not pinned) plus anything else running on the machine."""


def report(args: Namespace, results: list[Result], header: str, payload: int) -> None:
    print()
    print(header)
    print(
        f"{args.clients} clients, {args.duration:g} s per rate, events of {payload} bytes, "
        f"server on core {SERVER_CORE}, load generator and publisher on core {GENERATOR_CORE}"
    )
    print()
    print(table(results))
    if lines := ratios(results):
        print("\nServer CPU per delivered event, bridge / bare websockets baseline:")
        print("\n".join(lines))
    if lines := notes(results):
        print("\nNotes:")
        print("\n".join(lines))
    print(LEGEND)


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_core(GENERATOR_CORE)
    raise_open_files(args.clients)
    header = versions() + "\n" + background_load()
    payload = len(event_body("0" * 12, 0, args.pad))
    progress(header)
    with vhost() as name, tempfile.TemporaryDirectory(prefix=VHOST_PREFIX) as tmp:
        progress(f"vhost {name}")
        try:
            results = asyncio.run(bench(args, f"{args.amqp}/{name}", Path(tmp)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("delivery: interrupted; cleaning up")
            return 130
    report(args, results, header, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
