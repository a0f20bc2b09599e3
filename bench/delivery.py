"""Delivery benchmark: the bridge against a bare ``websockets`` broadcast server and
the three systems users would pick instead (python-socketio, Django Channels, the
seed's NestJS socket.io gateway).

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    uv run --frozen --group bench python bench/delivery.py   # 1,000 clients, 10/40/80 events/s
    uv run --frozen --group bench python bench/delivery.py --clients 100 --duration 2

It makes a RabbitMQ vhost of its own, starts each server under test pinned to
core 0, and runs the load generator (the clients) here, pinned to core 1, with each
server's feeder process (AMQP publishes, HTTP POSTs, the socketio emitter, a
``group_send`` process) on core 1 as well. For every scenario (server x batch mode x
rate) the feeder sends dashboard events at a fixed rate, on its own schedule, and
stamps each ``sentAt`` right before writing it;
every client records each event's ``seq`` and its latency (the kernel's receive
time of the read that completed its frame, ``SO_TIMESTAMPNS`` - ``sentAt``). The server's
CPU time comes from ``/proc/PID/stat``, the cores' load from ``/proc/stat``.
Everything it started, and the vhost, is removed at the end, on Ctrl-C too.

This file is the command; its parts are in ``bench/deliverybench/``: ``cli`` (the
options), ``constants``, ``machine`` (cores, CPU time, limits, versions, the vhost),
``servers`` (the servers under test), ``clients``, ``feeders``, ``results`` (what a
scenario measured), ``scenarios`` (running them), ``ladder`` (the highest sustained
rate), ``measure`` (one server, then all), ``output`` (the report) and ``progress``.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from deliverybench.cli import parse_args
from deliverybench.constants import GENERATOR_CORE, VHOST_PREFIX
from deliverybench.feeders import event_body
from deliverybench.machine import background_load, pin_to_core, raise_open_files, versions, vhost
from deliverybench.measure import Outcome, bench
from deliverybench.output import report
from deliverybench.progress import progress
from deliverybench.servers import missing_prerequisite


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_core(GENERATOR_CORE)
    raise_open_files(max([args.clients, *args.ladder_clients]))
    header = versions() + "\n" + background_load()
    payload = len(event_body("0" * 12, 0, args.pad))
    progress(header)
    outcome = Outcome()
    for server in list(args.servers):
        base = server.split("+")[0]
        if (why := missing_prerequisite(base, args)) is not None:
            progress(f"{server}: skipped: {why}")
            outcome.skipped[server] = f"skipped: {why}"
            args.servers.remove(server)
    with vhost() as name, tempfile.TemporaryDirectory(prefix=VHOST_PREFIX) as tmp:
        progress(f"vhost {name}")
        try:
            asyncio.run(bench(args, f"{args.amqp}/{name}", Path(tmp), outcome))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("delivery: interrupted; cleaning up")
            return 130
    report(args, outcome, header, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
