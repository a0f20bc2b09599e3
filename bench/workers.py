"""``serve --workers``: what 2 bridge processes give against 1 on this machine (issue 17).

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    uv run --frozen --group bench python bench/workers.py        # 2,000 clients, 1 then 2 workers
    uv run --frozen --group bench python bench/workers.py --clients 300 --ladder-max 40
    uv run --frozen --group bench python bench/workers.py --rates 10 20 30   # fixed rates only

``event-bridge serve --workers N`` runs N bridges on one port (``SO_REUSEPORT``): the
kernel spreads the connections over them, and each worker consumes every event from a
queue of its own and writes it to its own clients. For N = 1 and 2 in turn, on the same
vhost, with the same clients and load, this finds the highest sustained rate with
``delivery.py``'s ladder (``deliverybench.ladder``: no loss, no duplicate, no client
dropped, p99 under the limit, 95 % of the rate published), and says how many clients
each worker got (the ``instance`` of each client's ``bridge:welcome``). Then a few
clients at a high event rate show what one event costs a worker whatever its clients:
the part every worker pays again. From the single worker's two costs, per event and per
delivery, it works out on paper how the highest rate grows with cores.

Nothing is pinned. The workers need both cores, and the load generator (this process:
every client, in one event loop; and its feeder process, which publishes) runs on the
same 2 cores. It is Python reading every delivery, so it takes about as much CPU as the
server: its share of the machine is printed with every number. ``--generator-core K``
pins it (and the feeder) to core K for both runs instead; the server is then still
allowed every core.

The parts are ``delivery.py``'s (``bench/deliverybench/``): the bridge's command line,
starting and stopping it, the clients, the feeder, scenarios and the ladder, CPU time
(here the parent's and every worker's, ``/proc/PID/stat``) and the steps table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from deliverybench.cli import add_ladder_limits, add_run_options
from deliverybench.clients import Client
from deliverybench.constants import (
    BRIDGE_INSTANCE,
    MIN_STEP_EVENTS,
    RATE_KEPT,
    SATURATED,
    VHOST_PREFIX,
)
from deliverybench.feeders import Broker, Feeder, broker, event_body, feeder_for
from deliverybench.ladder import Ladder, climb, sustained
from deliverybench.machine import (
    background_load,
    children,
    pin_to_core,
    raise_open_files,
    versions,
    vhost,
)
from deliverybench.output import render, steps_table
from deliverybench.progress import progress
from deliverybench.results import Kind, Result
from deliverybench.scenarios import Group, connected
from deliverybench.servers import Running, ServerSpec, bridge_command, served

from schemas.topology import instance_queue

#: Cores counted for the paper estimate.
PAPER_CORES = (1, 2, 4, 8, 16)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="serve --workers 1 against --workers 2: the highest sustained rate, "
        "CPU per delivery and p99 on this machine, the load generator on the same cores.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=2000, help="plain WebSocket clients")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker counts, in this order"
    )
    parser.add_argument(
        "--batch", action="store_true", help="measure ?batch=1 clients too (doubles the time)"
    )
    parser.add_argument(
        "--generator-core",
        type=int,
        default=None,
        help="pin the load generator and its feeder to this core, for every run "
        "(default: nothing pinned)",
    )
    ladder = parser.add_argument_group(
        "highest sustained rate: no loss, no duplicates, no client dropped, p99 under the limit"
    )
    ladder.add_argument(
        "--start-rate",
        type=float,
        default=10.0,
        help="the ladder's first step (events/s); it doubles until a step fails, then bisects",
    )
    ladder.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=None,
        help="run these fixed rates instead of the ladder; the highest sustained one counts",
    )
    add_ladder_limits(ladder)
    per_event = parser.add_argument_group(
        "the cost of one event to a worker: few clients, a high rate (1 worker's is the "
        "paper estimate's per-event cost)"
    )
    per_event.add_argument(
        "--event-clients", type=int, default=10, help="clients (0: skip this scenario)"
    )
    per_event.add_argument("--event-rate", type=float, default=400.0, help="events/s")
    add_run_options(parser)
    args = parser.parse_args(argv)
    if args.clients < 1 or min(args.workers) < 1 or args.start_rate <= 0:
        parser.error("--clients, --workers and --start-rate must be positive")
    if args.rates is not None and min(args.rates) <= 0:
        parser.error("--rates must be positive")
    # What deliverybench reads: the ladder's grid includes args.rates, and the warm-up
    # on connecting runs at min(20, *args.rates).
    args.fixed = args.rates
    args.rates = list(args.rates or [args.start_rate])
    return args


@dataclass
class Measured:
    """One worker count with one kind of client: its ladder and how the clients spread."""

    workers: int
    batch: bool
    ladder: Ladder
    #: Clients per instance, from their welcome.
    spread: Counter[str]
    #: --event-clients at --event-rate (plain clients only).
    per_event: Result | None = None
    #: Steps that failed on p99 alone, nothing saturated, and were run again.
    retried: list[Result] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.ladder.server


@dataclass
class Outcome:
    measured: list[Measured] = field(default_factory=list)
    announces: dict[str, str] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    #: How the processes were placed, for the report.
    placement: str = ""


def label(workers: int, batch: bool = False) -> str:
    return f"{workers} worker{'' if workers == 1 else 's'}" + (" ?batch=1" if batch else "")


def queues(workers: int) -> list[str]:
    """The instances' queues: ``--workers 1`` is the plain instance, more are ``NAME-n``."""
    if workers == 1:
        return [instance_queue(BRIDGE_INSTANCE).name]
    return [instance_queue(f"{BRIDGE_INSTANCE}-{n}").name for n in range(1, workers + 1)]


def transient(result: Result, workers: int, p99_limit: float) -> bool:
    """Whether ``result`` failed on p99 alone while no process or core was saturated."""
    why = sustained(result, p99_limit)
    server, generator, _ = cores_used(result)
    saturated = SATURATED / 100
    return (
        bool(why)
        and all(reason.startswith("p99") for reason in why)
        and generator < saturated
        and server < saturated * workers
        and sum(result.usage.loads) / 100 < saturated * len(result.usage.loads)
    )


@dataclass
class Retrying(Group):
    """Clients whose step, if it failed on p99 alone with nothing saturated, runs once more.

    On a shared machine one stall of one worker (another process waking, a keepalive
    round) delays an event to its ~1,000 clients: 1.7 % of a 3 s step at 20 events/s,
    more than the 1 % p99 leaves, so one stall fails the step and caps the ladder below
    it. Such a step says nothing of the server: it runs again once and the second one
    counts (the first is listed in the report). Every worker count gets the same rule.
    """

    workers: int = 1
    retried: list[Result] = field(default_factory=list)

    async def run(
        self, rate: float, kind: Kind, duration: float | None = None, drain: float | None = None
    ) -> Result:
        result = await super().run(rate, kind, duration, drain)
        if transient(result, self.workers, self.args.p99_limit):
            progress("  p99 alone failed with nothing saturated: the step runs once more")
            self.retried.append(result)
            result = await super().run(rate, kind, duration, drain)
        return result


async def ladder_on(group: Group, name: str, args: argparse.Namespace) -> Ladder:
    """The highest-sustained-rate steps on ``group``'s clients (or the fixed --rates)."""
    ladder = Ladder(name, len(group.clients))
    for rate in args.fixed or [args.start_rate]:
        duration = max(args.step_duration, MIN_STEP_EVENTS / rate)
        ladder.steps.append(await group.run(rate, Kind.STEP, duration, args.step_drain))
    if args.fixed is None:
        await climb(group, ladder)
    return ladder


async def measure_workers(
    server: Running, spec: ServerSpec, feeder: Feeder, args: argparse.Namespace, workers: int
) -> list[Measured]:
    found = []
    for batch in (False, True) if args.batch else (False,):
        # The name its scenarios carry, so that the steps table tells the modes apart.
        named = replace(server, name=label(workers, batch))
        async with connected(named, spec, feeder, args, count=args.clients, batch=batch) as group:
            spread = Counter(
                (c.instance or "?") if isinstance(c, Client) else "?" for c in group.clients
            )
            progress(f"  clients per instance: {dict(sorted(spread.items()))}")
            if len(spread) < workers:
                progress(f"  WARNING: {workers} workers, but clients reached only {len(spread)}")
            retrying = Retrying(
                **{f.name: getattr(group, f.name) for f in fields(Group)}, workers=workers
            )
            ladder = await ladder_on(retrying, named.name, args)
        found.append(Measured(workers, batch, ladder, spread, retried=retrying.retried))
    if args.event_clients:
        async with connected(server, spec, feeder, args, count=args.event_clients) as few:
            found[0].per_event = await few.run(
                args.event_rate, Kind.FIXED, args.step_duration, args.step_drain
            )
    return found


async def bench(
    args: argparse.Namespace, broker_url: str, workdir: Path, cores: str, outcome: Outcome
) -> None:
    task = asyncio.current_task()
    assert task is not None
    # As delivery.py: SIGINT may arrive ignored (a background job), and SIGTERM must clean up.
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    async with broker(broker_url) as pub:
        for workers in args.workers:
            name = label(workers)
            command = bridge_command(broker_url, workdir / f"state-{workers}")
            spec = ServerSpec(name, (*command, "--workers", str(workers)), health="/api/health")
            started = time.monotonic()
            try:
                async with served(spec, workdir / f"{workers}-workers.log", cores=cores) as up:
                    # The parent only supervises: the server's CPU is its and its workers'.
                    server = replace(up, tree=True)
                    outcome.announces[name] = server.announce
                    pids = children(server.pid) if workers > 1 else []
                    affinity = sorted(os.sched_getaffinity(server.pid))
                    progress(
                        f"{name}: pid {server.pid}, workers {pids or 'itself'}, port "
                        f"{server.port}, cores {affinity}"
                    )
                    async with feeder_for(spec, server, broker_url, args, workdir) as feeder:
                        outcome.measured += await measure_workers(
                            server, spec, feeder, args, workers
                        )
            except (RuntimeError, OSError, TimeoutError) as exc:
                outcome.failed[name] = f"failed: {exc}"
                progress(f"{name}: FAILED: {exc}")
            finally:
                await forget_queues(pub, workers)
                progress(f"{name}: {time.monotonic() - started:.0f} s")


async def forget_queues(pub: Broker, workers: int) -> None:
    """Delete the stopped workers' queues, which would keep storing every later event."""
    for queue in queues(workers):
        await pub.delete_queue(queue)


# The report


def cores_used(result: Result) -> tuple[float, float, float]:
    """Server, load generator, and the rest (RabbitMQ, anything else), in cores."""
    usage = result.usage
    seconds = usage.seconds or float("nan")
    server, generator = usage.server / seconds, usage.generator / seconds
    busy = sum(usage.loads) / 100
    return server, generator, max(0.0, busy - server - generator)


def stopped_by(result: Result, workers: int, p99_limit: float) -> str:
    """What held back a failing step, nothing being pinned: the generator's one loop, the
    workers, or the machine (both cores busy between them and RabbitMQ)."""
    server, generator, rest = cores_used(result)
    busy = sum(result.usage.loads) / 100
    cores = len(result.usage.loads)
    saturated = SATURATED / 100
    short = result.published.failed or result.published.rate < RATE_KEPT * result.scenario.rate
    confirm = 1000 * result.published.slowest_confirm
    shares = f"server {server:.2f}, gen {generator:.2f}, rest {rest:.2f} cores"
    causes = (
        (generator >= saturated, f"load generator: {generator:.2f} cores ({shares})"),
        (server >= saturated * workers, f"server: {server:.2f} cores for {workers} ({shares})"),
        (busy >= saturated * cores, f"the machine: {busy:.2f} of {cores} cores busy ({shares})"),
        (short, f"the feeder: {', '.join(sustained(result, float('inf')))} ({shares})"),
        (confirm >= p99_limit, f"RabbitMQ: a confirm took {confirm:.0f} ms ({shares})"),
    )
    return next((text for hit, text in causes if hit), f"nothing saturated ({shares})")


SUMMARY_HEADERS = (
    "server", "batch", "clients", "per worker", "max rate", "events/s", "deliveries/s",
    "p99 ms", "server cores", "gen cores", "rest cores", "µs/delivery", "first failure",
    "stopped by",
)  # fmt: skip


def summary_row(m: Measured, args: argparse.Namespace) -> list[str]:
    top = m.ladder.best(args.p99_limit)
    failing = m.ladder.first_failure(args.p99_limit)
    spread = "/".join(str(n) for _, n in sorted(m.spread.items()))
    cells = ["-"] * 8
    if top is not None:
        server, generator, rest = cores_used(top)
        cells = [
            f"{top.scenario.rate:g}",
            f"{top.published.rate:.1f}",
            f"{top.delivered / top.seconds:,.0f}",
            f"{top.percentile(0.99):.1f}",
            f"{server:.2f}",
            f"{generator:.2f}",
            f"{rest:.2f}",
            f"{top.cpu_us_per_event:.2f}",
        ]
    elif m.ladder.steps:
        # Not even the lowest step: "< X" as in delivery.py's table.
        cells[0] = f"< {min(r.scenario.rate for r in m.ladder.steps):g}"
    if failing is None:
        tail = ["none up to --ladder-max" if args.fixed is None else "none", "-"]
    else:
        why = ", ".join(sustained(failing, args.p99_limit))
        tail = [
            f"{failing.scenario.rate:g}/s: {why}",
            stopped_by(failing, m.workers, args.p99_limit),
        ]
    return [m.name.split(" ?")[0], "on" if m.batch else "off", str(m.ladder.clients), spread,
            *cells, *tail]  # fmt: skip


def ratio_row(two: Measured, one: Measured, args: argparse.Namespace) -> list[str] | None:
    """``two`` / ``one`` for every number of the summary."""
    a, b = two.ladder.best(args.p99_limit), one.ladder.best(args.p99_limit)
    if a is None or b is None:
        return None
    ca, cb = cores_used(a), cores_used(b)

    def div(x: float, y: float) -> str:
        return f"{x / y:.2f}x" if y else "-"

    return [
        f"{two.name.split(' ?')[0]} / {one.name.split(' ?')[0]}", "on" if two.batch else "off",
        "", "", div(a.scenario.rate, b.scenario.rate), div(a.published.rate, b.published.rate),
        div(a.delivered / a.seconds, b.delivered / b.seconds),
        div(a.percentile(0.99), b.percentile(0.99)),
        div(ca[0], cb[0]), div(ca[1], cb[1]), div(ca[2], cb[2]),
        div(a.cpu_us_per_event, b.cpu_us_per_event), "", "",
    ]  # fmt: skip


def same_rate(two: Measured, one: Measured, args: argparse.Namespace) -> str | None:
    """Both at the highest rate both sustained: what the second worker costs or saves."""
    ok = {
        w: {r.scenario.rate: r for r, why in m.ladder.verdicts(args.p99_limit) if not why}
        for w, m in ((2, two), (1, one))
    }
    common = sorted(set(ok[1]) & set(ok[2]))
    if not common:
        return None
    rate = common[-1]
    a, b = ok[2][rate], ok[1][rate]
    (sa, ga, _), (sb, gb, _) = cores_used(a), cores_used(b)
    return (
        f"  at {rate:g} events/s ({b.delivered / b.seconds:,.0f} deliveries/s), the highest "
        f"rate both sustained: server {sa:.2f} vs {sb:.2f} cores ({sa / sb:.2f}x), "
        f"{a.cpu_us_per_event:.2f} vs {b.cpu_us_per_event:.2f} µs/delivery, p99 "
        f"{a.percentile(0.99):.1f} vs {b.percentile(0.99):.1f} ms, load generator "
        f"{ga:.2f} vs {gb:.2f} cores"
    )


PER_EVENT_HEADERS = (
    "server", "clients", "rate", "events/s", "loss", "server cores", "µs/event", "/1 worker",
    "gen cores", "rest cores",
)  # fmt: skip


def per_event_table(measured: list[Measured]) -> str | None:
    rows, base = [], None
    for m in measured:
        r = m.per_event
        if r is None:
            continue
        cost = 1e6 * r.usage.server / max(r.published.attempted, 1)
        base = cost if base is None and m.workers == 1 else base
        server, generator, rest = cores_used(r)
        rows.append([
            m.name, str(r.clients), f"{r.scenario.rate:g}", f"{r.published.rate:.1f}",
            str(r.loss), f"{server:.2f}", f"{cost:.0f}", f"{cost / base:.2f}" if base else "-",
            f"{generator:.2f}", f"{rest:.2f}",
        ])  # fmt: skip
    return render(PER_EVENT_HEADERS, rows) if rows else None


@dataclass(frozen=True)
class Costs:
    """One worker's CPU: ``per_event`` whatever its clients, ``per_delivery`` per client."""

    per_event: float
    per_delivery: float
    clients: int
    #: The rate of the many-client reading: a delivery costs more at lower rates.
    rate: float
    #: Where they come from, for the report.
    source: str


def costs(measured: list[Measured], args: argparse.Namespace) -> Costs | None:
    """Two readings of the single worker, few and many clients: seconds per event =
    per_event + clients x per_delivery, solved for both."""
    one = next((m for m in measured if m.workers == 1 and not m.batch), None)
    if one is None or one.per_event is None or (top := one.ladder.best(args.p99_limit)) is None:
        return None
    few, many = one.per_event, top
    a = few.usage.server / max(few.published.attempted, 1)
    b = many.usage.server / max(many.published.attempted, 1)
    if many.clients <= few.clients:
        return None
    per_delivery = (b - a) / (many.clients - few.clients)
    per_event = max(0.0, a - few.clients * per_delivery)
    source = (
        f"1 worker: {1e6 * a:.0f} µs per event at {few.clients} clients x "
        f"{few.scenario.rate:g}/s, {1e6 * b:.0f} µs per event at {many.clients} clients x "
        f"{many.scenario.rate:g}/s"
    )
    return Costs(per_event, per_delivery, many.clients, many.scenario.rate, source)


PAPER_HEADERS = ("cores = workers", "events/s", "deliveries/s", "/1 worker")


def checked(c: Costs, measured: list[Measured], args: argparse.Namespace) -> list[str]:
    """The two costs against what the other worker counts spent at their highest sustained
    rate: N x per_event + clients x per_delivery for each event."""
    lines = []
    for m in measured:
        top = m.ladder.best(args.p99_limit)
        if m.workers == 1 or m.batch or top is None:
            continue
        events = top.published.attempted
        predicted = events * (m.workers * c.per_event + top.clients * c.per_delivery)
        seconds = top.usage.seconds or float("nan")
        # Below the rate the costs come from, fewer events share a write to a client, so
        # a delivery costs more: the estimate is then low.
        lines.append(
            f"  check: {m.name} at {top.scenario.rate:g} events/s, {top.clients:,} clients: "
            f"{predicted / seconds:.2f} server cores by these costs, "
            f"{top.usage.server / seconds:.2f} measured"
            + (
                f" (the costs are from {c.rate:g} events/s; at lower rates fewer events share "
                "a write, and a delivery costs more)"
                if top.scenario.rate < c.rate
                else ""
            )
        )
    return lines


def paper(c: Costs) -> tuple[str, list[str]]:
    """The highest rate of N workers on N cores at c.clients, from the two costs.

    Each worker receives every event and writes to clients / N of the clients, so its
    core carries rate x (per_event + clients / N x per_delivery); it is saturated at
    SATURATED % of it. The load generator and RabbitMQ are taken to be elsewhere.
    """
    usable = SATURATED / 100
    rows = []
    base = None
    for n in PAPER_CORES:
        rate = usable / (c.per_event + c.clients / n * c.per_delivery)
        base = base or rate
        rows.append([str(n), f"{rate:,.0f}", f"{rate * c.clients:,.0f}", f"{rate / base:.2f}"])
    limit = (c.per_event + c.clients * c.per_delivery) / c.per_event if c.per_event else None
    notes = [
        f"  per event {1e6 * c.per_event:.0f} µs (every worker pays it: it receives, parses "
        f"and checks each event), per delivery {1e6 * c.per_delivery:.2f} µs (split: each "
        f"worker writes to its own clients); from {c.source}",
        f"  so N workers on N cores, at {c.clients:,} clients, each core at {SATURATED:.0f} %: "
        f"rate = {usable:g} / ({1e6 * c.per_event:.0f} µs + {c.clients:,} / N x "
        f"{1e6 * c.per_delivery:.2f} µs)"
        + (
            f"; however many cores, never more than {usable / c.per_event:,.0f} events/s "
            f"({limit:.0f}x one core's): every worker handles every event"
            if limit
            else ""
        ),
    ]
    if c.per_delivery > 0:
        notes.append(
            f"  the two weigh the same at {c.per_event / c.per_delivery:.0f} clients per "
            "worker: with fewer, another worker mostly repeats the per-event work"
        )
    return render(PAPER_HEADERS, rows), notes


LEGEND = """
Nothing is pinned unless said above: the workers, the load generator (this process, every
  client in one event loop, and its feeder process) and RabbitMQ share the machine's cores.
server: `event-bridge serve --workers N`; its CPU (server %, server cores) is the parent's
  and every worker's (utime + stime, /proc/PID/stat, and the parent's cutime + cstime).
per worker: clients each worker took, from the "instance" of their bridge:welcome.
max rate: the highest sustained step (no loss, no duplicate, no client dropped, p99 under
  {p99:g} ms, at least {kept:.0%} of the rate published), as delivery.py's ladder finds it:
  steps of {step:g} s from --start-rate, doubling until one fails, then bisected. A step
  that failed on p99 alone while no process or core was saturated (one stall of one worker
  fails a step) is run once more and the second counts; the first is listed below the table.
events/s: published and confirmed; deliveries/s: received by all clients together.
server cores, gen cores: CPU seconds per second of the server and of the load generator
  (this process + the feeder) at that step; rest cores: the cores' load (/proc/stat) minus
  both, i.e. RabbitMQ and whatever else ran. server % and gen % in the steps table are
  the same in % of one core (server % can pass 100 with several workers).
µs/delivery: server CPU per event received by one client.
stopped by, at the lowest failing step: the load generator (>= {sat:.0f} % of a core: one
  event loop reads every client), the server (>= {sat:.0f} % of a core per worker), the
  machine (both cores >= {sat:.0f} % busy between them and RabbitMQ), the feeder (events
  not sent on time), RabbitMQ (a publisher confirm took longer than the p99 limit).
One event: --event-clients clients at --event-rate: µs/event is server CPU per published
  event, nearly all of it what each worker does with every event whatever its clients;
  /1 worker near 2 with 2 workers: that work is done twice. rest cores there is mostly
  RabbitMQ, which stores and sends each event once per worker's queue.
On paper: from 1 worker's µs per event at few and at many clients, per event and per
  delivery costs; each of N workers on its own core pays the first for every event and the
  second for clients / N clients. It leaves out the load generator (elsewhere) and RabbitMQ,
  which stores and sends every event once per worker (a quorum queue each)."""


def summary(outcome: Outcome, args: argparse.Namespace) -> list[str]:
    """The summary table, its ratio rows (2 workers / 1 worker), the same-rate comparison
    and the load generator's share of the machine, as printed."""
    rows = [summary_row(m, args) for m in outcome.measured]
    lines = []
    for batch in (False, True):
        mine = {m.workers: m for m in outcome.measured if m.batch == batch}
        for workers, m in mine.items():
            if workers == 1 or 1 not in mine:
                continue
            if (ratio := ratio_row(m, mine[1], args)) is not None:
                rows.append(ratio)
            if (line := same_rate(m, mine[1], args)) is not None:
                lines.append(line)
    if not rows:
        return []
    for m in outcome.measured:
        if (top := m.ladder.best(args.p99_limit)) is not None:
            server, generator, rest = cores_used(top)
            lines.append(
                f"  {m.name}: the load generator used {generator:.2f} of {len(top.usage.loads)} "
                f"cores at its highest sustained rate (server {server:.2f}, RabbitMQ and the "
                f"rest {rest:.2f}; {sum(top.usage.loads) / 100:.2f} busy in all)"
            )
    for m in outcome.measured:
        for r in m.retried:
            server, generator, rest = cores_used(r)
            lines.append(
                f"  {m.name} at {r.scenario.rate:g}/s: a first try failed on p99 alone "
                f"({r.percentile(0.99):.0f} ms; server {server:.2f}, gen {generator:.2f}, rest "
                f"{rest:.2f} cores) and was run again: the table has the second"
            )
    for m in outcome.measured:
        # From each client's welcome: SO_REUSEPORT spread them, or one worker did it all.
        spread = ", ".join(f"{k} {n}" for k, n in sorted(m.spread.items()))
        lines.append(f"  {m.name}: clients per instance: {spread}")
    return ["", "Highest sustained rate, by workers:", render(SUMMARY_HEADERS, rows), *lines]


def report(args: argparse.Namespace, outcome: Outcome, header: str, payload: int) -> None:
    print()
    print(header)
    for name, line in outcome.announces.items():
        print(f"  {name}: {line}")
    print(
        f"{args.clients} clients, steps of {args.step_duration:g} s, events of {payload} "
        f"bytes; {outcome.placement}"
    )
    if steps := steps_table([m.ladder for m in outcome.measured], args.p99_limit):
        print(f"\nHighest sustained rate: every step:\n{steps}")
    if lines := summary(outcome, args):
        print("\n".join(lines))
    if table := per_event_table(outcome.measured):
        title = f"One event, {args.event_clients} clients at {args.event_rate:g} events/s"
        print(f"\n{title}:\n{table}")
    if (c := costs(outcome.measured, args)) is not None:
        table, notes = paper(c)
        print(f"\nOn paper: N workers on N cores, at {c.clients:,} clients:\n{table}")
        print("\n".join([*notes, *checked(c, outcome.measured, args)]))
    if outcome.failed:
        print("\nNot measured:")
        print("\n".join(f"  {name}: {why}" for name, why in outcome.failed.items()))
    print(LEGEND.format(p99=args.p99_limit, kept=RATE_KEPT, step=args.step_duration, sat=SATURATED))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    every = list(range(os.cpu_count() or 1))
    cores = ",".join(str(c) for c in every)
    if args.generator_core is None:
        # Unpinned, even if whoever started us was not: the workers need every core, and
        # the feeder and the server inherit this process's affinity.
        os.sched_setaffinity(0, every)
        placement = f"nothing pinned: server, load generator and feeder on cores {cores}"
    else:
        pin_to_core(args.generator_core)
        placement = (
            f"load generator and feeder pinned to core {args.generator_core}, server on "
            f"cores {cores}"
        )
    raise_open_files(max(args.clients, args.event_clients))
    header = versions() + "\n" + background_load()
    payload = len(event_body("0" * 12, 0, args.pad))
    progress(header)
    outcome = Outcome(placement=placement)
    with vhost() as name, tempfile.TemporaryDirectory(prefix=VHOST_PREFIX) as tmp:
        progress(f"vhost {name}; {placement}")
        try:
            asyncio.run(bench(args, f"{args.amqp}/{name}", Path(tmp), cores, outcome))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("workers: interrupted; cleaning up")
            return 130
    report(args, outcome, header, payload)
    return 0 if outcome.measured else 1


if __name__ == "__main__":
    sys.exit(main())
