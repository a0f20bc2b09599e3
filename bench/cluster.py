"""RabbitMQ's own cost per event on a 3-node cluster: fan-out to N instance queues,
and per-user bindings against binding everything.

One command, as root on a machine with RabbitMQ installed (its default node is left
alone), from the repository's root, with the repository on the Python path so that
``tests.support.cluster`` and ``schemas`` import::

    PYTHONPATH=/work/main .venv/bin/python bench/cluster.py            # all (4 to 5 min)
    PYTHONPATH=. .venv/bin/python bench/cluster.py --rate 100 --duration 4 --queues 1 4
    PYTHONPATH=. .venv/bin/python bench/cluster.py --parts targeted --leaders first
    PYTHONPATH=. .venv/bin/python bench/cluster.py --help

It boots a cluster of three RabbitMQ nodes beside the default one
(``tests.support.cluster.started_cluster``, about 20 s; stopped and removed on exit,
Ctrl-C included) and measures, on a vhost of its own:

1. **Fan-out** (``--queues``, default 1 2 4 8 16): N instance queues declared as the
   bridge declares them (``schemas.topology.instance_queue``: quorum, 3 replicas,
   bound with ``INSTANCE_BINDINGS``), each consumed by one aio-pika consumer with
   manual acks and prefetch 256, as a bridge does. Persistent ~300-byte JSON events
   with the key ``event.load.tick`` go to ``bridge.events`` at ``--rate`` a second
   for ``--duration`` s, with publisher confirms, through node 1: every event
   reaches every queue. Queue ``i`` is declared, and consumed, through node
   ``i mod 3`` (``--leaders spread``): RabbitMQ puts a quorum queue's leader on the
   node the declaring client is connected to, so the leaders are spread as they
   are when instances connect to different nodes. ``--leaders first`` declares all
   through node 1, as instances given the same ``;``-separated URL list do (they
   try the first node first). The table says where the leaders were.
2. **Targeted bindings** (``--instances`` 8, ``--users`` 10,000): events for single
   users, ``user.<id>`` with ids drawn at random, each user "connected" to one
   instance (``id mod 8``). (a) every queue bound with ``INSTANCE_BINDINGS``, so
   ``user.#`` and every user event reaches all 8 queues; (b) the same queues bound
   with ``event.#``, ``role.#``, ``dashboard`` and ``user.<id>`` for only the 1,250
   users each instance holds, so a user event reaches one queue. The same events at
   the same rate. In between, the per-user bindings are added (one queue alone, then
   the 7 others at once), and after (b) removed the same way: what an instance does
   as its users connect and leave.

RabbitMQ's CPU is utime + stime (``/proc/PID/stat``) of the three nodes' Erlang VMs
together, from before the first publish until every message was consumed, plus a
second, minus what the same nodes spent idle (with the queues and consumers in
place, measured just before). The consumers all run in one child process of this
script (one AMQP connection per instance), the publisher in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import random
import signal
import statistics
import sys
import time
import uuid
from argparse import Namespace
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from aio_pika.exceptions import AMQPException, ChannelInvalidStateError
from deliverybench.output import aligned

try:
    from schemas.topology import (
        DEAD_LETTER_QUEUE,
        DEAD_LETTERS,
        EVENTS,
        Binding,
        Queue,
        instance_queue,
    )
    from tests.support.cluster import Cluster, ClusterError, started_cluster
except ModuleNotFoundError as missing:  # pragma: no cover - how it is run
    sys.exit(f"cluster: {missing}; run it as PYTHONPATH=<repository> python bench/cluster.py")

#: The bridge's prefetch (bridge.config's default).
PREFETCH = 256
#: The events' routing key in the fan-out part: an event for everyone.
TICK_KEY = "event.load.tick"
#: Bytes of an event's JSON body, about a real event's.
BODY_SIZE = 300
#: Seconds RabbitMQ may take to confirm a publish.
CONFIRM_TIMEOUT = 10.0
#: Seconds measured after the last message was consumed: work RabbitMQ finishes later
#: (settling acks, moving its log along) belongs to the run too.
TAIL = 1.0
#: Seconds between counts of the consumed messages while draining.
POLL = 0.1
#: Seconds the consumer process may take to connect and to answer.
CHILD_TIMEOUT = 60.0
VHOST = "bench-cluster"
CLOCK = os.sysconf("SC_CLK_TCK")
#: This file: the consumer process runs it with --consumer.
SCRIPT = Path(__file__).resolve()


def parse_args(argv: Sequence[str] | None = None) -> Namespace:
    parser = argparse.ArgumentParser(
        description="RabbitMQ's CPU per event and per delivered message on a 3-node cluster: "
        "fan-out to N instance queues, and per-user bindings against user.#.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--rate", type=float, default=200.0, help="events published a second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing")
    parser.add_argument(
        "--queues", type=int, nargs="+", default=[1, 2, 4, 8, 16], help="N for the fan-out part"
    )
    parser.add_argument(
        "--parts",
        nargs="+",
        choices=["fanout", "targeted"],
        default=["fanout", "targeted"],
        help="what to measure",
    )
    parser.add_argument("--instances", type=int, default=8, help="instances, targeted part")
    parser.add_argument("--users", type=int, default=10_000, help="distinct users, targeted part")
    parser.add_argument(
        "--leaders",
        choices=["spread", "first"],
        default="spread",
        help="declare and consume queue i through node i mod 3, or all through node 1",
    )
    parser.add_argument(
        "--idle", type=float, default=3.0, help="seconds of the idle reading before each run"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=15.0,
        help="seconds to wait for the last messages once publishing ended (no progress)",
    )
    parser.add_argument("--consumer", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0 or min(args.queues) < 1:
        parser.error("--rate, --duration and --queues must be positive")
    if args.instances < 2 or args.users < args.instances:
        parser.error("--instances must be at least 2 and --users at least --instances")
    return args


def progress(message: str) -> None:
    """Progress on stderr: stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# The machine: CPU times from /proc.


def process_times(pid: int) -> tuple[float, float]:
    """utime and stime of ``pid``, all its threads, in seconds (0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0, 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[11]) / CLOCK, int(fields[12]) / CLOCK


def process_cpu(pid: int) -> float:
    """utime + stime of ``pid`` in seconds."""
    return sum(process_times(pid))


def machine_busy() -> float:
    """CPU seconds all cores spent on anything but idle and iowait since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK


@dataclass(frozen=True)
class Sample:
    at: float
    rabbit: float
    rabbit_sys: float
    publisher: float
    consumer: float
    busy: float


@dataclass(frozen=True)
class Usage:
    """CPU seconds between two samples, and the wall time between them."""

    wall: float
    rabbit: float
    #: The part of ``rabbit`` spent in the kernel (stime): fsync, sockets, scheduling.
    rabbit_sys: float
    publisher: float
    consumer: float
    busy: float

    @property
    def other(self) -> float:
        """What the rest of the machine did meanwhile: other processes' load."""
        return max(0.0, self.busy - self.rabbit - self.publisher - self.consumer)

    def percent(self, seconds: float) -> float:
        return 100.0 * seconds / self.wall if self.wall else float("nan")


class Meter:
    """Reads the three nodes' VMs, this process, the consumer process and the machine."""

    def __init__(self, rabbit_pids: Sequence[int]) -> None:
        self.rabbit_pids = tuple(rabbit_pids)
        self.consumer_pid: int | None = None

    def sample(self) -> Sample:
        times = [process_times(pid) for pid in self.rabbit_pids]
        return Sample(
            at=time.monotonic(),
            rabbit=sum(user + system for user, system in times),
            rabbit_sys=sum(system for _, system in times),
            publisher=process_cpu(os.getpid()),
            consumer=process_cpu(self.consumer_pid) if self.consumer_pid else 0.0,
            busy=machine_busy(),
        )

    @staticmethod
    def between(before: Sample, after: Sample) -> Usage:
        return Usage(
            wall=after.at - before.at,
            rabbit=after.rabbit - before.rabbit,
            rabbit_sys=after.rabbit_sys - before.rabbit_sys,
            publisher=after.publisher - before.publisher,
            consumer=after.consumer - before.consumer,
            busy=after.busy - before.busy,
        )

    async def idle(self, seconds: float) -> float:
        """RabbitMQ's idle CPU, in cores (CPU seconds a second), over ``seconds``."""
        before = self.sample()
        await asyncio.sleep(seconds)
        usage = self.between(before, self.sample())
        return usage.rabbit / usage.wall


# The consumer process: one connection per instance queue, manual acks, prefetch 256.


class Tally:
    """What the consumers received, since the last reset."""

    def __init__(self, modulus: int) -> None:
        self.modulus = modulus
        self.reset()

    def reset(self) -> None:
        self.delivered = 0
        self.own = 0
        self.redelivered = 0
        self.latencies: list[float] = []

    async def on_message(self, index: int, message: AbstractIncomingMessage) -> None:
        now = time.time()
        self.delivered += 1
        self.redelivered += bool(message.redelivered)
        with contextlib.suppress(ValueError, KeyError, TypeError):
            self.latencies.append(now - float(json.loads(message.body)["sentAt"]))
        key = message.routing_key or ""
        # An event for everyone, or for a user this instance holds.
        if not self.modulus or not key.startswith("user.") or int(key[5:]) % self.modulus == index:
            self.own += 1
        await message.ack()

    def counts(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "own": self.own, "redelivered": self.redelivered}

    def summary(self) -> dict[str, Any]:
        return {
            **self.counts(),
            "p50": quantile(self.latencies, 0.5),
            "p99": quantile(self.latencies, 0.99),
        }


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def consumer_main() -> int:
    """The child: reads a setup line and then commands on stdin, answers on stdout."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    setup = json.loads(await reader.readline())
    tally = Tally(setup["modulus"])
    connections: list[AbstractConnection] = []
    try:
        for name, url, index in setup["queues"]:
            opened = await aio_pika.connect(
                url, client_properties={"connection_name": f"bench consumer {name}"}
            )
            connections.append(opened)
            channel = await opened.channel()
            await channel.set_qos(prefetch_count=PREFETCH)
            queue = await channel.get_queue(name, ensure=False)
            await queue.consume(partial(tally.on_message, index), no_ack=False)
        reply({"ready": True})
        # An empty line is the end of stdin: the parent is gone.
        while line := await reader.readline():
            command = json.loads(line)["command"]
            if command == "count":
                reply(tally.counts())
            elif command == "summary":
                reply(tally.summary())
            elif command == "reset":
                tally.reset()
                reply({"reset": True})
            else:
                break
    finally:
        for connection in connections:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
    reply({"stopped": True})
    return 0


class Consumers:
    """The consumer process, seen from here."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, queues: Sequence[tuple[str, str, int]], modulus: int) -> Consumers:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SCRIPT),
            "--consumer",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        consumers = cls(process)
        try:
            await consumers.ask({"queues": list(queues), "modulus": modulus})
        except BaseException:
            await consumers.stop()
            raise
        return consumers

    @property
    def pid(self) -> int:
        return self.process.pid

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((json.dumps(message) + "\n").encode())
        await self.process.stdin.drain()
        line = await asyncio.wait_for(self.process.stdout.readline(), CHILD_TIMEOUT)
        if not line:
            raise RuntimeError(f"the consumer process exited ({self.process.returncode})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def stop(self) -> None:
        """Ask it to close its connections and exit; kill it if it does not."""
        if self.process.returncode is None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ask({"command": "stop"}), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.process.wait(), 5)
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()
            await self.process.wait()


def child_main() -> int:
    # Ctrl-C is for the parent, which stops this process; it exits by itself on EOF.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    return asyncio.run(consumer_main())


# The publisher: fixed rate, persistent, confirmed, through node 1.


def event_body(seq: int, key: str) -> bytes:
    """A ~300-byte JSON event, ``sentAt`` first (the consumers read it)."""
    head = (
        f'{{"sentAt":{time.time():.6f},"id":"{uuid.uuid4()}","type":"load:tick",'
        f'"key":"{key}","seq":{seq},"createdAt":"2024-01-01T00:00:00+00:00","data":{{"pad":"'
    )
    return (head + "x" * max(0, BODY_SIZE - len(head) - 3) + '"}}').encode()


@dataclass
class Published:
    events: int = 0
    failed: int = 0
    #: From the first publish to the last (not its confirm), and when the last was.
    seconds: float = 0.0
    ended: float = 0.0
    confirms: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")


async def publish_at_rate(
    exchange: AbstractExchange, rate: float, duration: float, key_of: Callable[[int], str]
) -> Published:
    """``rate x duration`` events on schedule, each its own task awaiting its confirm."""
    total = max(1, round(rate * duration))
    result = Published()
    tasks: set[asyncio.Task[None]] = set()

    async def one(seq: int) -> None:
        key = key_of(seq)
        message = aio_pika.Message(
            event_body(seq, key),
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=uuid.uuid4().hex,
        )
        began = time.perf_counter()
        try:
            await exchange.publish(message, key, timeout=CONFIRM_TIMEOUT)
        except (AMQPException, ChannelInvalidStateError, TimeoutError):
            result.failed += 1
            return
        result.confirms.append(time.perf_counter() - began)

    start = time.monotonic()
    for seq in range(total):
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(seq))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        result.events += 1
    result.ended = time.monotonic()
    result.seconds = max(result.ended - start, (total - 1) / rate)
    if tasks:
        await asyncio.wait(set(tasks), timeout=CONFIRM_TIMEOUT + 5)
    return result


# One run of traffic: publish, drain, read the CPU.


@dataclass(frozen=True)
class Traffic:
    label: str
    fanout: int
    published: Published
    delivered: int
    own: int
    redelivered: int
    deliver_p50: float
    deliver_p99: float
    usage: Usage
    idle: float  # RabbitMQ's idle CPU, in cores
    #: Seconds from the last publish until the last message was consumed.
    drain: float

    @property
    def expected(self) -> int:
        return self.published.events * self.fanout

    @property
    def throughput(self) -> float:
        """Deliveries a second, from the first publish to the last delivery."""
        return self.delivered / (self.published.seconds + self.drain)

    @property
    def rabbit_net(self) -> float:
        return max(0.0, self.usage.rabbit - self.idle * self.usage.wall)

    @property
    def us_per_event(self) -> float:
        return 1e6 * self.rabbit_net / self.published.events

    @property
    def us_per_delivery(self) -> float:
        return 1e6 * self.rabbit_net / self.delivered if self.delivered else float("nan")

    @property
    def consumed(self) -> str:
        missing = self.expected - self.delivered
        if missing == 0 and not self.published.failed:
            return "yes"
        parts = [f"{missing:,} missing"] if missing else []
        parts += [f"{self.published.failed:,} unconfirmed"] if self.published.failed else []
        return "no: " + ", ".join(parts)


async def traffic(
    label: str,
    args: Namespace,
    meter: Meter,
    exchange: AbstractExchange,
    consumers: Consumers,
    fanout: int,
    key_of: Callable[[int], str],
) -> Traffic:
    """Idle reading, then ``args.rate`` events a second for ``args.duration`` s, drained."""
    idle = await meter.idle(args.idle)
    await consumers.ask({"command": "reset"})
    before = meter.sample()
    published = await publish_at_rate(exchange, args.rate, args.duration, key_of)
    expected = published.events * fanout
    seen, last_change = -1, time.monotonic()
    while True:
        count = (await consumers.ask({"command": "count"}))["delivered"]
        if count >= expected:
            last_change = time.monotonic()
            break
        if count != seen:
            seen, last_change = count, time.monotonic()
        elif time.monotonic() - last_change > args.drain:
            progress(f"  {label}: {expected - count:,} messages not consumed after {args.drain} s")
            break
        await asyncio.sleep(POLL)
    drain = max(0.0, last_change - published.ended)
    await asyncio.sleep(TAIL)
    usage = meter.between(before, meter.sample())
    summary = await consumers.ask({"command": "summary"})
    result = Traffic(
        label=label,
        fanout=fanout,
        published=published,
        delivered=summary["delivered"],
        own=summary["own"],
        redelivered=summary["redelivered"],
        deliver_p50=summary["p50"],
        deliver_p99=summary["p99"],
        usage=usage,
        idle=idle,
        drain=drain,
    )
    progress(
        f"  {label}: {published.events:,} events, {result.delivered:,} delivered, "
        f"RabbitMQ {usage.percent(usage.rabbit):.0f} % (idle {100 * idle:.0f} %), "
        f"{result.us_per_event:.0f} µs/event, {result.us_per_delivery:.0f} µs/delivery"
    )
    return result


# The topology, through the nodes.


class Topology:
    """One admin connection per node; queue ``i`` is declared through node ``i mod 3``."""

    def __init__(self, cluster: Cluster, vhost: str, leaders: str) -> None:
        self.cluster = cluster
        self.vhost = vhost
        self.leaders = leaders
        self.connections: list[AbstractConnection] = []

    async def open(self) -> None:
        for node in self.cluster.nodes:
            self.connections.append(
                await aio_pika.connect(
                    node.url(self.vhost), client_properties={"connection_name": "bench admin"}
                )
            )
        async with self.channel(0) as channel:
            for spec in (EVENTS, DEAD_LETTERS):
                await channel.declare_exchange(spec.name, spec.type, durable=spec.durable)
        await self.declare(0, DEAD_LETTER_QUEUE, DEAD_LETTER_QUEUE.bindings)

    async def close(self) -> None:
        for connection in self.connections:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)

    def node_of(self, index: int) -> int:
        return index % len(self.cluster.nodes) if self.leaders == "spread" else 0

    def url_of(self, index: int) -> str:
        return self.cluster.nodes[self.node_of(index)].url(self.vhost)

    @contextlib.asynccontextmanager
    async def channel(self, index: int) -> Any:
        channel = await self.connections[self.node_of(index)].channel()
        try:
            yield channel
        finally:
            with contextlib.suppress(Exception):
                await channel.close()

    async def declare(self, index: int, spec: Queue, bindings: Sequence[Binding]) -> None:
        async with self.channel(index) as channel:
            queue = await channel.declare_queue(
                spec.name, durable=spec.durable, arguments=dict(spec.arguments)
            )
            for binding in bindings:
                await queue.bind(binding.exchange.name, binding.routing_key)

    async def delete(self, names: Sequence[str]) -> None:
        async with self.channel(0) as channel:
            for name in names:
                with contextlib.suppress(AMQPException):
                    await channel.queue_delete(name)

    async def leader_counts(self, names: Sequence[str]) -> str:
        """``a/b/c``: how many of ``names`` each node leads (node 1, 2, 3)."""
        listing = await asyncio.to_thread(
            self.cluster.nodes[0].ctl,
            "list_queues", "-p", self.vhost, "name", "leader", "--formatter", "json",
        )  # fmt: skip
        leader = {entry["name"]: entry["leader"] for entry in json.loads(listing)}
        counts = [sum(leader.get(n) == node.name for n in names) for node in self.cluster.nodes]
        return "/".join(map(str, counts))

    async def binding_count(self) -> int:
        """Bindings whose source is ``bridge.events``, as RabbitMQ lists them."""
        listing = await asyncio.to_thread(
            self.cluster.nodes[0].ctl,
            "list_bindings", "-p", self.vhost, "source_name", "--formatter", "json",
        )  # fmt: skip
        return sum(entry["source_name"] == EVENTS.name for entry in json.loads(listing))


@contextlib.asynccontextmanager
async def instances(topology: Topology, specs: Sequence[Queue], meter: Meter, modulus: int) -> Any:
    """The queues declared, a consumer on each; deleted afterwards."""
    names = [spec.name for spec in specs]
    consumers: Consumers | None = None
    try:
        await asyncio.gather(
            *(topology.declare(i, spec, spec.bindings) for i, spec in enumerate(specs))
        )
        consumers = await Consumers.start(
            [(spec.name, topology.url_of(i), i) for i, spec in enumerate(specs)], modulus
        )
        meter.consumer_pid = consumers.pid
        yield consumers
    finally:
        if consumers is not None:
            await consumers.stop()
        meter.consumer_pid = None
        # After an error the connection may be gone; the cluster goes anyway.
        with contextlib.suppress(Exception):
            await topology.delete(names)


async def publisher(cluster: Cluster, vhost: str) -> tuple[AbstractConnection, AbstractExchange]:
    connection = await aio_pika.connect(
        cluster.nodes[0].url(vhost), client_properties={"connection_name": "bench publisher"}
    )
    channel: AbstractChannel = await connection.channel(publisher_confirms=True)
    return connection, await channel.get_exchange(EVENTS.name, ensure=False)


# Part 1: fan-out.


@dataclass(frozen=True)
class FanOut:
    queues: int
    leaders: str
    traffic: Traffic


async def fan_out(
    args: Namespace, topology: Topology, meter: Meter, exchange: AbstractExchange
) -> list[FanOut]:
    results = []
    for n in args.queues:
        progress(f"fan-out to {n} queue{'s' * (n > 1)}")
        specs = [instance_queue(f"fanout-{n}-{i}") for i in range(n)]
        async with instances(topology, specs, meter, modulus=0) as consumers:
            leaders = await topology.leader_counts([s.name for s in specs])
            run = await traffic(f"N={n}", args, meter, exchange, consumers, n, lambda _: TICK_KEY)
        results.append(FanOut(n, leaders, run))
    return results


# Part 2: targeted bindings.


@dataclass(frozen=True)
class BindRun:
    operation: str
    queues: int
    latencies: list[float]
    usage: Usage
    idle: float

    @property
    def bindings(self) -> int:
        return len(self.latencies)

    @property
    def us_per_binding(self) -> float:
        net = max(0.0, self.usage.rabbit - self.idle * self.usage.wall)
        return 1e6 * net / self.bindings if self.bindings else float("nan")


async def change_bindings(
    operation: str,
    topology: Topology,
    meter: Meter,
    idle: float,
    work: Sequence[tuple[int, str, Sequence[str]]],
    *,
    unbind: bool,
) -> BindRun:
    """Per (index, queue, keys): one channel through the queue's node, one key at a
    time (each waits for its Bind-Ok), all queues at once."""
    latencies: list[float] = []

    async def one_queue(index: int, name: str, keys: Sequence[str]) -> None:
        async with topology.channel(index) as channel:
            queue = await channel.get_queue(name, ensure=False)
            change: Callable[[str, str], Awaitable[Any]] = queue.unbind if unbind else queue.bind
            for key in keys:
                began = time.perf_counter()
                await change(EVENTS.name, key)
                latencies.append(time.perf_counter() - began)

    before = meter.sample()
    await asyncio.gather(*(one_queue(*item) for item in work))
    result = BindRun(operation, len(work), latencies, meter.between(before, meter.sample()), idle)
    progress(
        f"  {operation}: {result.bindings:,} in {result.usage.wall:.1f} s, "
        f"{result.us_per_binding:.0f} µs of RabbitMQ each"
    )
    return result


@dataclass
class Targeted:
    runs: list[tuple[str, int, Traffic]] = field(default_factory=list)
    binds: list[BindRun] = field(default_factory=list)
    leaders: str = ""


async def targeted(
    args: Namespace, topology: Topology, meter: Meter, exchange: AbstractExchange
) -> Targeted:
    n = args.instances
    progress(f"targeted bindings: {n} instances, {args.users:,} users")
    specs = [instance_queue(f"users-{i}") for i in range(n)]
    names = [s.name for s in specs]
    held = [[f"user.{u}" for u in range(i, args.users, n)] for i in range(n)]
    draws = random.Random(17)  # noqa: S311 - a workload, not a secret
    users = [draws.randrange(args.users) for _ in range(max(1, round(args.rate * args.duration)))]

    def key_of(seq: int) -> str:
        return f"user.{users[seq]}"

    result = Targeted()
    async with instances(topology, specs, meter, modulus=n) as consumers:
        result.leaders = await topology.leader_counts(names)
        count = await topology.binding_count()
        result.runs.append(
            ("(a) user.#", count, await traffic("(a)", args, meter, exchange, consumers, n, key_of))
        )
        idle = await meter.idle(args.idle)
        result.binds.append(
            await change_bindings(
                "bind, 1 queue alone", topology, meter, idle, [(0, names[0], held[0])], unbind=False
            )
        )
        rest = [(i, names[i], held[i]) for i in range(1, n)]
        result.binds.append(
            await change_bindings(
                f"bind, {n - 1} queues at once", topology, meter, idle, rest, unbind=False
            )
        )
        everyone = [(i, names[i], ["user.#"]) for i in range(n)]
        await change_bindings("unbind user.#", topology, meter, idle, everyone, unbind=True)
        count = await topology.binding_count()
        result.runs.append(
            (
                "(b) user.<id>",
                count,
                await traffic("(b)", args, meter, exchange, consumers, 1, key_of),
            )
        )
        idle = await meter.idle(args.idle)
        result.binds.append(
            await change_bindings(
                "unbind, 1 queue alone",
                topology,
                meter,
                idle,
                [(0, names[0], held[0])],
                unbind=True,
            )
        )
        result.binds.append(
            await change_bindings(
                f"unbind, {n - 1} queues at once", topology, meter, idle, rest, unbind=True
            )
        )
    return result


# The report.


def _ms(seconds: float) -> str:
    return f"{1000 * seconds:.1f}"


def _pct(usage: Usage, seconds: float) -> str:
    return f"{usage.percent(seconds):.0f}"


TRAFFIC_HEADERS = (
    "events", "pub/s", "delivered", "consumed", "drain s", "dlv/s", "rmq %", "sys %", "idle %",
    "µs/event", "µs/msg", "conf p50", "conf p99", "dlv p99", "pub %", "cons %", "other %",
)  # fmt: skip
#: Where the per-part columns go: after the counts, and after µs/event.
COUNTS, PER_EVENT = 3, 10


def traffic_cells(t: Traffic) -> list[str]:
    return [
        f"{t.published.events:,}",
        f"{t.published.rate:.0f}",
        f"{t.delivered:,}",
        t.consumed,
        f"{t.drain:.1f}",
        f"{t.throughput:.0f}",
        _pct(t.usage, t.usage.rabbit),
        f"{100 * t.usage.rabbit_sys / t.usage.rabbit:.0f}" if t.usage.rabbit else "-",
        f"{100 * t.idle:.0f}",
        f"{t.us_per_event:.0f}",
        f"{t.us_per_delivery:.0f}",
        _ms(quantile(t.published.confirms, 0.5)),
        _ms(quantile(t.published.confirms, 0.99)),
        _ms(t.deliver_p99),
        _pct(t.usage, t.usage.publisher),
        _pct(t.usage, t.usage.consumer),
        _pct(t.usage, t.usage.other),
    ]


def fit(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares ``y = a + b x``: (a, b), or None with fewer than two x."""
    if len({x for x, _ in points}) < 2:
        return None
    slope, intercept = statistics.linear_regression([x for x, _ in points], [y for _, y in points])
    return intercept, slope


def fan_out_report(results: list[FanOut], args: Namespace) -> list[str]:
    base = next((r.traffic.us_per_event for r in results if r.queues == 1), None)
    h = TRAFFIC_HEADERS
    cells = [["queues", "leaders", *h[:PER_EVENT], "/N=1", *h[PER_EVENT:]]]
    for r in results:
        row = traffic_cells(r.traffic)
        ratio = f"{r.traffic.us_per_event / base:.1f}" if base else "-"
        cells.append([str(r.queues), r.leaders, *row[:PER_EVENT], ratio, *row[PER_EVENT:]])
    lines = [
        "",
        f"Fan-out: every event to N instance queues ({TICK_KEY}, {args.rate:g}/s for "
        f"{args.duration:g} s through node 1, leaders {args.leaders}):",
        *aligned(cells, left=(1, 5)),
    ]
    line = fit([(r.queues, r.traffic.us_per_event) for r in results])
    if line is not None:
        a, b = line
        behind = [str(r.queues) for r in results if r.traffic.drain > 1.0]
        lines.append(
            f"least squares over N: µs/event ≈ {a:.0f} + {b:.0f} x N: {b:.0f} µs of RabbitMQ "
            "CPU per event per bound queue"
            + (f" (N = {', '.join(behind)} fell behind: drain > 1 s)" if behind else "")
        )
    return lines


BIND_HEADERS = (
    "operation", "queues", "bindings", "wall s", "per s", "p50 ms", "p99 ms", "max ms",
    "µs/binding", "rmq %", "other %",
)  # fmt: skip


def targeted_report(result: Targeted, args: Namespace) -> list[str]:
    n = args.instances
    h = TRAFFIC_HEADERS
    cells = [["bound with", "bindings", *h[:COUNTS], "per event", "own %", *h[COUNTS:]]]
    for label, count, t in result.runs:
        row = traffic_cells(t)
        per_event = t.delivered / t.published.events
        own = 100 * t.own / t.delivered if t.delivered else float("nan")
        cells.append(
            [label, f"{count:,}", *row[:COUNTS], f"{per_event:.2f}", f"{own:.0f}", *row[COUNTS:]]
        )
    lines = [
        "",
        f"Targeted bindings: {n} instances (leaders {result.leaders}), events to single users "
        f"(user.<id>, {args.users:,} users, each on one instance), {args.rate:g}/s for "
        f"{args.duration:g} s:",
        *aligned(cells, left=(0, 7)),
    ]
    if len(result.runs) == 2:
        everything, targeted = result.runs[0][2], result.runs[1][2]
        if everything.us_per_event > 0:
            saved = 1 - targeted.us_per_event / everything.us_per_event
            lines.append(
                f"(b) against (a): {targeted.us_per_event:.0f} against "
                f"{everything.us_per_event:.0f} µs of RabbitMQ CPU per event, {100 * saved:.0f} % "
                f"less; {targeted.delivered / targeted.published.events:.0f} delivery per event "
                f"instead of {everything.delivered / everything.published.events:.0f}"
            )
    cells = [list(BIND_HEADERS)]
    for b in result.binds:
        cells.append([
            b.operation, str(b.queues), f"{b.bindings:,}", f"{b.usage.wall:.1f}",
            f"{b.bindings / b.usage.wall:.0f}", _ms(quantile(b.latencies, 0.5)),
            _ms(quantile(b.latencies, 0.99)), _ms(max(b.latencies, default=float("nan"))),
            f"{b.us_per_binding:.0f}", _pct(b.usage, b.usage.rabbit),
            _pct(b.usage, b.usage.other),
        ])  # fmt: skip
    lines += [
        "",
        f"Per-user bindings on {EVENTS.name}: {args.users // n:,} per queue, added and removed "
        "one at a time per queue (each waits for its Bind-Ok / Unbind-Ok):",
        *aligned(cells),
    ]
    alone = {b.operation.split(",")[0]: b.us_per_binding for b in result.binds if b.queues == 1}
    if len(result.runs) == 2 and {"bind", "unbind"} <= alone.keys():
        session = alone["bind"] + alone["unbind"]
        saved = result.runs[0][2].us_per_event - result.runs[1][2].us_per_event
        lines.append(
            f"one user's bind + unbind (a session, 1 queue alone): {session:.0f} µs of RabbitMQ "
            + (
                f"CPU, what (b) saves over (a) on {session / saved:.1f} events to that user"
                if saved > 0
                else "CPU; (b) saved nothing per event here"
            )
        )
    return lines


LEGEND = """
leaders: how many of the run's queues node 1/2/3 leads (each queue has a replica on all 3).
events: published; pub/s: events over the time it took to publish them (the rate asked for
  unless the publisher fell behind); delivered: messages the consumers received and acked.
consumed: whether every event was confirmed and reached every queue bound to its key.
drain s: from the last publish until the last message was consumed: above ~0.1 s the
  cluster did not keep up with the rate (a backlog built up); dlv/s: deliveries over the
  time from the first publish to the last delivery.
rmq %: CPU of the three nodes' Erlang VMs together (utime + stime), in % of one core,
  from the first publish until all was consumed + {tail:g} s; sys %: the kernel's share
  of it (stime: fsync, loopback TCP, scheduling); idle %: the nodes' CPU just before,
  with the queues and consumers in place and nothing published ({idle:g} s).
µs/event, µs/msg: (rmq CPU - idle CPU over the same time) per published event and per
  delivered message (event x queue); /N=1: µs/event over that with one queue.
conf p50, conf p99: ms from publish to confirm at the publisher (aio-pika, one task per
  event); dlv p99: ms from publish (sentAt) to the consumer's receive.
pub %, cons %: the publisher (this process) and the consumer process (all instances'
  consumers, one connection each); other %: the rest of the machine (other processes: the
  noise), all in % of one core; {cores} cores in all.
bindings: bindings on bridge.events, as rabbitmqctl lists them; per event: deliveries per
  published event; own %: deliveries that reached the instance holding the event's user
  (the rest an instance would drop: it has no client of that user).
bind/unbind rows: p50, p99, max: ms one Bind-Ok (Unbind-Ok) took; per s: bindings over
  the wall time; µs/binding: RabbitMQ CPU per binding net of idle (bindings are
  cluster-wide metadata, written on every node)."""


def busy_wait(cluster: Cluster) -> str:
    """The nodes' scheduler busy-wait threshold, from node 1's VM command line."""
    pid = cluster.nodes[0].pid()
    with contextlib.suppress(OSError, ValueError):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        return f"-sbwt {argv[argv.index('-sbwt') + 1]}"
    return "unknown"


def header(cluster: Cluster) -> str:
    try:
        status = json.loads(cluster.nodes[0].ctl("status", "--formatter", "json"))
        rabbit = f"RabbitMQ {status.get('rabbitmq_version', '?')}"
        erlang = str(status.get("erlang_version", "?")).split("[", 1)[0].strip()
    except (ClusterError, ValueError) as exc:
        rabbit, erlang = f"RabbitMQ unknown ({exc})", ""
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{rabbit} ({erlang}), 3 nodes on this machine, data on {cluster.dir} (fsync'd); "
        f"nproc {len(os.sched_getaffinity(0))} ({model}), Linux {platform.release()}\n"
        f"scheduler busy-wait {busy_wait(cluster)}; Python {platform.python_version()}, "
        f"aio-pika {aio_pika.__version__}; load average {load} at the start"
    )


async def run(args: Namespace, cluster: Cluster) -> list[str]:
    # As asyncio.run does on Ctrl-C: cancelled, every finally runs with the loop alive.
    task = asyncio.current_task()
    if task is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    vhost = await asyncio.to_thread(cluster.add_vhost, VHOST)
    pids = [node.pid() for node in cluster.nodes]
    if None in pids:
        raise ClusterError("a node of the cluster is not running")
    meter = Meter([pid for pid in pids if pid is not None])
    topology = Topology(cluster, vhost, args.leaders)
    connection: AbstractConnection | None = None
    lines: list[str] = []
    try:
        await topology.open()
        connection, exchange = await publisher(cluster, vhost)
        if "fanout" in args.parts:
            lines += fan_out_report(await fan_out(args, topology, meter, exchange), args)
        if "targeted" in args.parts:
            lines += targeted_report(await targeted(args, topology, meter, exchange), args)
    finally:
        if connection is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connection.close(), 5)
        await topology.close()
    return lines


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.consumer:
        return child_main()
    signal.signal(signal.SIGTERM, _terminate)
    began = time.monotonic()
    progress("starting a 3-node RabbitMQ cluster (about 20 s)")
    try:
        with started_cluster() as cluster:
            top = header(cluster)
            progress(top)
            try:
                lines = asyncio.run(run(args, cluster))
            finally:
                # Closing the loop reset SIGTERM; the cluster's stop is still to be guarded.
                signal.signal(signal.SIGTERM, _terminate)
            progress("stopping the cluster")
    except (KeyboardInterrupt, asyncio.CancelledError):
        progress("cluster: interrupted; the cluster and the consumers are stopped")
        return 130
    except (ClusterError, AMQPException, OSError, RuntimeError, TimeoutError) as exc:
        progress(f"cluster: failed: {type(exc).__name__}: {exc}")
        return 1
    print()
    print(top)
    print("\n".join(lines))
    print(
        LEGEND.format(tail=TAIL, idle=args.idle, cores=len(os.sched_getaffinity(0)))
        + f"\nThe whole run took {time.monotonic() - began:.0f} s, cluster boot and stop included."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
