"""CPU per delivered event by audience, this version against the one before channels (issue 18).

One command, on a machine with RabbitMQ on 127.0.0.1:5672 (guest/guest)::

    uv run --frozen --group bench python bench/audiences.py
    uv run --frozen --group bench python bench/audiences.py --before f26573b --rounds 3

Channels gave every event a stream of its own in the history, and every connection a
set of channels; this measures what that costs where it matters, the delivery of one
event to many clients. For each audience (everyone, a role, a user on all its devices,
a channel) 1,000 clients that are all in it get events at a fixed rate, and the
server's CPU time is divided by the events the clients received, as
``delivery.py`` measures it (``bench/deliverybench``: the same clients, feeder and
CPU readings, the server pinned to core 0, the load generator to core 1).

The version before is checked out from git (``--before``, by default the last commit
before issue 18) into a temporary worktree and run from it with this environment: it
has no channels, so its channel row is empty. The versions take turns, round after
round, so that a drift of the machine falls on both; the table gives each one's
median over the rounds and the ratio now / before.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from deliverybench.cli import add_run_options
from deliverybench.constants import BENCH, GENERATOR_CORE, JWT_SECRET, VHOST_PREFIX
from deliverybench.feeders import broker, event_body, feeder_for
from deliverybench.machine import background_load, pin_to_core, raise_open_files, versions, vhost
from deliverybench.output import render
from deliverybench.progress import progress
from deliverybench.results import Kind
from deliverybench.scenarios import connected
from deliverybench.servers import ServerSpec, bridge_command, served

from bridge.auth import Authenticator
from schemas.topology import instance_queue

#: The table's title, as bench/report.py finds it.
TITLE = "Server CPU per delivered event, by audience"
#: The last commit before channels (issue 18): "before" by default.
BEFORE = "f26573b"
AUDIENCES = ("all", "role", "user", "channel")
ROOT = BENCH.parent


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Server CPU per delivered event, by audience: this version against an "
        "earlier one, the same clients and load.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--before", default=BEFORE, help="the git revision to compare with")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=40.0, help="events per second")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="turns of both versions")
    parser.add_argument(
        "--audiences", nargs="+", choices=AUDIENCES, default=list(AUDIENCES), metavar="AUDIENCE"
    )
    add_run_options(parser)
    args = parser.parse_args(argv)
    # What deliverybench reads: the warm-up on connecting runs at min(20, *args.rates).
    args.rates = [args.rate]
    return args


@dataclass
class Cell:
    """One version and audience: µs of server CPU per delivered event, each round."""

    samples: list[float] = field(default_factory=list)
    lost: int = 0

    @property
    def median(self) -> float | None:
        return statistics.median(self.samples) if self.samples else None


@contextlib.contextmanager
def worktree(revision: str) -> Iterator[Path]:
    """``revision`` checked out in a temporary directory, removed afterwards."""
    git = shutil.which("git")
    if git is None:
        raise SystemExit("bench/audiences.py needs git, to check out --before")
    with tempfile.TemporaryDirectory(prefix="event-bridge-before-") as tmp:
        path = Path(tmp) / "tree"
        add = [git, "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(path), revision]
        subprocess.run(add, check=True)  # noqa: S603 - our own revision argument
        try:
            yield path
        finally:
            remove = [git, "-C", str(ROOT), "worktree", "remove", "--force", str(path)]
            subprocess.run(remove, check=False)  # noqa: S603 - fixed arguments


def command(broker_url: str, state_dir: Path, tree: Path | None) -> tuple[str, ...]:
    """The bridge's command line; from ``tree`` (its code first on the path) if given."""
    serve = bridge_command(broker_url, state_dir)
    if tree is None:
        return serve
    # The same interpreter and dependencies, the earlier code: env puts it first.
    launcher = "import sys; from bridge.command import main; sys.argv[0] = 'event-bridge'; main()"
    path = f"PYTHONPATH={tree}:{ROOT / 'example'}"
    return ("env", path, sys.executable, "-c", launcher, *serve[1:])


def query(audience: str) -> str:
    """What each client adds to its URL to be in ``audience``: every client is user
    ``bench`` with role ``bench``, and subscribes to channel ``bench:1``."""
    if audience == "all":
        return ""
    token = Authenticator(JWT_SECRET).issue(
        "bench", ["bench"], ttl=timedelta(hours=2), channels=["bench:*"]
    )
    return f"token={token}" + ("&channels=bench:1" if audience == "channel" else "")


async def measure(
    args: argparse.Namespace, broker_url: str, workdir: Path, tree: Path | None, audience: str
) -> tuple[float, int]:
    """µs of server CPU per delivered event, and events lost, for one version and audience."""
    version = "before" if tree is not None else "now"
    name = f"{version} {audience}"
    spec = ServerSpec(
        name,
        command(broker_url, workdir / f"state-{version}", tree),
        health="/api/health",
        query=query(audience),
        audience=audience,
    )
    async with (
        broker(broker_url) as pub,
        served(spec, workdir / f"{version}-{audience}.log") as server,
        feeder_for(spec, server, broker_url, args, workdir) as feeder,
        connected(server, spec, feeder, args, count=args.clients) as group,
    ):
        try:
            result = await group.run(args.rate, Kind.FIXED, args.duration, args.drain_timeout)
        finally:
            await pub.delete_queue(instance_queue("bench").name)
    return result.cpu_us_per_event, result.loss


async def bench(args: argparse.Namespace, broker_url: str, workdir: Path, tree: Path) -> dict:
    cells: dict[tuple[str, str], Cell] = {}
    for turn in range(args.rounds):
        # Alternate which version goes first, so neither always runs on a warmer machine.
        order = (tree, None) if turn % 2 == 0 else (None, tree)
        for audience in args.audiences:
            for version_tree in order:
                if version_tree is not None and audience == "channel":
                    continue  # no channels before issue 18
                version = "before" if version_tree is not None else "now"
                cell = cells.setdefault((version, audience), Cell())
                try:
                    us, lost = await measure(args, broker_url, workdir, version_tree, audience)
                except (RuntimeError, OSError, TimeoutError) as exc:
                    progress(f"{version} {audience}: FAILED: {exc}")
                    continue
                cell.samples.append(us)
                cell.lost += lost
                progress(f"round {turn + 1}: {version} {audience}: {us:.2f} µs, lost {lost}")
    return cells


def table(cells: dict, args: argparse.Namespace) -> str:
    rows = []
    for audience in args.audiences:
        before, now = cells.get(("before", audience)), cells.get(("now", audience))
        b = before.median if before else None
        n = now.median if now else None
        ratio = f"{n / b:.3f}x" if b and n else "-"
        rounds = " ".join(f"{x:.2f}" for x in (now.samples if now else []))
        rows.append([
            audience,
            f"{b:.2f}" if b else "-",
            f"{n:.2f}" if n else "-",
            ratio,
            rounds,
            str((before.lost if before else 0) + (now.lost if now else 0)),
        ])  # fmt: skip
    headers = ("audience", "before µs", "now µs", "now/before", "now, each round", "lost")
    return render(headers, rows)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    pin_to_core(GENERATOR_CORE)
    raise_open_files(args.clients)
    header = versions() + "\n" + background_load()
    progress(header)
    payload = len(event_body("0" * 12, 0, args.pad))
    with (
        vhost() as name,
        tempfile.TemporaryDirectory(prefix=VHOST_PREFIX) as tmp,
        worktree(args.before) as tree,
    ):
        try:
            cells = asyncio.run(bench(args, f"{args.amqp}/{name}", Path(tmp), tree))
        except (KeyboardInterrupt, asyncio.CancelledError):
            progress("audiences: interrupted; cleaning up")
            return 130
    print()
    print(header)
    print(
        f"{args.clients} clients all in the audience, {args.rate:g} events/s for "
        f"{args.duration:g} s, events of {payload} bytes; the median of {args.rounds} rounds; "
        f"before = {args.before}, now = this checkout."
    )
    print(f"{TITLE}:")
    print(table(cells, args))
    print(
        "µs: server CPU (user + system, /proc/PID/stat) per event received by one client.\n"
        "all: events for everyone; role: for role bench, which every client's token has;\n"
        "user: for user bench, every client (one user on 1,000 devices); channel: to\n"
        "channel bench:1, every client subscribed. lost: events a client did not get."
    )
    return 0 if cells else 1


if __name__ == "__main__":
    sys.exit(main())
