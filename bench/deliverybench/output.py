"""The report: the tables, the notes and the legend, on stdout."""

from __future__ import annotations

import math
from argparse import Namespace
from collections.abc import Sequence

from sio_client import FrameReader

from .constants import (
    BASELINE_SERVERS,
    GENERATOR_CORE,
    MAX_BISECTIONS,
    MIN_STEP_EVENTS,
    RATE_KEPT,
    SATURATED,
    SERVER_CORE,
)
from .ladder import Ladder, stopped_by, sustained
from .measure import Outcome
from .results import HEADERS, Kind, Offer, Result, row

#: Left-aligned columns of every table: the names.
TEXT_COLUMNS = {"server", "batch", "offer", "from", "sustained", "stopped by", "first failure"}
TITLES = {
    Kind.FIXED: "Plain clients at fixed rates",
    Kind.BROWSER: "Browser-like clients, offering permessage-deflate",
    "steps": "Highest sustained rate: every step",
    "ladders": "Highest sustained rate",
}


def aligned(cells: list[list[str]], left: Sequence[int] = (0,)) -> list[str]:
    """Header and rows in columns (``left`` ones flush left), a rule under the header."""
    widths = [max(len(c[i]) for c in cells) for i in range(len(cells[0]))]
    lines = [
        "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in cells
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def _ratio(value: float, base: float | None) -> str:
    ok = base is not None and base > 0 and not math.isnan(value)
    return f"{value / base:.2f}" if ok else "-"  # type: ignore[operator]


def ratio_columns(results: list[Result]) -> tuple[list[str], list[list[str]]]:
    """``/plain``: each row's µs/event / the same server's with plain clients, one frame
    per event, at the same rate (``bridge+deflate``, ``bridge+sse``: ``bridge``'s). ``/NAME``, per
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
    "p50 ms", "p99 ms", "µs/event", "server %", "gen %", "core0 %", "core1 %", "probe p99 ms",
    "sustained",
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
    "server", "clients", "max rate", "events/s", "probe p99 ms", "first failure", "stopped by",
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
            p99 = f"{top.judged_p99()[0]:.1f}" if top else "-"
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
  bridge+sse is the bridge with its clients on /sse (Server-Sent Events), plain only.
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
  p99 under {p99:g} ms at the probe clients (at the generator's without --probes) and at
  least {kept:.0%} of the rate published. At {clients} clients the
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
