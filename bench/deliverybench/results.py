"""What a scenario is and what it measured, and its row in the tables."""

from __future__ import annotations

import contextlib
import enum
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from .feeders import Published
from .machine import ServerGone, core_load, core_times, process_cpu_seconds, tree_cpu_seconds


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
    def take(cls, pid: int, feeders: Sequence[int] = (), *, tree: bool = False) -> Reading:
        """``feeders``: processes on the generator's core whose CPU counts as the generator's.
        ``tree``: the server's CPU is its children's too (``serve --workers``)."""
        here = process_cpu_seconds(os.getpid())
        for feeder in feeders:
            with contextlib.suppress(ServerGone):
                here += process_cpu_seconds(feeder)
        server = tree_cpu_seconds(pid) if tree else process_cpu_seconds(pid)
        return cls(server, here, core_times(), time.time())


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
    #: Latencies at the probe clients (:mod:`.probes`), which read at once, sorted.
    probe_latencies_ms: list[float] = field(default_factory=list, repr=False)

    def percentile(self, q: float, *, probes: bool = False) -> float:
        values = self.probe_latencies_ms if probes else self.latencies_ms
        return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")

    def judged_p99(self) -> tuple[float, str]:
        """The p99 that judges the server, and what it is: at the probe clients when they
        ran (they read at once), else at the load generator's clients."""
        if self.probe_latencies_ms:
            return self.percentile(0.99, probes=True), "probe p99"
        return self.percentile(0.99), "p99"

    @property
    def cpu_us_per_event(self) -> float:
        return 1e6 * self.usage.server / self.delivered if self.delivered else float("nan")


HEADERS = (
    "server", "batch", "offer", "accepted", "rate", "pub/s", "clients", "frames/s", "events/s",
    "loss", "dup", "dropped", "p50 ms", "p99 ms", "max ms", "µs/event", "server %", "gen %",
    "core0 %", "core1 %", "probe p99 ms",
)  # fmt: skip


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
        f"{result.percentile(0.99, probes=True):.1f}" if result.probe_latencies_ms else "-",
    ]


def summary_line(result: Result) -> str:
    return "  ".join(f"{h}={c}" for h, c in zip(HEADERS, row(result), strict=True))
