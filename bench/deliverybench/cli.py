"""The delivery benchmark's command line."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .constants import REDIS_URL, SERVERS


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Measure event delivery of the bridge against a bare websockets "
        "broadcast server, python-socketio, Django Channels and a NestJS socket.io gateway.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--clients", type=int, default=1000, help="WebSocket clients")
    parser.add_argument(
        "--rates", type=float, nargs="+", default=[10.0, 40.0, 80.0], help="events/s to publish"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="seconds of publishing each")
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        default=list(SERVERS),
        help="servers to measure, in this order; one whose prerequisite is missing is skipped",
    )
    parser.add_argument(
        "--channels-rates",
        type=float,
        nargs="+",
        default=[10.0],
        help="events/s for Django Channels, which cannot keep up with more at 1,000 clients",
    )
    parser.add_argument(
        "--socketio-rates",
        type=float,
        nargs="+",
        default=[10.0, 40.0],
        help="events/s for python-socketio, whose core is saturated from 40 on at 1,000 clients",
    )
    parser.add_argument(
        "--channels-drain-timeout",
        type=float,
        default=8.0,
        help="longest wait for Channels' deliveries after publishing",
    )
    parser.add_argument("--redis", default=REDIS_URL, help="Redis of the Channels layer")
    parser.add_argument("--no-batch", action="store_true", help="skip the bridge's ?batch=1 mode")
    add_run_options(parser)
    browser = parser.add_argument_group("browser-like clients (offering permessage-deflate)")
    browser.add_argument(
        "--browser-rate",
        type=float,
        default=40.0,
        help="events/s (a server's own highest rate if lower, as for Channels)",
    )
    browser.add_argument("--no-browser", dest="browser", action="store_false", help="skip them")
    ladder = parser.add_argument_group(
        "highest sustained rate: no loss, no duplicates, no client dropped, p99 under the limit"
    )
    ladder.add_argument(
        "--ladder-clients",
        type=int,
        nargs="*",
        default=[1000, 5000],
        help="client counts to find it for; at --clients it goes on from the --rates steps "
        "(nothing: skip the ladders)",
    )
    add_ladder_limits(ladder)
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0 or min(args.rates) <= 0:
        parser.error("--clients, --duration and --rates must be positive")
    if any(n < 1 for n in args.ladder_clients) or args.ladder_min <= 0:
        parser.error("--ladder-clients and --ladder-min must be positive")
    args.ladder_clients = sorted(set(args.ladder_clients))
    return args


def add_run_options(parser: argparse.ArgumentParser) -> None:
    """The options every delivery scenario reads: the events' padding, the broker, and
    how long connecting, draining and settling may take."""
    parser.add_argument("--pad", type=int, default=120, help="characters of padding per event")
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=10.0,
        help="longest wait for deliveries after publishing",
    )
    parser.add_argument(
        "--amqp", default="amqp://guest:guest@127.0.0.1:5672", help="broker, without vhost"
    )
    parser.add_argument(
        "--connect-concurrency", type=int, default=50, help="handshakes in flight at once"
    )
    parser.add_argument(
        "--probes",
        type=int,
        default=20,
        help="extra clients, in a real-time process of their own that reads at once: "
        "their p99 is exact (0: none)",
    )
    parser.add_argument(
        "--settle-timeout",
        type=float,
        default=30.0,
        help="longest wait, before a scenario, for the last one's late frames to stop",
    )


def add_ladder_limits(ladder: argparse._ArgumentGroup) -> None:
    """The ladder's options, shared by every script that climbs one."""
    ladder.add_argument("--p99-limit", type=float, default=100.0, help="ms")
    ladder.add_argument("--step-duration", type=float, default=3.0, help="seconds per step")
    ladder.add_argument(
        "--step-drain",
        type=float,
        default=2.0,
        help="longest wait after a step's last publish; what is later counts as lost",
    )
    ladder.add_argument(
        "--ladder-min", type=float, default=0.625, help="lowest rate; steps are it x 2^k"
    )
    ladder.add_argument("--ladder-max", type=float, default=640.0, help="highest rate tried")
