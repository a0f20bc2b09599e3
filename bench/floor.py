"""The bridge against the raw-write floor, taking turns (issue 19).

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    uv run --frozen --group bench python bench/floor.py
    uv run --frozen --group bench python bench/floor.py --rounds 5 --duration 10

The floor (``bench/baseline_floor.py``) is the least a Python server on asyncio
spends to deliver an event with one write per client: one frame built per
event, ``transport.write`` for every client, no acks, no routing, no history.
``delivery.py`` measures it once beside every other server; on this shared
machine one measurement of the same server moves by up to 12 % from one minute
to the next, as much as the difference this looks for. So here the floor and
the bridge take turns, round after round, each on 1,000 fresh clients at each
rate (``delivery.py``'s clients, feeder and CPU readings: the server pinned to
core 0, the load generator to core 1), and the table gives each one's median
over the rounds and the ratio bridge / floor, with each round's ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deliverybench.cli import add_run_options
from deliverybench.constants import BENCH, GENERATOR_CORE, VHOST_PREFIX
from deliverybench.feeders import broker, event_body, feeder_for
from deliverybench.machine import background_load, pin_to_core, raise_open_files, versions, vhost
from deliverybench.output import render
from deliverybench.progress import progress
from deliverybench.results import Kind, Result
from deliverybench.scenarios import connected
from deliverybench.servers import ServerSpec, bridge_command, served

from schemas.topology import instance_queue

#: The table's title, as bench/report.py finds it.
TITLE = "Server CPU per delivered event, the bridge against the floor"
SERVERS = ("floor", "bridge")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Server CPU per delivered event: the bridge against the raw-write "
        "floor, taking turns, each on as many fresh clients and the same load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[40.0, 80.0], help="events per second"
    )
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="turns of both servers")
    parser.add_argument(
        "--durable-floor",
        action="store_true",
        help="the floor consumes from a quorum queue and acks, as the bridge does",
    )
    add_run_options(parser)
    return parser.parse_args(argv)


@dataclass
class Cell:
    """One server at one rate: each round's result."""

    results: list[Result] = field(default_factory=list)

    @property
    def samples(self) -> list[float]:
        return [r.cpu_us_per_event for r in self.results]

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.results else None

    def p99(self, *, probes: bool) -> float | None:
        values = [r.percentile(0.99, probes=probes) for r in self.results]
        return statistics.median(values) if values else None

    @property
    def lost(self) -> int:
        return sum(r.loss for r in self.results)


def spec(name: str, broker_url: str, workdir: Path, *, durable: bool) -> ServerSpec:
    if name == "floor":
        floor = (sys.executable, str(BENCH / "baseline_floor.py"), "--port", "0")
        if durable:
            command = (*floor, "--broker", broker_url, "--durable")
            return ServerSpec(name, command, queue=instance_queue("floor").name)
        return ServerSpec(name, (*floor, "--broker", broker_url))
    return ServerSpec(
        name,
        bridge_command(broker_url, workdir / "state"),
        health="/api/health",
        queue=instance_queue("bench").name,
    )


async def measure(
    args: argparse.Namespace, broker_url: str, workdir: Path, name: str
) -> list[Result]:
    """One server, one group of clients, every rate."""
    server_spec = spec(name, broker_url, workdir, durable=args.durable_floor)
    async with (
        broker(broker_url) as pub,
        served(server_spec, workdir / f"{name}.log") as server,
        feeder_for(server_spec, server, broker_url, args, workdir) as feeder,
        connected(server, server_spec, feeder, args, count=args.clients) as group,
    ):
        try:
            return [
                await group.run(rate, Kind.FIXED, args.duration, args.drain_timeout)
                for rate in args.rates
            ]
        finally:
            if server_spec.queue:
                await pub.delete_queue(server_spec.queue)


async def bench(args: argparse.Namespace, broker_url: str, workdir: Path) -> dict:
    cells: dict[tuple[str, float], Cell] = {}
    for turn in range(args.rounds):
        # Alternate which goes first, so neither always runs on a warmer machine.
        order = SERVERS if turn % 2 == 0 else SERVERS[::-1]
        for name in order:
            try:
                results = await measure(args, broker_url, workdir, name)
            except (RuntimeError, OSError, TimeoutError) as exc:
                progress(f"{name}: FAILED: {exc}")
                continue
            for rate, result in zip(args.rates, results, strict=True):
                cells.setdefault((name, rate), Cell()).results.append(result)
                us = result.cpu_us_per_event
                progress(f"round {turn + 1}: {name} {rate:g}/s: {us:.2f} µs, lost {result.loss}")
    return cells


def table(cells: dict, args: argparse.Namespace) -> str:
    rows = []
    for rate in args.rates:
        floor, bridge = cells.get(("floor", rate)), cells.get(("bridge", rate))
        f = floor.median if floor else None
        b = bridge.median if bridge else None
        each = (
            " ".join(f"{x / y:.2f}" for x, y in zip(bridge.samples, floor.samples, strict=False))
            if floor and bridge
            else "-"
        )
        rows.append([
            f"{rate:g}",
            f"{f:.2f}" if f else "-",
            f"{b:.2f}" if b else "-",
            f"{b / f:.2f}" if b and f else "-",
            each,
            _ms(bridge.p99(probes=True) if bridge else None),
            _ms(floor.p99(probes=True) if floor else None),
            _ms(bridge.p99(probes=False) if bridge else None),
            str((floor.lost if floor else 0) + (bridge.lost if bridge else 0)),
        ])  # fmt: skip
    headers = (
        "rate", "floor µs", "bridge µs", "bridge/floor", "each round", "bridge probe p99 ms",
        "floor probe p99 ms", "bridge p99 ms", "lost",
    )  # fmt: skip
    return render(headers, rows)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_core(GENERATOR_CORE)
    raise_open_files(args.clients + args.probes)
    header = versions() + "\n" + background_load()
    progress(header)
    payload = len(event_body("0" * 12, 0, args.pad))
    with vhost() as name, tempfile.TemporaryDirectory(prefix=VHOST_PREFIX) as tmp:
        try:
            cells = asyncio.run(bench(args, f"{args.amqp}/{name}", Path(tmp)))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("floor: interrupted; cleaning up")
            return 130
    print()
    print(header)
    print(
        f"{args.clients} clients and {args.probes} probe clients, rates "
        f"{', '.join(f'{r:g}' for r in args.rates)} events/s for {args.duration:g} s each, "
        f"events of {payload} bytes; the median of {args.rounds} rounds, taking turns"
        + ("; the floor on a quorum queue, with acks." if args.durable_floor else ".")
    )
    print(f"{TITLE}:")
    print(table(cells, args))
    print()
    print(
        "µs: server CPU (user + system, /proc/PID/stat) per event received by one client.\n"
        "bridge/floor: the bridge's median over the floor's; each round: that round's ratio.\n"
        "probe p99: at the probe clients, which read at once (see bench/README.md); p99: at\n"
        "the load generator's clients. Medians over the rounds. lost: events a client did not get."
    )
    return 0 if cells else 1


if __name__ == "__main__":
    sys.exit(main())
