"""RabbitMQ as a three-node cluster under load (issue 17).

1,000 clients on two bridge processes, 200 events/s: half through the bridges'
HTTP API (a caller that tries a 503 again), half stored in a Django outbox and
sent by ``manage.py event_bridge_relay``. Each scenario breaks the cluster
while they run and counts, per client, what was sent, delivered, lost, shown
twice and out of order. The figures go to docs/reliability.md; run them alone
with ``./scripts/test tests/test_cluster_faults.py -s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import api_feeder
from tests.support.cluster import Cluster, Node, started_cluster
from tests.support.fleet import Fleet
from tests.support.load import BridgeProcess, p99

CLIENTS = 1000
#: Events per second, both sources together.
RATE = 200.0
#: Event n comes from the API when n is even, from the relay when it is odd.
SOURCES = 2
ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "example"

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with started_cluster() as cluster:
        yield cluster


@dataclass
class Run:
    """One scenario's load: the bridges, the clients, the sources, and what they did."""

    cluster: Cluster
    vhost: str
    sent: int
    bridges: list[BridgeProcess]
    fleet: Fleet
    feeders: list[asyncio.subprocess.Process] = field(default_factory=list)

    def leaders(self) -> set[Node]:
        """The nodes that lead the bridges' instance queues."""
        return {
            self.cluster.leader(self.vhost, f"bridge.instance.{b.instance}") for b in self.bridges
        }

    async def published(self, timeout: float) -> None:
        """Wait until both sources had every event taken."""
        async with asyncio.timeout(timeout):
            for feeder in self.feeders:
                assert await feeder.wait() == 0, "a source gave up (see its output)"

    def report(self, name: str, recovery: str) -> str:
        delivered, lost, duplicates = self.fleet.totals(self.sent)
        timed = [w for w in self.fleet.watchers if w.timed]
        by_source: list[list[float]] = [[] for _ in range(SOURCES)]
        for watcher in timed:
            for seq, latency in zip(watcher.seqs, watcher.latencies, strict=True):
                by_source[seq % SOURCES].append(latency)
        disorder = sum(not w.in_order() for w in self.fleet.watchers)
        api, relay = (f"{1000 * p99(x):.0f} ms, the longest {max(x):.1f} s" for x in by_source)
        return (
            f"{name}: sent {self.sent} x {len(self.fleet.watchers)} clients at {RATE:.0f}/s, "
            f"delivered {delivered}, lost {lost}, shown twice {duplicates}, clients out of "
            f"order {disorder}; latency p99 through the API {api}, through the relay "
            f"{relay}; {recovery}"
        )

    def check(self) -> None:
        delivered, lost, duplicates = self.fleet.totals(self.sent)
        assert (lost, duplicates) == (0, 0)
        assert delivered == self.sent * CLIENTS
        assert all(w.in_order() for w in self.fleet.watchers)
        assert sum(w.resets for w in self.fleet.watchers) == 0


def django_env(database: Path, broker: str) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.support.outbox_settings",
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(ROOT)]),
        "DATABASE_URL": f"sqlite:///{database}",
        "BRIDGE_BROKER_URL": broker,
    }


@asynccontextmanager
async def loaded(
    cluster: Cluster, workdir: Path, sent: int, bridge_nodes: list[Node] | None = None
) -> AsyncIterator[Run]:
    """Two bridges on the cluster (or on ``bridge_nodes``), 1,000 clients, and the two
    sources sending ``sent`` events in all; everything stopped on the way out."""
    vhost = await asyncio.to_thread(cluster.add_vhost, f"faults-{uuid.uuid4().hex[:8]}")
    url = cluster.url(vhost, bridge_nodes)
    run = uuid.uuid4().hex[:8]
    env = django_env(workdir / "outbox.sqlite3", cluster.url(vhost))
    manage = [sys.executable, str(EXAMPLE / "manage.py")]
    await asyncio.to_thread(
        subprocess.run, [*manage, "migrate", "-v", "0"], env=env, check=True, cwd=ROOT
    )
    async with AsyncExitStack() as stack:
        bridges = []
        for name in ("cluster-a", "cluster-b"):
            # 10 s of events: room for a client that reconnects (none should need to).
            bridge = BridgeProcess(url, f"{name}-{run}", workdir, "--history-size", "2000")
            bridge.count("connected to")
            bridges.append(await stack.enter_async_context(bridge))
            await bridge.counted("connected to", 1, 30)
        fleet = Fleet(run, marks=(sent // 4, sent // 2, sent), sources=SOURCES)
        stack.push_async_callback(fleet.close)
        for bridge in bridges:
            await fleet.open(bridge.port, CLIENTS // len(bridges))
        relay = await asyncio.create_subprocess_exec(
            *manage, "event_bridge_relay", env=env, cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        stack.push_async_callback(_stop, relay)
        each = sent // SOURCES
        outbox = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.support.outbox_feeder",
            run, "1", "2", str(each), str(RATE / SOURCES), env=env, cwd=ROOT,
        )  # fmt: skip
        api = await api_feeder.started(run, 0, 2, each, RATE / SOURCES, [b.port for b in bridges])
        for feeder in (outbox, api):
            stack.push_async_callback(_end, feeder)
        yield Run(cluster, vhost, sent, bridges, fleet, [api, outbox])


async def _stop(process: asyncio.subprocess.Process) -> None:
    process.terminate()
    await asyncio.wait_for(process.wait(), 15)


async def _end(feeder: asyncio.subprocess.Process) -> None:
    if feeder.returncode is None:
        feeder.kill()
        await feeder.wait()


async def through(run: Run, fault: Callable[[], None], restore: Callable[[], None]) -> str:
    """Break the cluster once a quarter of the events arrived; once half of them did
    (delivery resumed without it), mend it; then wait until every event reached every
    client. Says when the fault began and when the bridges were back."""
    await run.fleet.reached(run.sent // 4, timeout=60)
    connections = [bridge.count("connected to") for bridge in run.bridges]
    began = time.monotonic()
    await asyncio.to_thread(fault)
    reconnected = []
    for bridge, before in zip(run.bridges, connections, strict=True):
        await bridge.counted("connected to", before + 1, 60)
        reconnected.append(time.monotonic() - began)
    await run.fleet.reached(run.sent // 2, timeout=60)
    await asyncio.to_thread(restore)
    await run.published(120)
    # On a timeout the counts say what is missing.
    with contextlib.suppress(TimeoutError):
        await run.fleet.reached(run.sent, timeout=60)
    return f"bridges consuming again {max(reconnected):.1f} s after the fault began"


async def test_the_node_that_leads_the_queues_stops(cluster: Cluster, tmp_path: Path) -> None:
    """Scenario (a): ``rabbitmqctl stop_app`` on the leader of the instance queues."""
    async with loaded(cluster, tmp_path, sent=6000) as run:
        leaders = await asyncio.to_thread(run.leaders)
        assert len(leaders) == 1, f"both bridges came to node 1 first: {leaders}"
        (leader,) = leaders
        recovery = await through(run, leader.stop_app, leader.start_app)
    print(run.report(f"stop_app of the leader {leader.name}", recovery))
    run.check()


async def test_the_node_that_leads_the_queues_is_killed(cluster: Cluster, tmp_path: Path) -> None:
    """Scenario (a): SIGKILL of the leader's Erlang VM, then it boots again."""
    async with loaded(cluster, tmp_path, sent=6000) as run:
        (leader, *_) = await asyncio.to_thread(run.leaders)
        recovery = await through(run, leader.kill, leader.start)
    print(run.report(f"SIGKILL of the leader {leader.name}", recovery))
    run.check()


def rolling_restart(cluster: Cluster) -> None:
    """Stop and start each node in turn, each time once no queue would lose its quorum
    without it, as an operator's upgrade does."""
    for node in cluster.nodes:
        cluster.await_quorum_plus_one(node)
        node.stop()
        node.start()


async def test_a_rolling_restart_of_every_node(cluster: Cluster, tmp_path: Path) -> None:
    """Scenario (b): each of the three nodes stopped and started in turn, under load."""
    async with loaded(cluster, tmp_path, sent=12000) as run:
        await run.fleet.reached(run.sent // 4, timeout=60)
        began = time.monotonic()
        await asyncio.to_thread(rolling_restart, cluster)
        took = time.monotonic() - began
        await run.published(120)
        with contextlib.suppress(TimeoutError):
            await run.fleet.reached(run.sent, timeout=60)
    print(run.report("rolling restart of 3 nodes", f"the restart took {took:.0f} s"))
    run.check()


async def test_a_bridge_given_only_the_surviving_nodes_works(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Scenario (c): node 1 is down before the bridges start; they know only 2 and 3."""
    one, two, three = cluster.nodes
    await asyncio.to_thread(one.stop_app)
    try:
        async with loaded(cluster, tmp_path, sent=2000, bridge_nodes=[two, three]) as run:
            await run.published(60)
            with contextlib.suppress(TimeoutError):
                await run.fleet.reached(run.sent, timeout=60)
    finally:
        await asyncio.to_thread(one.start_app)
    print(run.report("bridges given nodes 2 and 3 while node 1 is down", "no fault meanwhile"))
    run.check()
