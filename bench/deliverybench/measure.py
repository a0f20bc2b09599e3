"""Measuring: every scenario of one server, and every server in turn."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from argparse import Namespace
from dataclasses import dataclass, field
from pathlib import Path

from .constants import MIN_STEP_EVENTS, VHOST_PREFIX
from .feeders import Feeder, broker, feeder_for
from .ladder import Ladder, climb, start_rate, sustained
from .progress import progress
from .results import Kind, Offer, Result
from .scenarios import connected
from .servers import Running, ServerSpec, forget_redis_keys, served, server_specs


@dataclass
class Outcome:
    results: list[Result] = field(default_factory=list)
    ladders: list[Ladder] = field(default_factory=list)
    #: The first line each server printed.
    announces: dict[str, str] = field(default_factory=dict)
    #: Servers not measured (or not to the end), and why.
    skipped: dict[str, str] = field(default_factory=dict)


async def measure(
    server: Running, spec: ServerSpec, feeder: Feeder, args: Namespace, outcome: Outcome
) -> None:
    """Every scenario of one server: fixed rates, browser-like clients, the ladders.

    The ladder at ``--clients`` goes on from the fixed rates, on the same clients.
    """
    rates = spec.rates or args.rates
    ladders = (
        list(dict.fromkeys(args.ladder_clients)) if spec.ladder and not spec.browser_only else []
    )
    for batch in () if spec.browser_only else spec.batch_modes:
        async with connected(server, spec, feeder, args, count=args.clients, batch=batch) as group:
            ladder = Ladder(server.name, len(group.clients))
            climbing = not batch and args.clients in ladders
            for rate in sorted(rates):
                result = await group.run(rate, Kind.FIXED)
                outcome.results.append(result)
                if climbing:
                    ladder.steps.append(result)
                    if sustained(result, args.p99_limit):
                        # Bisect or step down now, before the higher fixed rates leave
                        # a backlog behind that the next steps would pay for.
                        await climb(group, ladder)
                        climbing = False
            if climbing:
                await climb(group, ladder)
            if ladder.steps:
                outcome.ladders.append(ladder)
    if args.browser and spec.browser:
        # The rate the plain clients had, to compare with: --browser-rate, or the
        # highest of a server's own rates (Channels) if that is lower.
        rate = min(args.browser_rate, max(rates))
        async with connected(
            server, spec, feeder, args, count=args.clients, offer=Offer.DEFLATE
        ) as group:
            outcome.results.append(await group.run(rate, Kind.BROWSER))
    for count in ladders:
        if count == args.clients:
            continue
        await climb_at(server, spec, feeder, args, outcome, count)


async def climb_at(
    server: Running,
    spec: ServerSpec,
    feeder: Feeder,
    args: Namespace,
    outcome: Outcome,
    count: int,
) -> None:
    """The ladder at ``count`` clients, from what the ladder at ``--clients`` found."""
    before = max(
        (x for x in outcome.ladders if x.server == server.name and x.clients < count and x.steps),
        key=lambda x: x.clients,
        default=None,
    )
    best = before.best(args.p99_limit) if before is not None else None
    ladder = Ladder(server.name, count)
    outcome.ladders.append(ladder)
    if before is not None and best is None:
        ladder.note = f"not run: no rate sustained at {before.clients} clients, so none at {count}"
        progress(f"{server.name}: {count} clients {ladder.note}")
        return
    rate = start_rate(best.scenario.rate if best else None, before.clients if before else count,
                      count, args)  # fmt: skip
    async with connected(server, spec, feeder, args, count=count) as group:
        if len(group.clients) < count:
            ladder.note = f"only {len(group.clients)} of {count} clients connected"
        ladder.clients = len(group.clients)
        duration = max(args.step_duration, MIN_STEP_EVENTS / rate)
        ladder.steps.append(await group.run(rate, Kind.STEP, duration, args.step_drain))
        await climb(group, ladder)


async def bench(args: Namespace, broker_url: str, workdir: Path, outcome: Outcome) -> None:
    task = asyncio.current_task()
    assert task is not None
    # Our own handlers: SIGINT may arrive ignored (a background job), and SIGTERM must clean up.
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, task.cancel)
    redis_prefix = VHOST_PREFIX + uuid.uuid4().hex[:8]
    specs = server_specs(broker_url, workdir / "state", args, redis_prefix)
    async with broker(broker_url) as pub:
        for name in args.servers:
            spec = specs[name]
            if spec.browser_only and not args.browser:
                continue
            started = time.monotonic()
            try:
                async with served(spec, workdir / f"{name}.log") as server:
                    outcome.announces[name] = server.announce
                    affinity = sorted(os.sched_getaffinity(server.pid))
                    progress(f"{name}: pid {server.pid} on port {server.port}, cores {affinity}")
                    async with feeder_for(spec, server, broker_url, args, workdir) as feeder:
                        await measure(server, spec, feeder, args, outcome)
            except (RuntimeError, OSError, TimeoutError) as exc:
                # One failing server should not cost the others' numbers.
                outcome.skipped[name] = f"failed: {exc}"
                progress(f"{name}: FAILED: {exc}")
            finally:
                if spec.queue is not None:
                    # Otherwise it would keep storing every event of the servers measured next.
                    await pub.delete_queue(spec.queue)
                if spec.redis:
                    await forget_redis_keys(args.redis, redis_prefix)
                progress(f"{name}: {time.monotonic() - started:.0f} s")
