"""Delivery benchmark: the bridge against a bare ``websockets`` broadcast server and
the three systems users would pick instead (python-socketio, Django Channels, the
seed's NestJS socket.io gateway).

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    uv run --frozen --group bench python bench/delivery.py   # 1,000 clients, 10/40/80 events/s
    uv run --frozen --group bench python bench/delivery.py --clients 100 --duration 2

It makes a RabbitMQ vhost of its own, starts each server under test pinned to
core 0, and runs the load generator (the clients) here, pinned to core 1, with each
server's feeder process (AMQP publishes, HTTP POSTs, the socketio emitter, a
``group_send`` process) on core 1 as well. For every scenario (server x batch mode x
rate) the feeder sends dashboard events at a fixed rate, on its own schedule, and
stamps each ``sentAt`` right before writing it;
every client records each event's ``seq`` and its latency (the kernel's receive
time of the read that completed its frame, ``SO_TIMESTAMPNS`` - ``sentAt``). The server's
CPU time comes from ``/proc/PID/stat``, the cores' load from ``/proc/stat``.
Everything it started, and the vhost, is removed at the end, on Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import enum
import importlib.metadata
import json
import math
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
from aio_pika.abc import AbstractChannel
from websockets.frames import Frame, Opcode

from schemas.topology import EVENTS, instance_queue

HERE = Path(__file__).resolve().parent
#: The servers' environment: the example project's catalog (api_rest.events) is importable.
SERVER_ENV = {**os.environ, "PYTHONPATH": str(HERE.parent / "example")}
BASELINES = HERE / "baselines"
sys.path.insert(0, str(BASELINES))
from feed import SEND_TIMEOUT as FEED_SEND_TIMEOUT  # noqa: E402 - beside this file, not a package
from feed import event_body as placeholder_body  # noqa: E402
from feed import stamp  # noqa: E402
from sio_client import FrameReader, SioClient  # noqa: E402
from sio_client import connect as sio_connect  # noqa: E402

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
#: The next scenario starts once no frame arrived for this long (see ``settle``), or
#: for BEHIND_QUIET after a scenario whose deliveries were not all in.
SETTLE_QUIET = 0.5
BEHIND_QUIET = 2.0
#: Every server, in the order they run. The ``+deflate`` ones accept compression and
#: run only with browser-like clients.
SERVERS = (
    "baseline", "baseline+deflate", "bridge", "bridge+deflate", "socketio", "channels", "nestjs",
)  # fmt: skip
#: The baselines of the ratio columns.
BASELINE_SERVERS = ("baseline", "socketio", "channels", "nestjs")

# The highest sustained rate.
#: A step is sustained if its publisher kept at least this share of the rate asked for.
RATE_KEPT = 0.95
#: Percent of a core from which a process or a core counts as saturated.
SATURATED = 90.0
#: Bisect between the highest passing and the lowest failing step while they are
#: further apart than this factor, at most MAX_BISECTIONS times.
BISECT_ABOVE = 1.5
MAX_BISECTIONS = 2
#: A ladder step publishes at least this many events, however low its rate.
MIN_STEP_EVENTS = 5
#: Longest wait for ``build.sh`` of the NestJS baseline (``npm ci`` on a fresh clone).
BUILD_TIMEOUT = 600
#: What ``versions()`` names beside websockets and aio-pika.
BENCH_PACKAGES = (
    "python-socketio", "python-engineio", "aiohttp", "channels", "daphne", "channels-redis",
    "redis",
)  # fmt: skip
REDIS_URL = "redis://127.0.0.1:6379/0"


# Command line


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure event delivery of the bridge against a bare websockets "
        "broadcast server, python-socketio, Django Channels and a NestJS socket.io gateway.",
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
        choices=SERVERS,
        default=list(SERVERS),
        help="servers to measure, in this order; one whose prerequisite is missing is skipped",
    )
    parser.add_argument(
        "--channels-rates",
        type=float,
        nargs="+",
        default=[10.0],
        help="events/s for Django Channels, which cannot keep up with more at 1,000 clients",
    )
    parser.add_argument(
        "--socketio-rates",
        type=float,
        nargs="+",
        default=[10.0, 40.0],
        help="events/s for python-socketio, whose core is saturated from 40 on at 1,000 clients",
    )
    parser.add_argument(
        "--channels-drain-timeout",
        type=float,
        default=8.0,
        help="longest wait for Channels' deliveries after publishing",
    )
    parser.add_argument("--redis", default=REDIS_URL, help="Redis of the Channels layer")
    parser.add_argument("--no-batch", action="store_true", help="skip the bridge's ?batch=1 mode")
    parser.add_argument("--pad", type=int, default=120, help="characters of padding per event")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="longest wait for deliveries after publishing",
    )
    parser.add_argument(
        "--amqp", default="amqp://guest:guest@127.0.0.1:5672", help="broker, without vhost"
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="handshakes in flight at once"
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=30.0,
        help="longest wait, before a scenario, for the last one's late frames to stop",
    )
    browser = parser.add_argument_group("browser-like clients (offering permessage-deflate)")
    browser.add_argument(
        "--browser-rate",
        type=float,
        default=40.0,
        help="events/s (a server's own highest rate if lower, as for Channels)",
    )
    browser.add_argument("--no-browser", dest="browser", action="store_false", help="skip them")
    ladder = parser.add_argument_group(
        "highest sustained rate: no loss, no duplicates, no client dropped, p99 under the limit"
    )
    ladder.add_argument(
        "--ladder-clients",
        type=int,
        nargs="*",
        default=[1000, 5000],
        help="client counts to find it for; at --clients it goes on from the --rates steps "
        "(nothing: skip the ladders)",
    )
    ladder.add_argument("--p99-limit", type=float, default=100.0, help="ms")
    ladder.add_argument("--step-duration", type=float, default=3.0, help="seconds per step")
    ladder.add_argument(
        "--step-drain",
        type=float,
        default=2.0,
        help="longest wait after a step's last publish; what is later counts as lost",
    )
    ladder.add_argument(
        "--ladder-min", type=float, default=0.625, help="lowest rate; steps are it x 2^k"
    )
    ladder.add_argument("--ladder-max", type=float, default=640.0, help="highest rate tried")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or min(args.rates) <= 0:
        parser.error("--clients, --duration and --rates must be positive")
    if any(n < 1 for n in args.ladder_clients) or args.ladder_min <= 0:
        parser.error("--ladder-clients and --ladder-min must be positive")
    args.ladder_clients = sorted(set(args.ladder_clients))
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
        f"{os.cpu_count()} cores, Linux {platform.release()}\n"
        f"baselines: {', '.join(_package_versions())}"
    )


def _package_versions() -> list[str]:
    """The baselines' packages (the bench group) and runtimes, where installed."""
    found = []
    for name in BENCH_PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            found.append(f"{name} not installed")
    node = shutil.which("node")
    if node is not None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            done = subprocess.run(  # noqa: S603 - fixed arguments
                [node, "--version"], capture_output=True, text=True, timeout=10, check=True
            )
            found.append(f"node {done.stdout.strip()}")
    with contextlib.suppress(Exception):  # no Redis, or no redis package: not measured either
        found.append(f"Redis server {asyncio.run(_redis_version(REDIS_URL))}")
    return found


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
    #: Its clients: plain WebSocket (``Client``) or socket.io (``SioRecorder``).
    socketio: bool = False
    namespace: str = "/"
    event: str = "event"
    #: How events reach it: ``amqp`` (``amqp_feeder.py``), ``http`` (``http_feeder.py``)
    #: or its own ``feeder`` command (the socketio emitter, Channels' ``group_send``).
    feed: str = "amqp"
    feeder: tuple[str, ...] = ()
    #: Rates and drain timeout of its own, instead of ``--rates`` and ``--drain-timeout``.
    rates: tuple[float, ...] | None = None
    drain_timeout: float | None = None
    #: Runs only with browser-like clients: a variant that accepts compression.
    browser_only: bool = False
    #: Its Channels layer keeps keys in Redis, to delete afterwards.
    redis: bool = False
    #: Measured with browser-like clients too (Channels is not: Daphne declines
    #: compression, and its one rate takes long).
    browser: bool = True


@dataclass
class Lag:
    """Whether a server left deliveries missing at the end of its last scenario."""

    behind: bool = False


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    port: int
    #: The first line it printed: what it is, and its versions.
    announce: str = ""
    lag: Lag = field(default_factory=Lag)


def server_specs(
    broker_url: str, state_dir: Path, args: Namespace, redis_prefix: str
) -> dict[str, ServerSpec]:
    bin_dir = Path(sys.executable).parent
    bridge = (
        str(bin_dir / "event-bridge"),
        "serve",
        *("--port", "0", "--broker", broker_url, "--instance", BRIDGE_INSTANCE),
        *("--jwt-secret", JWT_SECRET, "--allow-anonymous", "--state-dir", str(state_dir)),
        # Thousands of clients from this one machine: the per-address bound is for strangers.
        *("--max-connections-per-ip", "0"),
        # The example project's catalog, whose dashboard:update types the events sent: the
        # bridge validates each one as a project's bridge would.
        *("--catalog", "api_rest.events:catalog"),
    )
    baseline = (sys.executable, str(HERE / "baseline_broadcast.py"), "--port", "0")
    batch = not args.no_batch
    layer = ("--redis", args.redis, "--prefix", redis_prefix)
    broker = ("--broker", broker_url)
    return {
        "baseline": ServerSpec("baseline", (*baseline, *broker)),
        "baseline+deflate": ServerSpec(
            "baseline+deflate",
            (*baseline, *broker, "--compression", "deflate"),
            browser_only=True,
        ),
        "bridge": ServerSpec(
            "bridge",
            bridge,
            health="/api/health",
            batch_modes=(False, True) if batch else (False,),
            queue=instance_queue(BRIDGE_INSTANCE).name,
        ),
        "bridge+deflate": ServerSpec(
            "bridge+deflate",
            (*bridge, "--compression"),
            health="/api/health",
            queue=instance_queue(BRIDGE_INSTANCE).name,
            browser_only=True,
        ),
        "socketio": ServerSpec(
            "socketio",
            (sys.executable, str(BASELINES / "socketio_server.py"), "--port", "0", *broker),
            socketio=True,
            feed="own",
            feeder=(sys.executable, str(BASELINES / "socketio_emitter.py"), *broker),
            rates=tuple(args.socketio_rates),
        ),
        "channels": ServerSpec(
            "channels",
            (
                sys.executable,
                str(BASELINES / "channels_server" / "serve.py"),
                "--port",
                "0",
                *layer,
            ),
            feed="own",
            feeder=(sys.executable, str(BASELINES / "channels_publisher.py"), *layer),
            rates=tuple(args.channels_rates),
            drain_timeout=args.channels_drain_timeout,
            redis=True,
            browser=False,
        ),
        "nestjs": ServerSpec(
            "nestjs",
            ("node", str(BASELINES / "nestjs" / "dist" / "main.js"), "--port", "0"),
            health="/api/health",
            socketio=True,
            namespace="/ws",
            event="business:event",
            feed="http",
        ),
    }


def missing_prerequisite(name: str, args: Namespace) -> str | None:
    """Why ``name`` cannot run here, or None if it can."""
    if name in ("socketio", "channels"):
        modules = ("socketio", "aiohttp") if name == "socketio" else ("channels", "daphne", "redis")
        for module in modules:
            try:
                __import__(module)
            except ImportError:
                return f"python package {module} is missing (uv run --group bench)"
    if name == "channels":
        try:
            asyncio.run(_redis_ping(args.redis))
        except Exception as exc:  # any failure means no usable Redis
            return f"no Redis at {args.redis}: {exc}"
    if name == "nestjs":
        if shutil.which("node") is None or shutil.which("npm") is None:
            return "node and npm are not on the PATH (Node >= 20 needed)"
        build = BASELINES / "nestjs" / "build.sh"
        progress(f"nestjs: {build}")
        try:
            subprocess.run([str(build)], check=True, timeout=BUILD_TIMEOUT, capture_output=True)  # noqa: S603 - fixed arguments
        except subprocess.CalledProcessError as exc:
            return f"build.sh failed: {exc.stderr.decode(errors='replace')[-500:]}"
        except (subprocess.SubprocessError, OSError) as exc:
            return f"build.sh failed: {exc}"
    return None


async def _redis_version(url: str) -> str:
    import redis.asyncio as aioredis  # noqa: PLC0415 - only with the bench group

    client = aioredis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        return str((await client.info("server"))["redis_version"])
    finally:
        await client.aclose()


async def _redis_ping(url: str) -> None:
    import redis.asyncio as aioredis  # noqa: PLC0415 - only with the bench group

    client = aioredis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def forget_redis_keys(url: str, prefix: str) -> None:
    """Delete the Channels layer's keys of this run (its group would last a day otherwise)."""
    import redis.asyncio as aioredis  # noqa: PLC0415 - only with the bench group

    client = aioredis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def served(spec: ServerSpec, log_path: Path) -> AsyncIterator[Running]:
    """Start ``spec`` on the server core; stop it (SIGTERM, then SIGKILL) afterwards."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            "taskset", "-c", str(SERVER_CORE), *spec.command,
            stdout=subprocess.PIPE, stderr=log, env=SERVER_ENV,
        )  # fmt: skip
        discard: asyncio.Task[None] | None = None
        try:
            port, announce = await _read_port(proc, log_path)
            # Read whatever else it prints, so its stdout never blocks it.
            discard = asyncio.create_task(_discard(proc))
            if spec.health is not None:
                await _wait_healthy(port, spec.health)
            try:
                yield Running(spec.name, proc.pid, port, announce)
            except ServerGone as exc:
                raise ServerGone(f"{spec.name} exited: {exc}\n{_tail(log_path)}") from None
        finally:
            if discard is not None:
                discard.cancel()
            await _stop(proc)


async def _read_port(proc: asyncio.subprocess.Process, log_path: Path) -> tuple[int, str]:
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), SERVER_START_TIMEOUT)
    except TimeoutError:
        line = b""
    found = re.search(rb"ws://[\w.\[\]:]+?:(\d+)/ws", line)
    if found is None:
        await _stop(proc)
        raise RuntimeError(f"server did not start: {line!r}\n{_tail(log_path)}")
    return int(found[1]), line.decode(errors="replace").strip()


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
        kind = str(json.loads(message).get("type", ""))
        if kind == "bridge:welcome" and not self.ready.done():
            # The bridge holds live events until a client's first message.
            self._send(_PING_OP)
            self.ready.set_result(None)


async def connect_clients(
    port: int, count: int, path: str, concurrency: int, *, deflate: bool = False
) -> list[Client]:
    """Connect ``count`` clients, ``concurrency`` handshakes at a time; drop those that fail.

    ``deflate``: they offer permessage-deflate, as browsers do.
    """
    gate = asyncio.Semaphore(concurrency)
    failures: Counter[str] = Counter()

    async def one() -> Client | None:
        async with gate:
            client = Client(port, path, deflate=deflate)
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await client.open()
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

    clients = [c for c in await asyncio.gather(*(one() for _ in range(count))) if c is not None]
    if failures:
        progress(f"  {count - len(clients)} of {count} clients could not connect: {dict(failures)}")
    if not clients:
        raise RuntimeError("no client could connect")
    return clients


async def close_clients(clients: Sequence[AnyClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients))


# The feeders


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
                raise RuntimeError(f"feeder did not start: {ready!r}\n{_tail(log_path)}")
            yield Feeder(proc, pad, confirms=confirms)
            assert proc.stdin is not None
            proc.stdin.close()
            with contextlib.suppress(TimeoutError):
                done = await asyncio.wait_for(proc.stdout.readline(), SERVER_STOP_TIMEOUT)
                progress(f"  feeder: {done.decode(errors='replace').strip()}")
        finally:
            await _stop(proc)


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


# Scenarios


class Offer(enum.StrEnum):
    """What the clients of a scenario offer in their handshake."""

    PLAIN = "plain"
    #: ``permessage-deflate; client_max_window_bits``, as every browser does.
    DEFLATE = "deflate"


class Kind(enum.StrEnum):
    """Why a scenario ran: which table its row goes to."""

    FIXED = "fixed"  # one of --rates, plain clients
    BROWSER = "browser"  # --browser-rate, browser-like clients
    STEP = "step"  # a step of the highest-sustained-rate ladder


@dataclass(frozen=True)
class Scenario:
    server: str
    batch: bool
    rate: float
    offer: Offer = Offer.PLAIN
    kind: Kind = Kind.FIXED


@dataclass(frozen=True)
class Reading:
    """CPU time of the server and of this process, and the cores' counters, at one moment."""

    server: float
    generator: float
    cores: dict[int, tuple[int, int]]
    wall: float

    @classmethod
    def take(cls, pid: int, feeders: Sequence[int] = ()) -> Reading:
        """``feeders``: processes on the generator's core whose CPU counts as the generator's."""
        here = process_cpu_seconds(os.getpid())
        for feeder in feeders:
            with contextlib.suppress(ServerGone):
                here += process_cpu_seconds(feeder)
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

    @property
    def server_percent(self) -> float:
        return 100 * self.server / self.seconds if self.seconds else 0.0

    @property
    def generator_percent(self) -> float:
        return 100 * self.generator / self.seconds if self.seconds else 0.0


@dataclass
class Result:
    scenario: Scenario
    clients: int
    #: Clients that negotiated permessage-deflate.
    accepted: int
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
    #: The server was still sending an earlier scenario's events when this one began.
    backlog: bool = False

    def percentile(self, q: float) -> float:
        values = self.latencies_ms
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.usage.server / self.delivered if self.delivered else float("nan")


async def drain(clients: Sequence[AnyClient], expected: int, longest: float) -> None:
    """Wait until every open client has every event, nothing arrives any more, or ``longest``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + longest
    total, changed = -1, loop.time()
    # Cheap enough for 5,000 clients: one sum per poll, the full check only once the
    # total is there (it is not, if some event came twice and another not at all).
    everything = expected * len(clients)
    while loop.time() < deadline:
        now_total = sum(len(c.records) for c in clients)
        if now_total >= everything and all(len(c.records) >= expected for c in clients):
            return
        if now_total != total:
            total, changed = now_total, loop.time()
        elif loop.time() - changed > QUIET_PERIOD:
            return
        await asyncio.sleep(0.02)


async def settle(clients: Sequence[AnyClient], longest: float, quiet: float) -> bool:
    """Wait until no frame has arrived for ``quiet`` seconds (True), or ``longest`` (False).

    A server that fell behind is still sending the last scenario's events (ignored:
    another run); the next scenario starts once it is done, or it would pay for them.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + longest
    total, changed = -1, loop.time()
    while loop.time() < deadline:
        now_total = sum(c.frames for c in clients)
        if now_total != total:
            total, changed = now_total, loop.time()
        elif loop.time() - changed >= quiet:
            return True
        await asyncio.sleep(0.05)
    progress(f"  still receiving after {longest:g} s; going on")
    return False


async def run_scenario(
    server: Running,
    clients: Sequence[AnyClient],
    pub: Feeder,
    scenario: Scenario,
    duration: float,
    drain_timeout: float,
) -> Result:
    run = uuid.uuid4().hex[:12]
    live = [c for c in clients if c.is_open]
    for client in live:
        client.begin(run.encode())
    before = Reading.take(server.pid, pub.pids)
    published = await pub.run(run, scenario.rate, duration)
    await drain(live, published.attempted, drain_timeout)
    usage = Usage.between(before, Reading.take(server.pid, pub.pids))
    return summarize(scenario, live, published, before.wall, usage)


def summarize(
    scenario: Scenario,
    clients: Sequence[AnyClient],
    published: Published,
    started: float,
    usage: Usage,
) -> Result:
    """``clients``: those open when the scenario began; one the server drops counts."""
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
    # The benchmark closes its clients only after the group: these the server closed.
    gone = [c for c in clients if c.lost.done() or c.close_code is not None]
    return Result(
        scenario=scenario,
        clients=len(clients),
        accepted=sum(c.compressed for c in clients),
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


@dataclass
class Group:
    """Clients connected to one server, and how to run scenarios on them."""

    server: Running
    spec: ServerSpec
    feeder: Feeder
    clients: Sequence[AnyClient]
    batch: bool
    offer: Offer
    args: Namespace

    async def run(
        self, rate: float, kind: Kind, duration: float | None = None, drain: float | None = None
    ) -> Result:
        args = self.args
        lag = self.server.lag
        # A server that left deliveries missing may send them in bursts: wait longer.
        pause = BEHIND_QUIET if lag.behind else SETTLE_QUIET
        quiet = await settle(self.clients, args.settle_timeout, pause)
        scenario = Scenario(self.server.name, self.batch, rate, self.offer, kind)
        result = await run_scenario(
            self.server,
            self.clients,
            self.feeder,
            scenario,
            duration or args.duration,
            drain or self.spec.drain_timeout or args.drain_timeout,
        )
        result.backlog = not quiet
        lag.behind = result.loss > 0
        line = f"  {len(self.clients)} clients {kind}: " + summary_line(result)
        if self.spec.feed == "amqp":
            # A stall in RabbitMQ (a quorum queue waits for its disk) shows here first.
            line += f"  slowest confirm={1000 * result.published.slowest_confirm:.1f} ms"
        progress(line)
        return result


@contextlib.asynccontextmanager
async def connected(
    server: Running,
    spec: ServerSpec,
    feeder: Feeder,
    args: Namespace,
    *,
    count: int,
    batch: bool = False,
    offer: Offer = Offer.PLAIN,
) -> AsyncIterator[Group]:
    """Connect ``count`` clients, warm up (at most 20 events/s), close them afterwards."""
    deflate = offer == Offer.DEFLATE
    label = f"{server.name}{' batch=1' if batch else ''} {offer}"
    progress(f"{label}: connecting {count} clients")
    started = time.monotonic()
    clients: Sequence[AnyClient]
    if spec.socketio:
        clients = await connect_sio_clients(
            server.port, count, spec.namespace, spec.event, args.connect_concurrency,
            deflate=deflate,
        )  # fmt: skip
    else:
        path = "/ws?batch=1" if batch else "/ws"
        clients = await connect_clients(
            server.port, count, path, args.connect_concurrency, deflate=deflate
        )
    progress(f"  connected in {time.monotonic() - started:.1f} s")
    group = Group(server, spec, feeder, clients, batch, offer, args)
    try:
        # The pongs to the clients' pings; python-socketio binds its queue on the first connection.
        await asyncio.sleep(1.0)
        warmup = Scenario(server.name, batch, min(20.0, *(spec.rates or args.rates)), offer)
        done = await run_scenario(
            server, clients, feeder, warmup, 0.5, min(5.0, spec.drain_timeout or args.drain_timeout)
        )
        server.lag.behind |= done.loss > 0
        yield group
    finally:
        progress(f"{label}: closing clients")
        await close_clients(clients)


# The highest sustained rate


def sustained(result: Result, p99_limit: float) -> list[str]:
    """Why ``result`` is not a sustained rate; empty if it is."""
    why = []
    if result.published.failed:
        why.append(f"{result.published.failed} not sent")
    elif result.published.rate < RATE_KEPT * result.scenario.rate:
        why.append(f"sent {result.published.rate:.1f}/s")
    if result.loss:
        why.append(f"loss {result.loss}")
    if result.duplicates:
        why.append(f"dup {result.duplicates}")
    if result.dropped:
        why.append(f"dropped {result.dropped}")
    if not result.percentile(0.99) < p99_limit:
        why.append(f"p99 {result.percentile(0.99):.0f} ms")
    return why


def stopped_by(result: Result, p99_limit: float) -> str:
    """Which side held back the first step that was not sustained, from both cores' load."""
    usage = result.usage
    core0, core1 = usage.loads[:2]
    server, generator = usage.server_percent, usage.generator_percent
    short = result.published.failed or result.published.rate < RATE_KEPT * result.scenario.rate
    causes = (
        (server >= SATURATED, f"server: its process {server:.0f} % of a core"),
        (
            core0 >= SATURATED,
            f"server's core: core0 {core0:.0f} % (server {server:.0f} %, the rest others)",
        ),
        (
            generator >= SATURATED,
            f"load generator: gen {generator:.0f} %, core1 {core1:.0f} % (server {server:.0f} %)",
        ),
        (
            core1 >= SATURATED,
            f"load generator's core: core1 {core1:.0f} % (gen {generator:.0f} %, the rest "
            f"others; server {server:.0f} %)",
        ),
        (short, f"the feeder: {', '.join(sustained(result, float('inf')))} (no core saturated)"),
        (
            1000 * result.published.slowest_confirm >= p99_limit,
            f"RabbitMQ: a publish waited {1000 * result.published.slowest_confirm:.0f} ms for "
            f"its confirm, no core saturated (core0 {core0:.0f} %, core1 {core1:.0f} %): disk?",
        ),
    )
    return next(
        (text for matched, text in causes if matched),
        f"neither core saturated (core0 {core0:.0f} %, core1 {core1:.0f} %): something else",
    )


@dataclass
class Ladder:
    """The highest-sustained-rate steps of one server at one number of clients."""

    server: str
    clients: int
    steps: list[Result] = field(default_factory=list)
    #: Why the ladder did not run, or did not finish.
    note: str = ""

    def verdicts(self, p99_limit: float) -> list[tuple[Result, list[str]]]:
        return [(r, sustained(r, p99_limit)) for r in self.steps]

    def best(self, p99_limit: float) -> Result | None:
        """The highest passing step below the lowest failing one."""
        failing = self.first_failure(p99_limit)
        ceiling = failing.scenario.rate if failing is not None else float("inf")
        passing = [r for r, why in self.verdicts(p99_limit) if not why]
        below = [r for r in passing if r.scenario.rate < ceiling]
        return max(below, key=lambda r: r.scenario.rate, default=None)

    def first_failure(self, p99_limit: float) -> Result | None:
        failing = [r for r, why in self.verdicts(p99_limit) if why]
        return min(failing, key=lambda r: r.scenario.rate, default=None)


def next_rate(ladder: Ladder, args: Namespace) -> float | None:
    """The next step: double until a step fails, then bisect below it (at most twice).

    If the first step fails, halve down to ``--ladder-min``. None when done.
    """
    rates = {r.scenario.rate for r in ladder.steps}
    failing = ladder.first_failure(args.p99_limit)
    best = ladder.best(args.p99_limit)
    if failing is None:
        up = 2 * max(rates)
        return up if up <= args.ladder_max else None
    low = failing.scenario.rate
    if best is None:
        down = min(rates) / 2
        return down if down >= args.ladder_min else None
    high = best.scenario.rate
    bisections = len(rates - _grid(args))
    middle = round((high + low) / 2, 3)
    if low / high > BISECT_ABOVE and bisections < MAX_BISECTIONS and middle not in rates:
        return middle
    return None


def _grid(args: Namespace) -> set[float]:
    """The doubling rates: --ladder-min x 2^k, and --rates."""
    rates = {args.ladder_min * 2**k for k in range(16)}
    return rates | set(args.rates)


def start_rate(best: float | None, measured_at: int, clients: int, args: Namespace) -> float:
    """A first step for ``clients``: the doubling rate at or below what the same
    deliveries per second as ``best`` at ``measured_at`` clients would be."""
    rate: float = args.ladder_min
    if best is None:
        return rate
    target = best * measured_at / clients
    while rate * 2 <= target:
        rate *= 2
    return rate


async def climb(group: Group, ladder: Ladder) -> None:
    """Run ladder steps on ``group``'s clients after those already in ``ladder``."""
    args = group.args
    while (rate := next_rate(ladder, args)) is not None:
        duration = max(args.step_duration, MIN_STEP_EVENTS / rate)
        ladder.steps.append(await group.run(rate, Kind.STEP, duration, args.step_drain))


# One server


@dataclass
class Outcome:
    results: list[Result] = field(default_factory=list)
    ladders: list[Ladder] = field(default_factory=list)
    #: The first line each server printed.
    announces: dict[str, str] = field(default_factory=dict)
    #: Servers not measured (or not to the end), and why.
    skipped: dict[str, str] = field(default_factory=dict)


async def measure(
    server: Running, spec: ServerSpec, feeder: Feeder, args: Namespace, outcome: Outcome
) -> None:
    """Every scenario of one server: fixed rates, browser-like clients, the ladders.

    The ladder at ``--clients`` goes on from the fixed rates, on the same clients.
    """
    rates = spec.rates or args.rates
    ladders = [] if spec.browser_only else list(dict.fromkeys(args.ladder_clients))
    for batch in () if spec.browser_only else spec.batch_modes:
        async with connected(server, spec, feeder, args, count=args.clients, batch=batch) as group:
            ladder = Ladder(server.name, len(group.clients))
            climbing = not batch and args.clients in ladders
            for rate in sorted(rates):
                result = await group.run(rate, Kind.FIXED)
                outcome.results.append(result)
                if climbing:
                    ladder.steps.append(result)
                    if sustained(result, args.p99_limit):
                        # Bisect or step down now, before the higher fixed rates leave
                        # a backlog behind that the next steps would pay for.
                        await climb(group, ladder)
                        climbing = False
            if climbing:
                await climb(group, ladder)
            if ladder.steps:
                outcome.ladders.append(ladder)
    if args.browser and spec.browser:
        # The rate the plain clients had, to compare with: --browser-rate, or the
        # highest of a server's own rates (Channels) if that is lower.
        rate = min(args.browser_rate, max(rates))
        async with connected(
            server, spec, feeder, args, count=args.clients, offer=Offer.DEFLATE
        ) as group:
            outcome.results.append(await group.run(rate, Kind.BROWSER))
    for count in ladders:
        if count == args.clients:
            continue
        await climb_at(server, spec, feeder, args, outcome, count)


async def climb_at(
    server: Running,
    spec: ServerSpec,
    feeder: Feeder,
    args: Namespace,
    outcome: Outcome,
    count: int,
) -> None:
    """The ladder at ``count`` clients, from what the ladder at ``--clients`` found."""
    before = max(
        (x for x in outcome.ladders if x.server == server.name and x.clients < count and x.steps),
        key=lambda x: x.clients,
        default=None,
    )
    best = before.best(args.p99_limit) if before is not None else None
    ladder = Ladder(server.name, count)
    outcome.ladders.append(ladder)
    if before is not None and best is None:
        ladder.note = f"not run: no rate sustained at {before.clients} clients, so none at {count}"
        progress(f"{server.name}: {count} clients {ladder.note}")
        return
    rate = start_rate(best.scenario.rate if best else None, before.clients if before else count,
                      count, args)  # fmt: skip
    async with connected(server, spec, feeder, args, count=count) as group:
        if len(group.clients) < count:
            ladder.note = f"only {len(group.clients)} of {count} clients connected"
        ladder.clients = len(group.clients)
        duration = max(args.step_duration, MIN_STEP_EVENTS / rate)
        ladder.steps.append(await group.run(rate, Kind.STEP, duration, args.step_drain))
        await climb(group, ladder)


@contextlib.asynccontextmanager
async def feeder_for(
    spec: ServerSpec, server: Running, broker_url: str, args: Namespace, workdir: Path
) -> AsyncIterator[Feeder]:
    """``spec``'s feeder process, on this process's core (it inherits the affinity)."""
    command = {
        "amqp": (sys.executable, str(BASELINES / "amqp_feeder.py"), "--broker", broker_url),
        "http": (sys.executable, str(BASELINES / "http_feeder.py"), "--port", str(server.port)),
        "own": spec.feeder,
    }[spec.feed]
    log_path = workdir / f"{spec.name}-feeder.log"
    async with feeder_process(command, args.pad, log_path, confirms=spec.feed == "amqp") as feeder:
        cores = sorted(os.sched_getaffinity(feeder.pids[0]))
        progress(f"  feeder pid {feeder.pids[0]}, cores {cores}")
        yield feeder


async def bench(args: Namespace, broker_url: str, workdir: Path, outcome: Outcome) -> None:
    task = asyncio.current_task()
    assert task is not None
    # Our own handlers: SIGINT may arrive ignored (a background job), and SIGTERM must clean up.
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    redis_prefix = VHOST_PREFIX + uuid.uuid4().hex[:8]
    specs = server_specs(broker_url, workdir / "state", args, redis_prefix)
    async with broker(broker_url) as pub:
        for name in args.servers:
            spec = specs[name]
            if spec.browser_only and not args.browser:
                continue
            started = time.monotonic()
            try:
                async with served(spec, workdir / f"{name}.log") as server:
                    outcome.announces[name] = server.announce
                    affinity = sorted(os.sched_getaffinity(server.pid))
                    progress(f"{name}: pid {server.pid} on port {server.port}, cores {affinity}")
                    async with feeder_for(spec, server, broker_url, args, workdir) as feeder:
                        await measure(server, spec, feeder, args, outcome)
            except (RuntimeError, OSError, TimeoutError) as exc:
                # One failing server should not cost the others' numbers.
                outcome.skipped[name] = f"failed: {exc}"
                progress(f"{name}: FAILED: {exc}")
            finally:
                if spec.queue is not None:
                    # Otherwise it would keep storing every event of the servers measured next.
                    await pub.delete_queue(spec.queue)
                if spec.redis:
                    await forget_redis_keys(args.redis, redis_prefix)
                progress(f"{name}: {time.monotonic() - started:.0f} s")


# Output


HEADERS = (
    "server", "batch", "offer", "accepted", "rate", "pub/s", "clients", "frames/s", "events/s",
    "loss", "dup", "dropped", "p50 ms", "p99 ms", "max ms", "µs/event", "server %", "gen %",
    "core0 %", "core1 %",
)  # fmt: skip
#: Left-aligned columns of every table: the names.
TEXT_COLUMNS = {"server", "batch", "offer", "from", "sustained", "stopped by", "first failure"}
TITLES = {
    Kind.FIXED: "Plain clients at fixed rates",
    Kind.BROWSER: "Browser-like clients, offering permessage-deflate",
    "steps": "Highest sustained rate: every step",
    "ladders": "Highest sustained rate",
}


def row(result: Result) -> list[str]:
    s = result.scenario
    return [
        s.server,
        "on" if s.batch else "off",
        s.offer,
        "-" if s.offer == Offer.PLAIN else str(result.accepted),
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
        f"{result.usage.server_percent:.0f}",
        f"{result.usage.generator_percent:.0f}",
        *(f"{load:.0f}" for load in result.usage.loads[:2]),
    ]


def summary_line(result: Result) -> str:
    return "  ".join(f"{h}={c}" for h, c in zip(HEADERS, row(result), strict=True))


def _ratio(value: float, base: float | None) -> str:
    ok = base is not None and base > 0 and not math.isnan(value)
    return f"{value / base:.2f}" if ok else "-"  # type: ignore[operator]


def ratio_columns(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    """``/plain``: each row's µs/event / the same server's with plain clients, one frame
    per event, at the same rate (``bridge+deflate``: ``bridge``'s). ``/NAME``, per
    baseline that ran: / NAME's with the same clients at the same rate."""
    names = [n for n in BASELINE_SERVERS if any(r.scenario.server == n for r in results)]
    bases = {
        (r.scenario.server, r.scenario.offer, r.scenario.rate): r.cpu_us_per_event
        for r in results
        if not r.scenario.batch and r.delivered
    }
    cells = []
    for result in results:
        s, value = result.scenario, result.cpu_us_per_event
        line = [_ratio(value, bases.get((s.server.split("+")[0], Offer.PLAIN, s.rate)))]
        line += [_ratio(value, bases.get((name, s.offer, s.rate))) for name in names]
        cells.append(line)
    return ["/plain", *(f"/{name}" for name in names)], cells


def render(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """An aligned table: names to the left, numbers to the right, a rule of dashes."""
    everything = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in everything) for i in range(len(headers))]
    left = [h in TEXT_COLUMNS for h in headers]
    lines = [
        "  ".join(
            c.ljust(w) if is_left else c.rjust(w)
            for c, w, is_left in zip(cells, widths, left, strict=True)
        ).rstrip()
        for cells in everything
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def results_table(results: list[Result], kind: Kind) -> str | None:
    """The rows of ``kind``, with ratios taken among all fixed and browser-like rows."""
    compared = [r for r in results if r.scenario.kind in (Kind.FIXED, Kind.BROWSER)]
    extra, cells = ratio_columns(compared)
    rows = [row(r) + c for r, c in zip(compared, cells, strict=True) if r.scenario.kind == kind]
    return render([*HEADERS, *extra], rows) if rows else None


STEP_HEADERS = (
    "server", "clients", "rate", "from", "pub/s", "events/s", "loss", "dup", "dropped",
    "p50 ms", "p99 ms", "µs/event", "server %", "gen %", "core0 %", "core1 %", "sustained",
)  # fmt: skip


def steps_table(ladders: list[Ladder], p99_limit: float) -> str | None:
    rows = []
    for ladder in ladders:
        for r, why in sorted(ladder.verdicts(p99_limit), key=lambda rw: rw[0].scenario.rate):
            cells = row(r)
            verdict = "yes" if not why else "no: " + ", ".join(why)
            rows.append([
                r.scenario.server, str(r.clients), f"{r.scenario.rate:g}",
                "fixed" if r.scenario.kind == Kind.FIXED else "step",
                *cells[5:6], *cells[8:14], *cells[15:],
                verdict + (" (after a backlog)" if r.backlog else ""),
            ])  # fmt: skip
    return render(STEP_HEADERS, rows) if rows else None


LADDER_HEADERS = (
    "server", "clients", "max rate", "events/s", "p99 ms", "first failure", "stopped by",
    "/baseline", "/nestjs",
)  # fmt: skip


def ladders_table(ladders: list[Ladder], p99_limit: float) -> str | None:
    """Per server and client count: the highest sustained rate and what stopped it."""
    best = {(x.server, x.clients): x.best(p99_limit) for x in ladders}
    by_count = {(x.server, _nominal(x, ladders)): best[(x.server, x.clients)] for x in ladders}
    rows = []
    for ladder in ladders:
        top = best[(ladder.server, ladder.clients)]
        failing = ladder.first_failure(p99_limit)
        if not ladder.steps:
            rate = events = p99 = "-"
            failure, stopped = ladder.note, "-"
        else:
            floor = min(r.scenario.rate for r in ladder.steps)
            rate = f"{top.scenario.rate:g}" if top else f"< {floor:g}"
            events = f"{top.delivered / top.seconds:,.0f}" if top else "-"
            p99 = f"{top.percentile(0.99):.1f}" if top else "-"
            if failing is None:
                failure, stopped = "none up to --ladder-max", "-"
            else:
                why = ", ".join(sustained(failing, p99_limit))
                failure = f"{failing.scenario.rate:g}/s: {why}"
                stopped = stopped_by(failing, p99_limit)
            if ladder.note:
                failure = f"{failure} ({ladder.note})"
        value = top.scenario.rate if top else 0.0
        count = _nominal(ladder, ladders)
        ratios = []
        for name in ("baseline", "nestjs"):
            base = by_count.get((name, count))
            ratios.append(_ratio(value, base.scenario.rate) if base and top else "-")
        rows.append([ladder.server, str(ladder.clients), rate, events, p99, failure, stopped,
                     *ratios])  # fmt: skip
    return render(LADDER_HEADERS, rows) if rows else None


def _nominal(ladder: Ladder, ladders: list[Ladder]) -> int:
    """The client count asked for (a ladder may have connected a few fewer)."""
    return (
        ladder.clients
        if not ladder.steps
        else max(ladder.clients, min(r.clients for r in ladder.steps))
    )


def notes(outcome: Outcome) -> list[str]:
    lines = []
    for r in [*outcome.results, *(s for x in outcome.ladders for s in x.steps)]:
        s = r.scenario
        batch = " batch=1" if s.batch else ""
        where = f"  {s.server}{batch} {s.offer} {r.clients} clients at {s.rate:g}/s:"
        if r.published.failed:
            lines.append(f"{where} {r.published.failed} publishes were not confirmed")
        if r.close_codes:
            lines.append(f"{where} clients closed by the server, by code: {dict(r.close_codes)}")
    if FrameReader.untimed_reads:
        lines.append(
            f"  {FrameReader.untimed_reads} client reads came without a kernel receive "
            "timestamp: time.time() at the read was used for them"
        )
    return list(dict.fromkeys(lines))


LEGEND = """
rate: events/s asked for; pub/s: published and confirmed (NestJS: POSTs answered 202), per
  second from the first event's due time to the last one's send (a late feeder sends less).
offer: plain clients, or browser-like ones offering "permessage-deflate;
  client_max_window_bits" (they inflate what the server compresses); accepted: how many of
  them the server accepted compression for. baseline+deflate is the baseline with websockets'
  default compression="deflate", bridge+deflate the bridge with --compression: what asking
  for compression costs. The others are as shipped (the bridge declines by default);
  Channels is not measured with them (Daphne declines compression: see memory.py).
frames/s, events/s: received by all clients together, from the first publish to the last receipt.
loss, dup: events x clients missing or received twice; dropped: clients the server closed or lost.
p50/p99/max: receive time - sentAt, over every event at every client. Receive time is the
  kernel's (SO_TIMESTAMPNS on each client socket, CLOCK_REALTIME like sentAt, same machine):
  when the bytes reached the client's socket, not when the generator got round to reading
  them; for an event split over several reads, the read that completed its frame (the latest
  segment that read took). A generator that falls behind shows as loss or dropped clients
  (TCP flow control fills the server's buffers) and as gen %/core1 % >= {sat:.0f}. With
  ?batch=1 the bridge holds a batch client's frames for its batch window, in its latency.
µs/event: server CPU time (utime + stime, /proc/PID/stat, 10 ms ticks) per event delivered.
  RabbitMQ's and Redis's CPU is not in it: they are not pinned and serve every system.
/plain: µs/event of the row divided by the same server's with plain clients and one frame per
  event at the same rate. /NAME: divided by NAME's (one frame per event, the same offer) at the
  same rate; below 1 is less server CPU per delivered event than NAME. "-": none to divide by.
server %, gen %: CPU of the server and of the load generator, in % of one core; the generator
  is this process plus the server's feeder process on the same core (AMQP publisher, NestJS's
  POSTs, socketio emitter or Channels group_send), which keeps the schedule and stamps sentAt
  right before each write, so that this process's busy loop is not in the latency.
core0 %, core1 %: load of each core from /proc/stat, whoever used it: core0 % - server % and
  core1 % - gen % is RabbitMQ (not pinned) plus anything else running on the machine.
Highest sustained rate: a step is sustained with no loss, no duplicate, no client dropped,
  p99 under {p99:g} ms and at least {kept:.0%} of the rate published. At {clients} clients the
  fixed rates are its first steps, on the same clients (after the first that fails, the
  ladder's own steps run before the higher fixed rates); elsewhere they start at the doubling
  rate ({lo:g} x 2^k) nearest below the same deliveries/s as the highest sustained rate at
  fewer clients. Each step publishes for {step:g} s (at least {events} events) and waits at
  most {drain:g} s after its last publish: later deliveries count as lost. Rates double until
  a step fails, then the gap is bisected (at most {bisect} times); if the first step fails,
  they halve down to {lo:g}. "after a backlog": the server was still sending the step
  before's events {settle:g} s later. stopped by, at the lowest failing step: the server
  (its process, or its core with others, >= {sat:.0f} % busy), the load generator (it, or
  its core with others, >= {sat:.0f} % busy, the server's core not), the feeder (events not
  sent or late), RabbitMQ (a publisher confirm took
  longer than the p99 limit while no core was saturated), or none of these.
  /baseline, /nestjs: max rate divided by theirs at the same number of clients."""


def report(args: Namespace, outcome: Outcome, header: str, payload: int) -> None:
    print()
    print(header)
    for name, line in outcome.announces.items():
        print(f"  {name}: {line}")
    print(
        f"{args.clients} clients, {args.duration:g} s per rate, events of {payload} bytes, "
        f"server on core {SERVER_CORE}, load generator and feeders on core {GENERATOR_CORE}"
    )
    tables = {
        Kind.FIXED: results_table(outcome.results, Kind.FIXED),
        Kind.BROWSER: results_table(outcome.results, Kind.BROWSER),
        "steps": steps_table(outcome.ladders, args.p99_limit),
        "ladders": ladders_table(outcome.ladders, args.p99_limit),
    }
    for key, text in tables.items():
        if text is not None:
            print(f"\n{TITLES[key]}:\n{text}")
    if outcome.skipped:
        print("\nNot measured:")
        print("\n".join(f"  {name}: {why}" for name, why in outcome.skipped.items()))
    if lines := notes(outcome):
        print("\nNotes:")
        print("\n".join(lines))
    print(
        LEGEND.format(
            p99=args.p99_limit,
            kept=RATE_KEPT,
            clients=args.clients,
            lo=args.ladder_min,
            step=args.step_duration,
            events=MIN_STEP_EVENTS,
            settle=args.settle_timeout,
            drain=args.step_drain,
            bisect=MAX_BISECTIONS,
            sat=SATURATED,
        )
    )


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_core(GENERATOR_CORE)
    raise_open_files(max([args.clients, *args.ladder_clients]))
    header = versions() + "\n" + background_load()
    payload = len(event_body("0" * 12, 0, args.pad))
    progress(header)
    outcome = Outcome()
    for server in list(args.servers):
        base = server.split("+")[0]
        if (why := missing_prerequisite(base, args)) is not None:
            progress(f"{server}: skipped: {why}")
            outcome.skipped[server] = f"skipped: {why}"
            args.servers.remove(server)
    with vhost() as name, tempfile.TemporaryDirectory(prefix=VHOST_PREFIX) as tmp:
        progress(f"vhost {name}")
        try:
            asyncio.run(bench(args, f"{args.amqp}/{name}", Path(tmp), outcome))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("delivery: interrupted; cleaning up")
            return 130
    report(args, outcome, header, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
