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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import signal
import sys
import tempfile
import time
import uuid
from argparse import Namespace
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deliverybench.clients import Client, StreamClient
from deliverybench.constants import CONNECT_TIMEOUT, GENERATOR_CORE, HOST, SERVER_CORE, VHOST_PREFIX
from deliverybench.machine import ServerGone, pin_to_core, versions, vhost
from deliverybench.progress import progress
from deliverybench.servers import (
    Running,
    ServerSpec,
    forget_redis_keys,
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
#: Source addresses the capacity mode's clients rotate over: each has its own
#: ephemeral ports (32768-60999 by default), so the load generator is not the limit.
SOURCE_ADDRESSES = tuple(f"127.0.0.{i}" for i in range(1, 5))


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
    parser.add_argument("--capacity-step", type=int, default=1000, help="connections per step")
    parser.add_argument("--capacity-max", type=int, default=30000, help="stop here")
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
    return args


# The machine


def raise_open_files(wanted: int) -> int:
    """Raise RLIMIT_NOFILE (the hard limit too, as root); the servers inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):  # not root: keep the hard limit
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, wanted))
            return wanted
        wanted = hard
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


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


class IdleClient(Client):
    """``deliverybench.clients.Client`` that needs no JSON of the server.

    It counts as connected at the server's first text frame (the welcome, compressed
    or not), answers it with ``{"op": "ping"}`` as the delivery clients do (the
    bridge's subscriber is live from then on), and answers pings.
    """

    def _message(self, message: bytes | bytearray, now: float) -> None:
        if not self.welcomed.done():
            self._send(Frame(Opcode.TEXT, b'{"op": "ping"}'))
            self.welcomed.set_result(None)


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
                    client = IdleClient(port, "/ws", deflate=deflate)
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


@dataclass
class Capacity:
    held: int
    stopped_by: str
    rss: int
    steps: list[tuple[int, int, float]] = field(default_factory=list)  # (clients, rss, seconds)


async def capacity(spec: ServerSpec, server: Running, args: Namespace, files: int) -> Capacity:
    connected = Connected()
    total_memory = meminfo()["MemTotal"]
    result = Capacity(0, "", rss_bytes(server.pid))
    try:
        while True:
            target = min(len(connected.clients) + args.capacity_step, args.capacity_max)
            # Leave the load generator's own files some room: the server has as many.
            room = files - SPARE_FILES // 4 - len(connected.clients)
            step = min(target - len(connected.clients), room)
            if step <= 0:
                why = (
                    f"--capacity-max {args.capacity_max}"
                    if len(connected.clients) >= args.capacity_max
                    else f"the open-file limit (RLIMIT_NOFILE {files}, of the server and "
                    "of the load generator)"
                )
                result.stopped_by = why
                break
            started = time.monotonic()
            await connect_idle(
                spec,
                server.port,
                step,
                deflate=False,
                concurrency=args.connect_concurrency,
                into=connected,
                sources=SOURCE_ADDRESSES,
            )
            took = time.monotonic() - started
            held = sum(c.is_open for c in connected.clients)
            result.held, result.rss = held, rss_bytes(server.pid)
            result.steps.append((held, result.rss, took))
            progress(
                f"  {held} connections, server RSS {result.rss / 2**20:.0f} MiB, "
                f"step took {took:.1f} s"
            )
            if connected.failures:
                result.stopped_by = f"connect failures: {dict(connected.failures)}"
                break
            if held < len(connected.clients):
                result.stopped_by = (
                    f"the server dropped {len(connected.clients) - held} idle connections"
                )
                break
            available = meminfo()["MemAvailable"]
            if available < MEMORY_FLOOR * total_memory:
                result.stopped_by = f"memory: MemAvailable {available / 2**20:.0f} MiB left"
                break
    except ServerGone as exc:
        result.stopped_by = f"the server exited: {exc}"
    finally:
        connected.abort()
    return result


# The run


async def run(args: Namespace, broker_url: str, workdir: Path, files: int) -> list[str]:
    task = asyncio.current_task()
    assert task is not None
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    redis_prefix = VHOST_PREFIX + uuid.uuid4().hex[:8]
    specs = server_specs(broker_url, workdir / "state", args, redis_prefix)
    lines: list[str] = []
    if args.capacity:
        async with served(specs["bridge"], workdir / "bridge.log") as server:
            lines.append(f"bridge: {server.announce}")
            progress(f"bridge: pid {server.pid}, port {server.port}")
            result = await capacity(specs["bridge"], server, args, files)
        lines += capacity_report(result, args, files)
        return lines
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
    widths = [max(len(c[i]) for c in cells) for i in range(len(HEADERS))]
    lines = [
        "  ".join(
            c.ljust(w) if i in (0, 2) else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


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


def capacity_report(result: Capacity, args: Namespace, files: int) -> list[str]:
    lines = [
        "",
        f"capacity of one bridge: held {result.held} idle connections "
        f"(steps of {args.capacity_step}, at most {args.capacity_max}, RLIMIT_NOFILE {files})",
        f"stopped by: {result.stopped_by}",
        f"server VmRSS at the end: {result.rss / 2**20:.0f} MiB",
        "",
        "connections  server MiB  step s",
        "-----------  ----------  ------",
    ]
    lines += [f"{n:>11}  {rss / 2**20:>10.0f}  {s:>6.1f}" for n, rss, s in result.steps]
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_core(GENERATOR_CORE)
    connections = args.capacity_max if args.capacity else args.clients
    files = raise_open_files(connections + SPARE_FILES)
    header = (
        f"{versions()}\nRLIMIT_NOFILE {files}; servers on core {SERVER_CORE}, "
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
