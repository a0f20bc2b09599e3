"""Memory per idle WebSocket connection, and how many connections the bridge holds.

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    uv run --frozen --group bench python bench/memory.py               # 5,000 clients, all servers
    uv run --frozen --group bench python bench/memory.py --clients 1000 --servers bridge baseline
    uv run --frozen --group bench python bench/memory.py --capacity    # the bridge's capacity

Each server is started (as ``bench/delivery.py`` starts it: pinned to core 0, on a
vhost of this run) once per kind of client: plain clients, and browser-like clients
that offer ``permessage-deflate; client_max_window_bits``. ``--warmup`` clients
connect first, so that whatever a server sets up on its first connections is in
the "before" reading; then the rest connect, up to ``--clients`` in all. Memory
per connection is (VmRSS after - VmRSS before) / (clients - warmup), VmRSS from
``/proc/PID/status``, each read once it has stopped moving.

``--capacity`` opens idle connections to one bridge (its connection bounds lifted)
in steps, up to ``--capacity-max`` (100,000) or until something stops it, and names
what did; then it publishes ``--capacity-events`` events one at a time and times
each one's way to every client, from its publish to each client's kernel receive time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import re
import resource
import signal
import statistics
import sys
import tempfile
import time
import uuid
from argparse import Namespace
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from deliverybench.clients import Client, StreamClient
from deliverybench.constants import CONNECT_TIMEOUT, GENERATOR_CORE, HOST, SERVER_CORE, VHOST_PREFIX
from deliverybench.feeders import Feeder, feeder_for
from deliverybench.machine import ServerGone, pin_to_core, versions, vhost
from deliverybench.output import aligned
from deliverybench.progress import progress
from deliverybench.results import Reading, Usage
from deliverybench.servers import (
    Running,
    ServerSpec,
    forget_redis_keys,
    log_tail,
    missing_prerequisite,
    served,
    server_specs,
)
from sio_client import SioClient
from websockets.frames import Frame, Opcode

SERVERS = ("bridge", "bridge+sse", "baseline", "socketio", "channels", "nestjs")
#: VmRSS has settled once two readings this far apart differ by less than RSS_STABLE.
RSS_INTERVAL = 1.0
RSS_STABLE = 0.005
#: Longest wait for VmRSS to settle; a server that keeps moving is read after this.
RSS_SETTLE_TIMEOUT = 10.0
#: File descriptors this process and the servers need beside the connections.
SPARE_FILES = 1024
#: Capacity mode stops before MemAvailable falls below this share of MemTotal.
MEMORY_FLOOR = 0.10
#: Connections per source address in capacity mode: a socket bound to an address
#: takes one of its 28,232 ephemeral ports (32768-60999) whatever it connects to.
PORTS_PER_SOURCE = 25_000
#: Files capacity mode leaves free in the server and in this process beside their
#: connections: the server's log and AMQP reconnection, the feeder's pipes here.
FILES_MARGIN = 64
#: Longest wait for one event to reach every client, in seconds.
FAN_OUT_TIMEOUT = 60.0
#: Padding of the capacity mode's events, as delivery.py's default: 334 bytes each.
PAD = 120
#: Linux's CAP_SYS_RESOURCE: what raising a hard limit takes.
CAP_SYS_RESOURCE = 24


def parse_args(argv: Sequence[str] | None = None) -> Namespace:
    parser = argparse.ArgumentParser(
        description="Memory per idle connection of the bridge and the baselines, and the "
        "bridge's capacity.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=5000, help="idle clients per server")
    parser.add_argument(
        "--warmup", type=int, default=50, help="clients connected before the 'before' reading"
    )
    parser.add_argument(
        "--servers", nargs="+", choices=SERVERS, default=list(SERVERS), help="servers to measure"
    )
    parser.add_argument(
        "--connect-budget",
        type=float,
        default=90.0,
        help="seconds a server may take to accept all clients; a slower one is skipped",
    )
    parser.add_argument(
        "--capacity",
        action="store_true",
        help="instead: open idle connections to the bridge until something stops it",
    )
    parser.add_argument("--capacity-step", type=int, default=5000, help="connections per step")
    parser.add_argument("--capacity-max", type=int, default=100_000, help="stop here")
    parser.add_argument(
        "--capacity-events",
        type=int,
        default=5,
        help="events sent to every client, one at a time, once the connections are up",
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=100, help="handshakes in flight at once"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="Channels' Redis")
    parser.add_argument(
        "--amqp", default="amqp://guest:guest@127.0.0.1:5672", help="broker, without vhost"
    )
    args = parser.parse_args(argv)
    if args.clients <= args.warmup or args.warmup < 1:
        parser.error("--clients must exceed --warmup, which must be positive")
    # What deliverybench.servers.server_specs reads.
    args.no_batch = True
    args.channels_rates = [10.0]
    args.socketio_rates = [10.0, 40.0]
    args.channels_drain_timeout = 8.0
    # What deliverybench.feeders.feeder_for reads.
    args.pad = PAD
    return args


# The machine


@dataclass(frozen=True)
class OpenFiles:
    """This process's RLIMIT_NOFILE once raised, which the servers it starts inherit."""

    soft: int
    hard: int
    #: Why the limit is below what was asked for, if it is.
    refused: str = ""


def raise_open_files(wanted: int) -> OpenFiles:
    """Raise the soft and hard RLIMIT_NOFILE to ``wanted``; the servers inherit both.

    Raising the hard limit takes CAP_SYS_RESOURCE. Without it (not root, or a
    container that dropped it) the soft limit goes up to the hard one, and
    ``refused`` says why it goes no higher: the run then reports that limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    refused = ""
    if hard != resource.RLIM_INFINITY and hard < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
        except (ValueError, OSError) as exc:
            refused = f"raising it to {wanted:,} was refused ({exc}){_why_refused(wanted)}"
            wanted = hard
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return OpenFiles(*resource.getrlimit(resource.RLIMIT_NOFILE), refused=refused)


def _why_refused(wanted: int) -> str:
    """Why this process may not raise its hard limit to ``wanted``, from /proc."""
    caps = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("CapEff", "CapBnd"):
            caps[name] = int(value, 16) >> CAP_SYS_RESOURCE & 1
    if not caps.get("CapBnd", 1):
        return (
            ": CAP_SYS_RESOURCE is not in this process's capability bounding set, so no "
            "process started from here can raise it"
        )
    if not caps.get("CapEff", 1):
        return ": this process lacks CAP_SYS_RESOURCE (run it as root)"
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    return f": fs.nr_open is {nr_open:,}" if wanted > nr_open else ""


def files_limit(pid: int) -> int:
    """The soft RLIMIT_NOFILE of ``pid``, as the kernel holds it for that process."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return sys.maxsize if soft == "unlimited" else int(soft)
    raise ServerGone(f"process {pid} has no open-file limit")


def open_files(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except FileNotFoundError:
        raise ServerGone(f"process {pid} exited") from None


def rss_bytes(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        raise ServerGone(f"process {pid} exited") from None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ServerGone(f"process {pid} has no VmRSS")


def meminfo() -> dict[str, int]:
    values = {}
    for line in Path("/proc/meminfo").read_text().splitlines():
        name, _, rest = line.partition(":")
        values[name] = int(rest.split()[0]) * 1024
    return values


async def settled_rss(pid: int) -> int:
    """VmRSS once it stopped moving: the handshakes' garbage freed, Node's GC done.

    There is no event for "the server's memory is done changing", so this polls:
    two readings RSS_INTERVAL apart within RSS_STABLE of each other, at most
    RSS_SETTLE_TIMEOUT. The clients are idle then, so nothing else moves it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RSS_SETTLE_TIMEOUT
    previous = rss_bytes(pid)
    while loop.time() < deadline:
        await asyncio.sleep(RSS_INTERVAL)
        current = rss_bytes(pid)
        if abs(current - previous) <= RSS_STABLE * previous:
            return current
        previous = current
    return previous


# The clients


class Tally:
    """How many clients got the current event; :attr:`done` once all expected did.

    Each client counts itself as it records the event: at 100,000 clients, summing
    their records every few ms would take the load generator's core from reading.
    """

    def __init__(self) -> None:
        self.expect(0)

    def expect(self, count: int) -> None:
        self.count, self.expected = 0, count
        self.done: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def add(self) -> None:
        self.count += 1
        if self.count >= self.expected and not self.done.done():
            self.done.set_result(time.time())  # when the load generator read the last


class IdleClient(Client):
    """``deliverybench.clients.Client`` that needs no JSON of the server while idle.

    It counts as connected at the server's first text frame (the welcome, compressed
    or not), answers it with ``{"op": "ping"}`` as the delivery clients do (the
    bridge's subscriber is live from then on), and answers pings. With a ``tally``
    (capacity mode) it records the events of the current run as ``Client`` does and
    counts them there; without one it ignores whatever follows the welcome.
    """

    def __init__(self, port: int, path: str, *, deflate: bool, tally: Tally | None) -> None:
        super().__init__(port, path, deflate=deflate)
        self.tally = tally

    def _message(self, message: bytes | bytearray, now: float) -> None:
        if not self.welcomed.done():
            self._send(Frame(Opcode.TEXT, b'{"op": "ping"}'))
            self.welcomed.set_result(None)
        elif self.tally is not None:
            super()._message(message, now)

    def _record(self, event: re.Match[bytes] | None, now: float) -> bool:
        recorded = len(self.records)
        known = super()._record(event, now)
        if self.tally is not None and len(self.records) > recorded:
            self.tally.add()
        return known


class IdleStream(StreamClient):
    """An idle client of ``/sse``: connected at its welcome; a stream needs no answer."""

    def _message(self, message: bytes | bytearray, now: float) -> None:
        if not self.welcomed.done():
            self.welcomed.set_result(None)


Idle = IdleClient | IdleStream | SioClient


@dataclass
class Connected:
    clients: list[Idle] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)
    #: Set in capacity mode, whose plain clients then record events.
    tally: Tally | None = None

    def abort(self) -> None:
        for client in self.clients:
            client.abort()


async def connect_idle(
    spec: ServerSpec,
    port: int,
    count: int,
    *,
    deflate: bool,
    concurrency: int,
    into: Connected,
    sources: Sequence[str] = (HOST,),
) -> None:
    """Connect ``count`` more idle clients into ``into``; failures are counted there."""
    gate = asyncio.Semaphore(concurrency)
    start = len(into.clients) + sum(into.failures.values())

    async def one(index: int) -> None:
        source = (sources[index % len(sources)], 0)
        async with gate:
            try:
                if spec.socketio:
                    client: Idle = SioClient(
                        port, _ignore, deflate=deflate, namespace=spec.namespace, event=spec.event
                    )
                elif spec.sse:
                    client = IdleStream(port, "/sse")
                else:
                    client = IdleClient(port, "/ws", deflate=deflate, tally=into.tally)
                try:
                    async with asyncio.timeout(CONNECT_TIMEOUT):
                        await client.open(local_addr=source)
                        await (client.connected if spec.socketio else client.welcomed)  # type: ignore[union-attr]
                except BaseException:
                    client.abort()
                    raise
            except (OSError, TimeoutError) as exc:
                into.failures[str(exc) or type(exc).__name__] += 1
                return
            into.clients.append(client)

    await asyncio.gather(*(one(start + i) for i in range(count)))


def _ignore(data: bytes | bytearray, now: float) -> None:
    pass


def accepted_deflate(clients: Sequence[Idle]) -> int:
    return sum(bool(c.compressed) for c in clients)


# Memory per connection


@dataclass
class Row:
    server: str
    offer: str
    clients: int
    accepted: int
    before: int
    after: int
    measured: int
    connect_s: float
    failed: int = 0
    dropped: int = 0

    @property
    def per_connection(self) -> float:
        return (self.after - self.before) / self.measured


async def measure(spec: ServerSpec, server: Running, deflate: bool, args: Namespace) -> Row | str:
    """One server, one kind of client: a Row, or why it could not be measured."""
    label = f"{spec.name} {'deflate' if deflate else 'plain'}"
    connected = Connected()
    try:
        await connect_idle(
            spec,
            server.port,
            args.warmup,
            deflate=deflate,
            concurrency=args.connect_concurrency,
            into=connected,
            sources=MEASURE_SOURCES,
        )
        before = await settled_rss(server.pid)
        started = time.monotonic()
        rest = args.clients - args.warmup
        try:
            await asyncio.wait_for(
                connect_idle(
                    spec,
                    server.port,
                    rest,
                    deflate=deflate,
                    concurrency=args.connect_concurrency,
                    into=connected,
                    sources=MEASURE_SOURCES,
                ),
                args.connect_budget,
            )
        except TimeoutError:
            return (
                f"only {len(connected.clients)} of {args.clients} clients ({label}) connected "
                f"within --connect-budget {args.connect_budget:g} s"
            )
        took = time.monotonic() - started
        if connected.failures:
            progress(f"  {label}: connect failures: {dict(connected.failures)}")
        measured = len(connected.clients) - args.warmup
        if measured < 0.9 * rest:
            return f"only {len(connected.clients)} of {args.clients} clients ({label}) connected"
        after = await settled_rss(server.pid)
        # Still counted in the reading: the server may hold some of their memory.
        gone = sum(not c.is_open for c in connected.clients)
        row = Row(
            spec.name,
            "deflate" if deflate else "plain",
            len(connected.clients),
            accepted_deflate(connected.clients),
            before,
            after,
            measured,
            took,
            sum(connected.failures.values()),
            gone,
        )
        progress(
            f"  {label}: {row.clients} clients in {took:.1f} s, "
            f"{row.per_connection / 1024:.1f} KiB per connection"
        )
        return row
    finally:
        connected.abort()


# Capacity


@dataclass(frozen=True)
class Step:
    connections: int
    rss: int
    seconds: float
    #: Connections the step set out to open.
    tried: int


@dataclass(frozen=True)
class FanOut:
    """One event published to every client, and what it cost."""

    clients: int
    #: Publish to kernel receive time, in seconds, of each client that got it, sorted.
    latencies: list[float]
    usage: Usage
    #: From the publish request to the load generator's read of the last client, seconds.
    read_all: float

    def quantile(self, q: float) -> float:
        values = self.latencies
        return values[min(len(values) - 1, int(q * len(values)))] if values else math.nan


@dataclass
class Capacity:
    held: int = 0
    stopped_by: str = ""
    #: The server's soft RLIMIT_NOFILE, as /proc/PID/limits has it.
    server_files: int = 0
    #: The server's VmRSS, settled: before the first client, and with ``held``.
    start_rss: int = 0
    rss: int = 0
    generator_rss: int = 0
    steps: list[Step] = field(default_factory=list)
    fan_outs: list[FanOut] = field(default_factory=list)

    @property
    def per_connection(self) -> float:
        return (self.rss - self.start_rss) / self.held if self.held else math.nan


def capacity_spec(bridge: ServerSpec) -> ServerSpec:
    """The bridge bounded by nothing but its open files.

    Its ``--max-connections`` (``Limits.max_connections`` by default) would stop it
    first; ``--max-connections-per-ip 0`` is in every bench spec already.
    """
    return replace(bridge, command=(*bridge.command, "--max-connections", "0"))


#: Where measure()'s clients come from: a run connects some 55,000 clients, and
#: their closed ports wait a minute (TIME_WAIT) before reuse; from 127.0.0.1 alone
#: they used up its ephemeral ports, and rabbitmqctl, which needs one, failed after.
MEASURE_SOURCES = tuple(f"127.0.0.{i}" for i in range(2, 6))


def source_addresses(connections: int) -> tuple[str, ...]:
    """Loopback addresses with ports enough for ``connections`` clients, from 127.0.0.2.

    127.0.0.1's ports stay for everything else: the bridge's and the feeder's AMQP.
    """
    count = max(1, math.ceil(connections / PORTS_PER_SOURCE))
    return tuple(f"127.0.0.{i}" for i in range(2, 2 + count))


async def capacity(
    spec: ServerSpec, server: Running, feeder: Feeder, args: Namespace, files: OpenFiles
) -> Capacity:
    """Connections until something stops them, then ``--capacity-events`` fan-outs to all."""
    connected = Connected(tally=Tally())
    result = Capacity(server_files=files_limit(server.pid))
    try:
        result.start_rss = await settled_rss(server.pid)
        result.stopped_by = await fill(spec, server, args, files, connected, result)
        progress(f"  stopped by {result.stopped_by}")
        result.rss = await settled_rss(server.pid)
        result.generator_rss = rss_bytes(os.getpid())
        progress(
            f"  server VmRSS {result.rss / 2**20:.0f} MiB settled, "
            f"{result.per_connection / 1024:.2f} KiB per connection; "
            f"load generator {result.generator_rss / 2**20:.0f} MiB"
        )
        for _ in range(args.capacity_events):
            result.fan_outs.append(await fan_out(connected, server, feeder))
    except ServerGone as exc:
        then = f"{result.stopped_by}; then " if result.stopped_by else ""
        result.stopped_by = f"{then}the server exited: {exc}"
    finally:
        connected.abort()
    return result


async def fill(
    spec: ServerSpec,
    server: Running,
    args: Namespace,
    files: OpenFiles,
    connected: Connected,
    result: Capacity,
) -> str:
    """Connect idle clients in steps into ``connected``; returns what stopped it."""
    total_memory = meminfo()["MemTotal"]
    sources = source_addresses(args.capacity_max)
    progress(f"  clients from {_addresses(sources)}")
    while (count := len(connected.clients)) < args.capacity_max:
        # Measured each step: the server's other files (log, AMQP) are not ours to guess.
        free = min(
            result.server_files - open_files(server.pid), files.soft - open_files(os.getpid())
        )
        step = min(args.capacity_step, args.capacity_max - count, free - FILES_MARGIN)
        if step <= 0:
            return files_stop(server.pid, result.server_files, files, count)
        started = time.monotonic()
        await connect_idle(
            spec, server.port, step, deflate=False, concurrency=args.connect_concurrency,
            into=connected, sources=sources,
        )  # fmt: skip
        took = time.monotonic() - started
        result.held = sum(c.is_open for c in connected.clients)
        result.steps.append(Step(result.held, rss_bytes(server.pid), took, step))
        progress(
            f"  {result.held} connections, server RSS {result.steps[-1].rss / 2**20:.0f} MiB, "
            f"step took {took:.1f} s ({step / took:.0f} handshakes/s)"
        )
        if why := trouble(connected, result.held, total_memory):
            return why
    return f"--capacity-max {args.capacity_max:,}"


def trouble(connected: Connected, held: int, total_memory: int) -> str:
    """What should stop capacity mode after a step, if anything."""
    if connected.failures:
        return f"connect failures: {dict(connected.failures)}"
    if held < len(connected.clients):
        return f"the server dropped {len(connected.clients) - held} idle connections"
    available = meminfo()["MemAvailable"]
    if available < MEMORY_FLOOR * total_memory:
        return f"memory: MemAvailable {available / 2**20:.0f} MiB left"
    return ""


def files_stop(server_pid: int, server_limit: int, files: OpenFiles, count: int) -> str:
    """The open-file limit, as measured: each side's limit and the files it has open."""
    text = (
        f"the open-file limit: the server's RLIMIT_NOFILE is {server_limit:,} "
        f"({open_files(server_pid):,} files open with {count:,} connections), the load "
        f"generator's {files.soft:,} ({open_files(os.getpid()):,} open)"
    )
    return f"{text}; {files.refused}" if files.refused else text


async def fan_out(connected: Connected, server: Running, feeder: Feeder) -> FanOut:
    """Publish one event and wait until every open client has it, or FAN_OUT_TIMEOUT.

    Latency is each client's kernel receive time minus ``sentAt``, which the feeder
    stamps right before it publishes: the load generator's turn to read each of
    100,000 sockets is not in it (``read_all`` is).
    """
    tally = connected.tally
    assert tally is not None
    live = [c for c in connected.clients if isinstance(c, IdleClient) and c.is_open]
    run = uuid.uuid4().hex[:12]
    for client in live:
        client.begin(run.encode())
    tally.expect(len(live))
    before = Reading.take(server.pid, feeder.pids)
    published = await feeder.run(run, 1.0, 1.0)  # one event, answered once confirmed
    if published.failed:
        progress("  the event was not published (see the feeder's log)")
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(tally.done), FAN_OUT_TIMEOUT)
    after = Reading.take(server.pid, feeder.pids)
    last_read = tally.done.result() if tally.done.done() else after.wall
    latencies = sorted(c.records[0][1] for c in live if c.records)
    result = FanOut(len(live), latencies, Usage.between(before, after), last_read - before.wall)
    progress(
        f"  one event: {len(latencies)} of {len(live)} clients, p50 "
        f"{1000 * result.quantile(0.5):.1f} ms, p99 {1000 * result.quantile(0.99):.1f} ms, last "
        f"{1000 * result.quantile(1.0):.1f} ms; read in {result.read_all:.2f} s; CPU server "
        f"{result.usage.server:.2f} s, load generator {result.usage.generator:.2f} s"
    )
    return result


# The run


async def run(args: Namespace, broker_url: str, workdir: Path, files: OpenFiles) -> list[str]:
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    redis_prefix = VHOST_PREFIX + uuid.uuid4().hex[:8]
    specs = server_specs(broker_url, workdir / "state", args, redis_prefix)
    if args.capacity:
        return await run_capacity(specs["bridge"], args, broker_url, workdir, files)
    lines: list[str] = []
    rows: list[Row] = []
    skipped: dict[str, str] = dict(args.skipped)
    announces: dict[str, str] = {}
    for name in args.servers:
        if name in skipped:
            continue
        spec = specs[name]
        # Streams have no compression to offer.
        for deflate in (False,) if spec.sse else (False, True):
            # A fresh server per kind of client: memory freed by closed connections is
            # rarely returned to the system, so it would blur the next reading.
            try:
                async with served(spec, workdir / f"{name}.log") as server:
                    announces[name] = server.announce
                    progress(f"{name}: pid {server.pid}, port {server.port}, "
                             f"{'deflate' if deflate else 'plain'} clients")  # fmt: skip
                    outcome = await measure(spec, server, deflate, args)
            except (RuntimeError, OSError, TimeoutError) as exc:
                outcome = f"failed: {exc}"
            finally:
                if name == "channels":
                    await forget_redis_keys(args.redis, redis_prefix)
            if isinstance(outcome, str):
                skipped[f"{name} {'deflate' if deflate else 'plain'}"] = outcome
                progress(f"{name}: {outcome}")
                if not deflate:
                    break  # the deflate clients would fare no better
            else:
                rows.append(outcome)
    lines += [f"  {name}: {line}" for name, line in announces.items()]
    lines += ["", *table(rows)]
    if skipped:
        lines += ["", "Not measured:", *(f"  {k}: {v}" for k, v in skipped.items())]
    lines.append(LEGEND.format(warmup=args.warmup))
    return lines


async def run_capacity(
    bridge: ServerSpec, args: Namespace, broker_url: str, workdir: Path, files: OpenFiles
) -> list[str]:
    spec = capacity_spec(bridge)
    async with served(spec, workdir / "bridge.log") as server:
        announce = f"bridge: {server.announce}"
        progress(f"bridge: pid {server.pid}, port {server.port}, "
                 f"RLIMIT_NOFILE {files_limit(server.pid):,}")  # fmt: skip
        # Started before the clients, so that its pipes count in this process's files.
        async with feeder_for(spec, server, broker_url, args, workdir) as feeder:
            result = await capacity(spec, server, feeder, args, files)
    if "the server exited" in result.stopped_by:
        progress(log_tail(workdir / "bridge.log"))
    return [announce, *capacity_report(result, args, files)]


HEADERS = (
    "server", "clients", "offer", "accepted", "before MiB", "after MiB", "KiB/conn",
    "/plain", "/baseline", "/nestjs", "connect s", "failed", "dropped",
)  # fmt: skip


def table(rows: list[Row]) -> list[str]:
    per = {(r.server, r.offer): r.per_connection for r in rows}
    cells = [list(HEADERS)]
    for r in rows:
        plain = per.get((r.server, "plain"))
        cells.append([
            r.server,
            str(r.clients),
            r.offer,
            "-" if r.offer == "plain" else f"{r.accepted}",
            f"{r.before / 2**20:.1f}",
            f"{r.after / 2**20:.1f}",
            f"{r.per_connection / 1024:.1f}",
            _ratio(r.per_connection, plain),
            _ratio(r.per_connection, per.get(("baseline", r.offer))),
            _ratio(r.per_connection, per.get(("nestjs", r.offer))),
            f"{r.connect_s:.1f}",
            str(r.failed),
            str(r.dropped),
        ])  # fmt: skip
    return aligned(cells, left=(0, 2))


def _ratio(value: float, base: float | None) -> str:
    return f"{value / base:.2f}" if base else "-"


LEGEND = """
offer: plain clients, or browser-like ones offering "permessage-deflate; client_max_window_bits".
accepted: how many of those the server accepted compression for.
before, after: the server's VmRSS (/proc/PID/status), settled, with {warmup} clients and with all.
KiB/conn: (after - before) / (clients - {warmup}).
/plain: KiB/conn of the row divided by the same server's with plain clients; /baseline,
  /nestjs: divided by that server's with the same offer.
connect s: how long the clients after the first {warmup} took to connect (the server on core 0,
  the clients on core 1).
failed: clients that could not connect; dropped: connected ones the server closed before
  the "after" reading (all connected clients count in KiB/conn)."""


#: The capacity tables' titles, which bench/report.py looks for.
STEPS_TITLE = "Connections, step by step"
FAN_OUT_TITLE = "One event to every client"


def capacity_report(result: Capacity, args: Namespace, files: OpenFiles) -> list[str]:
    sources = source_addresses(args.capacity_max)
    held = f"{result.held:,}"
    lines = [
        "",
        f"capacity of one bridge: held {held} idle connections (steps of {args.capacity_step:,}, "
        f"at most {args.capacity_max:,}, from {_addresses(sources)})",
        f"stopped by: {result.stopped_by}",
        f"open files: the server's RLIMIT_NOFILE {result.server_files:,}, the load generator's "
        f"{files.soft:,}"
        + (f"; {files.refused}" if files.refused not in result.stopped_by else ""),
        f"server VmRSS (settled): {result.start_rss / 2**20:.0f} MiB before the first client, "
        f"{result.rss / 2**20:.0f} MiB with {held}: {result.per_connection / 1024:.2f} KiB "
        "per connection",
        f"load generator VmRSS with {held} clients: {result.generator_rss / 2**20:.0f} MiB",
    ]
    if result.fan_outs:
        lines.append(fan_out_summary(result.fan_outs))
    lines += ["", f"{STEPS_TITLE}:", *steps_table(result)]
    if result.fan_outs:
        lines += ["", f"{FAN_OUT_TITLE}:", *fan_out_table(result.fan_outs)]
    return [*lines, CAPACITY_LEGEND]


def _addresses(sources: Sequence[str]) -> str:
    if len(sources) == 1:
        return f"source address {sources[0]}"
    return f"{len(sources)} source addresses, {sources[0]} to {sources[-1]}"


def steps_table(result: Capacity) -> list[str]:
    cells = [["connections", "server MiB", "KiB/conn", "step s", "handshakes/s"]]
    for step in result.steps:
        cells.append([
            str(step.connections),
            f"{step.rss / 2**20:.0f}",
            f"{(step.rss - result.start_rss) / 1024 / step.connections:.2f}",
            f"{step.seconds:.1f}",
            f"{step.tried / step.seconds:.0f}",
        ])  # fmt: skip
    return aligned(cells)


#: The fan-out table's figures: heading, (value in the unit shown, its format). CPU
#: times come in ticks of 10 ms (/proc/PID/stat), hence no decimals.
FIGURES: dict[str, tuple[Callable[[FanOut], float], str]] = {
    "p50 ms": (lambda f: 1000 * f.quantile(0.5), ".1f"),
    "p99 ms": (lambda f: 1000 * f.quantile(0.99), ".1f"),
    "last ms": (lambda f: 1000 * f.quantile(1.0), ".1f"),
    "read all ms": (lambda f: 1000 * f.read_all, ".1f"),
    "server CPU ms": (lambda f: 1000 * f.usage.server, ".0f"),
    "gen CPU ms": (lambda f: 1000 * f.usage.generator, ".0f"),
    "server %": (lambda f: f.usage.server_percent, ".0f"),
    "gen %": (lambda f: f.usage.generator_percent, ".0f"),
}


def fan_out_table(fan_outs: Sequence[FanOut]) -> list[str]:
    cells = [["event", "clients", "reached", *FIGURES]]
    for n, f in enumerate(fan_outs, 1):
        cells.append([
            str(n), str(f.clients), str(len(f.latencies)),
            *(format(figure(f), spec) for figure, spec in FIGURES.values()),
        ])  # fmt: skip
    medians = _medians(fan_outs)
    cells.append(["median", "", "", *(format(medians[k], s) for k, (_, s) in FIGURES.items())])
    return aligned(cells)


def _medians(fan_outs: Sequence[FanOut]) -> dict[str, float]:
    return {
        name: statistics.median(figure(f) for f in fan_outs)
        for name, (figure, _) in FIGURES.items()
    }


def fan_out_summary(fan_outs: Sequence[FanOut]) -> str:
    m = _medians(fan_outs)
    return (
        f"one event to all {fan_outs[-1].clients:,} clients, median of {len(fan_outs)}: "
        f"p50 {m['p50 ms']:.0f} ms, p99 {m['p99 ms']:.0f} ms, last {m['last ms']:.0f} ms; "
        f"CPU per event: server {m['server CPU ms']:.0f} ms, load generator "
        f"{m['gen CPU ms']:.0f} ms ({m['gen %']:.0f} % of its core)"
    )


CAPACITY_LEGEND = """
connections: open after the step; server MiB: its VmRSS then (not settled); KiB/conn: that
  VmRSS minus the one before the first client, divided by the connections; handshakes/s: the
  step's connections over its time (the bridge on core 0, the clients on core 1).
one event: published through RabbitMQ (amqp_feeder.py, on core 1) once every connection is up,
  the next once every client had the previous one. p50, p99, last: from the publish
  (sentAt, stamped right before it) to each client's kernel receive time (SO_TIMESTAMPNS).
  read all: from the publish until the load generator had read every client. server CPU,
  gen CPU: utime + stime over that time, of the bridge and of the load generator (this
  process and the feeder); server %, gen %: the same as a share of one core. median: of
  each column."""


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_core(GENERATOR_CORE)
    connections = args.capacity_max if args.capacity else args.clients
    files = raise_open_files(connections + SPARE_FILES)
    header = (
        f"{versions()}\nRLIMIT_NOFILE {files.soft}; servers on core {SERVER_CORE}, "
        f"clients on core {GENERATOR_CORE}"
    )
    progress(header)
    # Before the event loop starts: the Redis check runs one of its own.
    args.skipped = {}
    for server in [] if args.capacity else args.servers:
        if (why := missing_prerequisite(server, args)) is not None:
            args.skipped[server] = f"skipped: {why}"
            progress(f"{server}: skipped: {why}")
    with vhost() as name, tempfile.TemporaryDirectory(prefix=VHOST_PREFIX) as tmp:
        try:
            lines = asyncio.run(run(args, f"{args.amqp}/{name}", Path(tmp), files))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("memory: interrupted; cleaning up")
            return 130
    print()
    print(header)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
