"""Running scenarios: clients connected to a server, a run at one rate, its summary."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
import uuid
from argparse import Namespace
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

from .clients import (
    AnyClient,
    Client,
    StreamClient,
    close_clients,
    connect_clients,
    connect_sio_clients,
)
from .constants import BEHIND_QUIET, QUIET_PERIOD, SETTLE_QUIET
from .feeders import Feeder, Published
from .probes import Probes
from .progress import progress
from .results import Kind, Offer, Reading, Result, Scenario, Usage, summary_line
from .servers import Running, ServerSpec


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
    probes: Probes | None = None,
) -> Result:
    run = uuid.uuid4().hex[:12]
    live = [c for c in clients if c.is_open]
    # The records of 1,000 clients are hundreds of thousands of objects: a full pass
    # of the cyclic collector in the middle of a run stopped every read for up to
    # 80 ms, counted as the server's latency. They hold no cycles; collect afterwards.
    gc.disable()
    try:
        for client in live:
            client.begin(run.encode())
        if probes is not None:
            await probes.begin(run)
        before = Reading.take(server.pid, pub.pids, tree=server.tree)
        published = await pub.run(run, scenario.rate, duration)
        await drain(live, published.attempted, drain_timeout)
        usage = Usage.between(before, Reading.take(server.pid, pub.pids, tree=server.tree))
    finally:
        gc.enable()
    result = summarize(scenario, live, published, before.wall, usage)
    if probes is not None:
        result.probe_latencies_ms = await probes.end()
    return result


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
    probes: Probes | None = None

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
            self.probes,
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
        base = "/sse" if spec.sse else "/ws"
        query = "&".join(part for part in ("batch=1" if batch else "", spec.query) if part)
        path = f"{base}?{query}" if query else base
        clients = await connect_clients(
            server.port,
            count,
            path,
            args.connect_concurrency,
            deflate=deflate,
            kind=StreamClient if spec.sse else Client,
        )
    progress(f"  connected in {time.monotonic() - started:.1f} s")
    probes = await start_probes(server, spec, args, batch=batch, deflate=deflate)
    group = Group(server, spec, feeder, clients, batch, offer, args, probes)
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
        if probes is not None:
            await probes.close()


async def start_probes(
    server: Running, spec: ServerSpec, args: Namespace, *, batch: bool, deflate: bool
) -> Probes | None:
    """``--probes`` clients more, in a process of their own (:mod:`.probes`)."""
    if not args.probes:
        return None
    if spec.socketio:
        kind, path = "sio", "/"
    else:
        kind, path = ("sse", "/sse") if spec.sse else ("ws", "/ws")
        query = "&".join(part for part in ("batch=1" if batch else "", spec.query) if part)
        path = f"{path}?{query}" if query else path
    probes = await Probes.start(
        server.port, path, args.probes, kind=kind, namespace=spec.namespace, event=spec.event,
        deflate=deflate,
    )  # fmt: skip
    progress(f"  {probes.connected} probe clients, {probes.priority}")
    return probes
