"""The servers under test: how each one starts, and starting and stopping it."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from argparse import Namespace
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from schemas.topology import instance_queue

from .constants import (
    BASELINES,
    BENCH,
    BRIDGE_INSTANCE,
    BUILD_TIMEOUT,
    HOST,
    JWT_SECRET,
    SERVER_CORE,
    SERVER_ENV,
    SERVER_START_TIMEOUT,
    SERVER_STOP_TIMEOUT,
)
from .machine import ServerGone
from .progress import progress


@dataclass(frozen=True)
class ServerSpec:
    """How to start one server: it prints ``ws://HOST:PORT/ws`` on its first line."""

    name: str
    command: tuple[str, ...]
    #: Path of a GET that answers 200 once the server consumes its queue, if any.
    health: str | None = None
    batch_modes: tuple[bool, ...] = (False,)
    #: A durable queue it leaves behind when it stops, still bound to the exchange.
    queue: str | None = None
    #: Its clients: plain WebSocket (``Client``) or socket.io (``SioRecorder``).
    socketio: bool = False
    #: Its clients read Server-Sent Events from ``/sse`` (``StreamClient``).
    sse: bool = False
    #: The highest sustained rates are looked for (``--ladder-clients``).
    ladder: bool = True
    namespace: str = "/"
    event: str = "event"
    #: How events reach it: ``amqp`` (``amqp_feeder.py``), ``http`` (``http_feeder.py``)
    #: or its own ``feeder`` command (the socketio emitter, Channels' ``group_send``).
    feed: str = "amqp"
    feeder: tuple[str, ...] = ()
    #: Rates and drain timeout of its own, instead of ``--rates`` and ``--drain-timeout``.
    rates: tuple[float, ...] | None = None
    drain_timeout: float | None = None
    #: Runs only with browser-like clients: a variant that accepts compression.
    browser_only: bool = False
    #: Its Channels layer keeps keys in Redis, to delete afterwards.
    redis: bool = False
    #: Measured with browser-like clients too (Channels is not: Daphne declines
    #: compression, and its one rate takes long).
    browser: bool = True
    #: What its clients add to the path's query (a token, channels), ``&``-joined.
    query: str = ""
    #: Whom ``amqp_feeder.py``'s events are for: ``all``, ``role``, ``user`` or ``channel``.
    audience: str = "all"


@dataclass
class Lag:
    """Whether a server left deliveries missing at the end of its last scenario."""

    behind: bool = False


@dataclass(frozen=True)
class Running:
    name: str
    pid: int
    port: int
    #: The first line it printed: what it is, and its versions.
    announce: str = ""
    lag: Lag = field(default_factory=Lag)
    #: Its CPU time includes its children's: ``serve --workers``, whose parent only supervises.
    tree: bool = False


def bridge_command(broker_url: str, state_dir: Path) -> tuple[str, ...]:
    """``event-bridge serve`` as the benchmarks run it (``bench/workers.py`` adds ``--workers``)."""
    bin_dir = Path(sys.executable).parent
    return (
        str(bin_dir / "event-bridge"),
        "serve",
        *("--port", "0", "--broker", broker_url, "--instance", BRIDGE_INSTANCE),
        *("--jwt-secret", JWT_SECRET, "--allow-anonymous", "--state-dir", str(state_dir)),
        # Thousands of clients from this one machine: the per-address bound is for strangers.
        *("--max-connections-per-ip", "0"),
        # The example project's catalog, whose dashboard:update types the events sent: the
        # bridge validates each one as a project's bridge would.
        *("--catalog", "api_rest.events:catalog"),
    )


def server_specs(
    broker_url: str, state_dir: Path, args: Namespace, redis_prefix: str
) -> dict[str, ServerSpec]:
    bridge = bridge_command(broker_url, state_dir)
    baseline = (sys.executable, str(BENCH / "baseline_broadcast.py"), "--port", "0")
    floor = (sys.executable, str(BENCH / "baseline_floor.py"), "--port", "0")
    batch = not args.no_batch
    layer = ("--redis", args.redis, "--prefix", redis_prefix)
    broker = ("--broker", broker_url)
    return {
        # One prebuilt frame written to every transport, nothing else: the least it can cost.
        "floor": ServerSpec("floor", (*floor, *broker), browser=False, ladder=False),
        "baseline": ServerSpec("baseline", (*baseline, *broker)),
        "baseline+deflate": ServerSpec(
            "baseline+deflate",
            (*baseline, *broker, "--compression", "deflate"),
            browser_only=True,
        ),
        "bridge": ServerSpec(
            "bridge",
            bridge,
            health="/api/health",
            batch_modes=(False, True) if batch else (False,),
            queue=instance_queue(BRIDGE_INSTANCE).name,
        ),
        # The same bridge, its clients on /sse: the fallback for proxies that break WebSocket.
        "bridge+sse": ServerSpec(
            "bridge+sse",
            bridge,
            health="/api/health",
            batch_modes=(False, True) if batch else (False,),
            queue=instance_queue(BRIDGE_INSTANCE).name,
            sse=True,
            browser=False,
            ladder=False,
        ),
        "bridge+deflate": ServerSpec(
            "bridge+deflate",
            (*bridge, "--compression"),
            health="/api/health",
            queue=instance_queue(BRIDGE_INSTANCE).name,
            browser_only=True,
        ),
        "socketio": ServerSpec(
            "socketio",
            (sys.executable, str(BASELINES / "socketio_server.py"), "--port", "0", *broker),
            socketio=True,
            feed="own",
            feeder=(sys.executable, str(BASELINES / "socketio_emitter.py"), *broker),
            rates=tuple(args.socketio_rates),
        ),
        "channels": ServerSpec(
            "channels",
            (
                sys.executable,
                str(BASELINES / "channels_server" / "serve.py"),
                "--port",
                "0",
                *layer,
            ),
            feed="own",
            feeder=(sys.executable, str(BASELINES / "channels_publisher.py"), *layer),
            rates=tuple(args.channels_rates),
            drain_timeout=args.channels_drain_timeout,
            redis=True,
            browser=False,
        ),
        "nestjs": ServerSpec(
            "nestjs",
            ("node", str(BASELINES / "nestjs" / "dist" / "main.js"), "--port", "0"),
            health="/api/health",
            socketio=True,
            namespace="/ws",
            event="business:event",
            feed="http",
        ),
    }


def missing_prerequisite(name: str, args: Namespace) -> str | None:
    """Why ``name`` cannot run here, or None if it can."""
    if name in ("socketio", "channels"):
        modules = ("socketio", "aiohttp") if name == "socketio" else ("channels", "daphne", "redis")
        for module in modules:
            try:
                __import__(module)
            except ImportError:
                return f"python package {module} is missing (uv run --group bench)"
    if name == "channels":
        try:
            asyncio.run(_redis_ping(args.redis))
        except Exception as exc:  # any failure means no usable Redis
            return f"no Redis at {args.redis}: {exc}"
    if name == "nestjs":
        if shutil.which("node") is None or shutil.which("npm") is None:
            return "node and npm are not on the PATH (Node >= 20 needed)"
        build = BASELINES / "nestjs" / "build.sh"
        progress(f"nestjs: {build}")
        try:
            subprocess.run([str(build)], check=True, timeout=BUILD_TIMEOUT, capture_output=True)  # noqa: S603 - fixed arguments
        except subprocess.CalledProcessError as exc:
            return f"build.sh failed: {exc.stderr.decode(errors='replace')[-500:]}"
        except (subprocess.SubprocessError, OSError) as exc:
            return f"build.sh failed: {exc}"
    return None


async def _redis_ping(url: str) -> None:
    import redis.asyncio as aioredis  # noqa: PLC0415 - only with the bench group

    client = aioredis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        await client.ping()
    finally:
        await client.aclose()


async def forget_redis_keys(url: str, prefix: str) -> None:
    """Delete the Channels layer's keys of this run (its group would last a day otherwise)."""
    import redis.asyncio as aioredis  # noqa: PLC0415 - only with the bench group

    client = aioredis.from_url(url, socket_connect_timeout=3, socket_timeout=3)
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def served(
    spec: ServerSpec, log_path: Path, *, cores: str = str(SERVER_CORE)
) -> AsyncIterator[Running]:
    """Start ``spec`` on the server core (``cores``: a ``taskset`` list, e.g. ``0-1`` for
    none pinned); stop it (SIGTERM, then SIGKILL) afterwards."""
    with log_path.open("wb") as log:
        proc = await asyncio.create_subprocess_exec(
            "taskset", "-c", cores, *spec.command,
            stdout=subprocess.PIPE, stderr=log, env=SERVER_ENV,
        )  # fmt: skip
        discard: asyncio.Task[None] | None = None
        try:
            port, announce = await _read_port(proc, log_path)
            # Read whatever else it prints, so its stdout never blocks it.
            discard = asyncio.create_task(_discard(proc))
            if spec.health is not None:
                await _wait_healthy(port, spec.health)
            try:
                yield Running(spec.name, proc.pid, port, announce)
            except ServerGone as exc:
                raise ServerGone(f"{spec.name} exited: {exc}\n{log_tail(log_path)}") from None
        finally:
            if discard is not None:
                discard.cancel()
            await stop_process(proc)


async def _read_port(proc: asyncio.subprocess.Process, log_path: Path) -> tuple[int, str]:
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), SERVER_START_TIMEOUT)
    except TimeoutError:
        line = b""
    found = re.search(rb"ws://[\w.\[\]:]+?:(\d+)/ws", line)
    if found is None:
        await stop_process(proc)
        raise RuntimeError(f"server did not start: {line!r}\n{log_tail(log_path)}")
    return int(found[1]), line.decode(errors="replace").strip()


def log_tail(path: Path) -> str:
    return path.read_text(errors="replace")[-2000:]


async def _discard(proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None
    while await proc.stdout.read(4096):
        pass


async def _wait_healthy(port: int, path: str) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, TimeoutError, ValueError, IndexError):
            if await asyncio.wait_for(_http_status(port, path), 2) == 200:
                return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"GET {path} did not answer 200 within {SERVER_START_TIMEOUT} s")


async def _http_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        status = await reader.readline()
        return int(status.split()[1])
    finally:
        writer.close()


async def stop_process(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM; SIGKILL if it is still there after a while, or if we are interrupted."""
    try:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), SERVER_STOP_TIMEOUT)
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()


# The clients
