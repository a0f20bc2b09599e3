"""Faults under load (issue 8): a real bridge process, the real RabbitMQ, real clients.

Each test prints its counts (sent, delivered, lost, duplicated) for
docs/reliability.md; run them alone with ``./scripts/test tests/test_faults.py -s``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import statistics
import subprocess
import time
import uuid
from pathlib import Path
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest
from websockets.asyncio.client import connect

from bridge.config import Limits
from schemas.topology import DEAD_LETTER_QUEUE
from tests.support import feeder as feeding
from tests.support.fleet import Fleet
from tests.support.load import BridgeProcess, Publisher, Tally, counting, p99, summary

POISON_KINDS = (
    b"not json at all",
    b'{"id": "x", "type": "no:such:type", "data": {}}',
    b'{"id": "x", "type": "reserva:creada", "data": {"reserva": "not an object"}}',
    b"[1, 2, 3]",
)


def vhost_of(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).path[1:])


async def dead_letters(amqp_url: str, prefix: str) -> dict[str, str]:
    """The reasons of the dead letters whose message id starts with ``prefix``.

    Other tests of this run dead-letter too: their messages are left in place.
    """
    found: dict[str, str] = {}
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.get_queue(DEAD_LETTER_QUEUE.name, ensure=True)
        # Unacknowledged messages go back to the queue when the channel closes.
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            if (message.message_id or "").startswith(prefix):
                found[message.message_id or ""] = str(message.headers.get("x-bridge-error"))
    return found


@pytest.mark.timing
async def test_poison_messages_are_dead_lettered_and_the_good_ones_arrive_on_time(
    own_amqp_url: str, tmp_path: Path
) -> None:
    """Issue 8, scenario 5: 100 malformed messages mixed into 10,000 good ones.

    The baseline is good events without poison, in blocks between the poisoned
    ones, so that whatever else this machine is doing weighs on both alike.
    """
    good, bad, block, rate = 10_000, 100, 500, 500.0
    # Two poisoned blocks, one clean, and again: 10,000 good events beside poison, 5,000 without.
    blocks = [n % 3 != 1 for n in range(3 * good // (2 * block))]
    poisoned_blocks = {n for n, poisoned in enumerate(blocks) if poisoned}
    every = block * len(poisoned_blocks) // bad
    poison = {
        n * block + offset: POISON_KINDS[(n + offset) % len(POISON_KINDS)]
        for n in poisoned_blocks
        for offset in range(0, block, every)
    }
    total = len(blocks) * block
    run = uuid.uuid4().hex[:8]
    publisher = Publisher(own_amqp_url)
    tally = Tally(expected=total)
    async with (
        # Strict, with the seed's catalog: an unknown type and a misfit are poison too.
        BridgeProcess(
            own_amqp_url,
            "faults-poison",
            tmp_path,
            *("--catalog", "api_rest.events", "--strict-events"),
        ) as bridge,
        counting(bridge.port, run, tally),
    ):
        await bridge.logged("connected to", 15)
        await publisher.steady(run, total, rate, poison, inflight=50)
        await tally.received()
    await publisher.close()
    reasons = await dead_letters(own_amqp_url, f"poison-{run}-")
    latency = dict(zip(tally.seqs, tally.latencies, strict=True))
    by_block = [[latency[s] for s in range(n * block, (n + 1) * block)] for n in range(len(blocks))]
    mixed = [x for n, values in enumerate(by_block) if n in poisoned_blocks for x in values]
    calm = [x for n, values in enumerate(by_block) if n not in poisoned_blocks for x in values]
    # A block's p99, typical over the blocks of each kind: one stall of this shared
    # machine spoils one block, not the comparison.
    typical_mixed = statistics.median(
        p99(v) for n, v in enumerate(by_block) if n in poisoned_blocks
    )
    typical_calm = statistics.median(
        p99(v) for n, v in enumerate(by_block) if n not in poisoned_blocks
    )
    print(
        summary("poison", total, [tally]),
        f"dead-lettered {len(reasons)} of {bad}; p99 beside poison {1000 * p99(mixed):.1f} ms, "
        f"without {1000 * p99(calm):.1f} ms; a block's p99, median: {1000 * typical_mixed:.1f} ms "
        f"beside poison, {1000 * typical_calm:.1f} ms without",
    )
    assert (len(poison), len(mixed), len(calm)) == (bad, good, total - good)
    assert (tally.lost(total), tally.duplicated(), tally.in_order()) == (0, 0, True)
    assert len(reasons) == bad
    assert all(reason not in ("", "None") for reason in reasons.values())
    assert typical_mixed < 2 * typical_calm


@pytest.mark.timing
async def test_a_dropped_rabbitmq_connection_is_back_within_10_s_and_nothing_is_lost(
    own_amqp_url: str, tmp_path: Path
) -> None:
    """Issue 8, scenario 4: ``rabbitmqctl close_all_connections`` under load."""
    sent, rate = 3000, 300.0
    run = uuid.uuid4().hex[:8]
    publisher = Publisher(own_amqp_url)
    async with BridgeProcess(own_amqp_url, "faults-dropped", tmp_path) as bridge:
        await bridge.logged("connected to", 15)
        tallies = [Tally(expected=sent) for _ in range(10)]
        async with contextlib.AsyncExitStack() as clients:
            for tally in tallies:
                await clients.enter_async_context(counting(bridge.port, run, tally))
            publishing = asyncio.create_task(publisher.steady(run, sent, rate, {}))
            await tallies[0].received(sent // 3)
            back = asyncio.create_task(bridge.logged("connected to", 30))
            dropped = time.monotonic()
            await asyncio.to_thread(
                subprocess.run,
                [
                    "rabbitmqctl",
                    "close_all_connections",
                    "-p",
                    vhost_of(own_amqp_url),
                    "fault test",
                ],
                check=True,
                capture_output=True,
            )
            await back
            recovered = time.monotonic() - dropped
            await asyncio.wait_for(publishing, 60)
            for tally in tallies:
                await tally.received()
    await publisher.close()
    print(summary("connection drop", sent, tallies), f"back after {recovered:.1f} s")
    assert recovered < 10
    assert [(t.lost(sent), t.duplicated(), t.in_order()) for t in tallies] == [(0, 0, True)] * 10


def open_files(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for process {pid}")


async def churn(bridge: BridgeProcess, count: int, concurrency: int = 20) -> None:
    """Open ``count`` connections, each read its welcome and closed cleanly, then wait
    until the bridge logged every one of them closed."""
    closed = bridge.count("connection closed") + count
    gate = asyncio.Semaphore(concurrency)

    async def one() -> None:
        async with gate, connect(f"ws://127.0.0.1:{bridge.port}/ws") as ws:
            await ws.recv()

    await asyncio.gather(*(one() for _ in range(count)))
    await bridge.counted("connection closed", closed, timeout=30)


@pytest.mark.timing
async def test_connection_churn_leaves_no_leak(own_amqp_url: str, tmp_path: Path) -> None:
    """Issue 8, scenario 7: 10,000 connects and disconnects in a minute."""
    async with BridgeProcess(own_amqp_url, "faults-churn", tmp_path) as bridge:
        await bridge.logged("connected to", 15)
        await churn(bridge, 1000)  # warm-up: the allocator's pools, the imports
        files, memory = open_files(bridge.pid), resident_kib(bridge.pid)
        started = time.monotonic()
        await churn(bridge, 10_000)
        seconds = time.monotonic() - started
        files_after, memory_after = open_files(bridge.pid), resident_kib(bridge.pid)
    print(
        f"churn: 10,000 connections in {seconds:.1f} s; open files {files} -> {files_after}, "
        f"resident {memory / 1024:.1f} -> {memory_after / 1024:.1f} MiB"
    )
    assert seconds < 60
    assert files_after == files
    assert memory_after - memory < 4 * 1024


@pytest.mark.timeout(180)
async def test_a_killed_instance_s_clients_resume_on_the_other_exactly_once_in_order(
    own_amqp_url: str, tmp_path: Path
) -> None:
    """Issue 8, scenario 3: an instance SIGKILLed under load, 200 events/s to 1,000 clients.

    Its clients reconnect to the other instance and resume after the last
    event they saw; that instance's own queue brought it every event, so its
    history holds the ones they missed.
    """
    sent, rate, clients = 3000, 200.0, 1000
    run = uuid.uuid4().hex[:8]
    fleet = Fleet(run, marks=(sent // 3, sent))
    async with contextlib.AsyncExitStack() as stack:
        bridges = []
        for name in ("faults-killed", "faults-survivor"):
            # 10 s of events at 200/s: room for every client's reconnection (docs/operations.md).
            bridge = BridgeProcess(own_amqp_url, name, tmp_path, "--history-size", "2000")
            bridges.append(await stack.enter_async_context(bridge))
            await bridges[-1].logged("connected to", 15)
        doomed, survivor = bridges
        try:
            await fleet.open(doomed.port, clients)
            fleet.reconnect_to = survivor.port
            feeder = await feeding.started(own_amqp_url, run, sent, rate)
            await fleet.reached(sent // 3, timeout=60)
            doomed.kill()
            killed = time.monotonic()
            await feeding.finished(feeder, 60)
            published = time.monotonic()
            # On a timeout the counts below say what is missing.
            with contextlib.suppress(TimeoutError):
                await fleet.reached(sent, timeout=30)
            caught_up = time.monotonic() - killed
        finally:
            await fleet.close()
    watchers = fleet.watchers
    delivered, lost, duplicates = fleet.totals(sent)
    print(
        f"killed instance: sent {sent} x {clients} clients at {rate:.0f}/s, delivered {delivered} "
        f"after dropping {duplicates} repeats by id, lost {lost}; "
        f"{sum(w.reconnects for w in watchers)} reconnections, "
        f"{sum(w.resets for w in watchers)} resets; every client was back on the other "
        f"instance {max(w.welcomed for w in watchers) - killed:.1f} s after the kill "
        f"and had every event {caught_up:.1f} s after it (publishing ended "
        f"{published - killed:.1f} s after it)"
    )
    assert sum(w.resets for w in watchers) == 0
    assert (delivered, lost) == (sent * clients, 0)
    assert all(w.reconnects == 1 for w in watchers)
    assert all(w.in_order() for w in watchers)


def resident_mib(pid: int) -> float:
    return resident_kib(pid) / 1024


async def latency_nobody_frozen(
    bridge: BridgeProcess, amqp_url: str, clients: int, rate: float, sent: int = 1000
) -> float:
    """The median of the p99 latency of blocks of 500 events, every client reading.

    The clients are closed afterwards, and the bridge has logged every close.
    """
    control = Fleet(uuid.uuid4().hex[:8], marks=(sent,))
    try:
        await control.open(bridge.port, clients)
        feeder = await feeding.started(amqp_url, control.run, sent, rate)
        await feeding.finished(feeder, 60)
        await control.reached(sent, timeout=30)
    finally:
        await control.close()
    await bridge.counted("connection closed", clients, timeout=30)
    return statistics.median(control.p99(block=500))


@pytest.mark.timeout(180)
@pytest.mark.timing
async def test_a_client_that_stops_reading_is_dropped_and_the_others_stay_on_time(
    own_amqp_url: str, tmp_path: Path
) -> None:
    """Issue 8, scenario 6: one client stops reading while 1,000 others get 200 events/s.

    The others ask for batches (``?batch=1``): one frame per client per event,
    200,000 frames/s, is more than the bridge and the test's clients can write
    and read on this machine's two cores. A batch waits up to the batch window
    (100 ms) by design, so their latency is held to under 100 ms beyond it. The
    frozen client reads one frame per event; ``--max-send-buffer`` is lowered
    so that it fills within seconds at this rate.

    "On time" is measured against the same clients first, with nobody frozen:
    this shared two-core machine's own latency at this load varies by 2x from
    day to day, while a frozen client that held the others up would cost
    seconds.
    """
    sent, rate, clients = 4000, 200.0, 1000
    limit, window = 64 * 1024, Limits.batch_window
    run = uuid.uuid4().hex[:8]
    fleet = Fleet(run, marks=(sent,))
    frozen = Fleet(run, marks=(sent,), path="/ws")
    args = ("--max-send-buffer", str(limit))
    async with BridgeProcess(own_amqp_url, "faults-slow", tmp_path, *args) as bridge:
        await bridge.logged("connected to", 15)
        unfrozen = await latency_nobody_frozen(bridge, own_amqp_url, clients, rate)
        try:
            await fleet.open(bridge.port, clients)
            await frozen.open(bridge.port, 1)
            memory = resident_mib(bridge.pid)
            frozen.watchers[0].stop_reading()
            stopped = time.monotonic()
            dropped = asyncio.create_task(bridge.logged("slow client dropped", 60))
            # Nobody else closes meanwhile: the next connection closed is the frozen one.
            closed = asyncio.create_task(bridge.logged("connection closed", 60))
            feeder = await feeding.started(own_amqp_url, run, sent, rate)
            await dropped
            noticed = time.monotonic() - stopped
            await closed
            cut = time.monotonic() - stopped
            peak = resident_mib(bridge.pid)
            await feeding.finished(feeder, 60)
            # On a timeout the counts below say what is missing.
            with contextlib.suppress(TimeoutError):
                await fleet.reached(sent, timeout=30)
            memory_after = resident_mib(bridge.pid)
        finally:
            await fleet.close()
            await frozen.close()
    buffered = int(re.findall(r"slow client dropped.* buffered=(\d+)", bridge.log.read_text())[0])
    watchers = fleet.watchers
    delivered, lost, duplicates = fleet.totals(sent)
    (latency,), blocks = fleet.p99(), fleet.p99(block=500)
    typical = statistics.median(blocks)
    print(
        f"slow client: dropped with {buffered} bytes waiting (limit {limit}) "
        f"{noticed:.1f} s after it stopped reading, cut {cut - noticed:.1f} s later; "
        f"others: sent {sent} x {clients} at {rate:.0f}/s, delivered {delivered}, lost {lost}, "
        f"duplicated {duplicates}; p99 {1000 * latency:.1f} ms, a 500-event block's "
        f"{1000 * typical:.1f} ms (median; worst {1000 * max(blocks):.1f} ms), "
        f"{1000 * unfrozen:.1f} ms with nobody frozen, with a batch "
        f"window of {1000 * window:.0f} ms; bridge resident {memory:.1f} -> {peak:.1f} -> "
        f"{memory_after:.1f} MiB"
    )
    # The limit is checked before each write: one event's frame over it at most.
    assert limit < buffered < limit + 1024
    assert cut - noticed < Limits.close_timeout + 1
    assert (delivered, lost, duplicates) == (sent * clients, 0, 0)
    assert all(w.in_order() for w in watchers)
    # The median block, as in the poison test: one stall of this shared machine's
    # disk under RabbitMQ spoils one block, not the comparison.
    # 3x: the control has 2 blocks, the run 8, and this machine's own spread between two
    # such runs reached 2.2x (0.62 against 0.28 s); a client that held the others up
    # would cost seconds.
    assert typical < 3 * unfrozen + 0.100
    assert peak - memory < 16
