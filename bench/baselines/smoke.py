"""Smoke check of the two library baselines: start each, connect clients, send events, count.

    uv run --frozen python bench/baselines/smoke.py [--clients 50] [--events 20]

Needs RabbitMQ on 127.0.0.1:5672 (guest/guest) with ``rabbitmqctl`` (it makes,
then deletes, a vhost of its own) and Redis on 127.0.0.1:6379. For each server
it starts the server (on core 0 when there are two cores), connects the
clients, starts the server's producer (the write-only socket.io emitter, or the
Channels ``group_send`` publisher), writes the events to the producer as JSON
lines, and prints what every client received. Exits 1 if any event is missing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sio_client import SioClient
from sio_client import connect as sio_connect

HERE = Path(__file__).resolve().parent
HOST = "127.0.0.1"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
DRAIN_TIMEOUT = 10.0
#: Pause after connecting: python-socketio binds its manager's queue on the first connection.
SETTLE = 1.0
_PORT = re.compile(rb"ws://[\w.\[\]:]+?:(\d+)/ws")


@dataclass
class Tally:
    """What the clients of one server received in one run."""

    run: str
    expected: int
    received: list[list[int]] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    #: Set once every client has ``expected`` events.
    complete: asyncio.Event = field(default_factory=asyncio.Event)
    _finished: int = 0

    def recorder(self) -> Callable[[bytes | bytearray, float], None]:
        seqs: list[int] = []
        self.received.append(seqs)

        def record(data: bytes | bytearray, now: float) -> None:
            event = json.loads(data)
            if isinstance(event, dict) and event.get("run") == self.run:
                seqs.append(event["seq"])
                self.latencies.append(now - event["sentAt"])
                if len(seqs) == self.expected:
                    self._finished += 1
                    if self._finished == len(self.received):
                        self.complete.set()

        return record

    async def drain(self) -> None:
        """Until every client has every event, or ``DRAIN_TIMEOUT``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.complete.wait(), DRAIN_TIMEOUT)


# Processes


@contextlib.asynccontextmanager
async def started(name: str, command: Sequence[str], log: Path) -> AsyncIterator[int]:
    """Start a server, yield its port from its first line; SIGTERM it afterwards."""
    pin = ("taskset", "-c", "0") if (os.cpu_count() or 1) > 1 and shutil.which("taskset") else ()
    with log.open("wb") as err:
        proc = await asyncio.create_subprocess_exec(
            *pin, *command, stdout=subprocess.PIPE, stderr=err
        )
        try:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
            found = _PORT.search(line)
            if found is None:
                raise RuntimeError(f"{name} did not start: {line!r}\n{_tail(log)}")
            print(f"{name}: {line.decode().strip()}", flush=True)
            yield int(found[1])
        finally:
            await stop(proc)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def stop(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), STOP_TIMEOUT)
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def produce(command: Sequence[str], run: str, count: int) -> str:
    """Run a producer: wait for ``ready``, write the events, close stdin, return its last line."""
    proc = await asyncio.create_subprocess_exec(
        *command, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdin is not None
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        if ready.strip() != b"ready":
            raise RuntimeError(f"producer did not start: {ready!r}")
        for seq in range(count):
            proc.stdin.write(event(run, seq) + b"\n")
            await proc.stdin.drain()
            await asyncio.sleep(0.02)
        proc.stdin.close()
        done = await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT)
        return done.decode().strip()
    finally:
        await stop(proc)


def event(run: str, seq: int) -> bytes:
    """A bench-shaped event stamped now: ``run``, ``seq`` and ``sentAt`` first, compact JSON."""
    fields = {"run": run, "seq": seq, "sentAt": time.time(), "pad": "x" * 120}
    return json.dumps(fields, separators=(",", ":")).encode()


def rabbitmqctl(*args: str, check: bool = True) -> None:
    path = shutil.which("rabbitmqctl")
    if path is None:
        sys.exit("smoke: rabbitmqctl is not on the PATH; it makes the smoke test's vhost")
    subprocess.run([path, "-q", *args], check=check, timeout=60)  # noqa: S603 - fixed arguments


@contextlib.contextmanager
def vhost() -> Iterator[str]:
    """A fresh RabbitMQ vhost that guest may use, deleted afterwards."""
    name = "event-bridge-smoke-" + uuid.uuid4().hex[:12]
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield name
    finally:
        rabbitmqctl("delete_vhost", name, check=False)


def report(name: str, tally: Tally, count: int, producer: str) -> bool:
    per_client = [len(seqs) for seqs in tally.received]
    missing = sum(count - len(set(seqs)) for seqs in tally.received)
    duplicates = sum(len(seqs) - len(set(seqs)) for seqs in tally.received)
    lat = sorted(tally.latencies)
    p50 = 1000 * lat[len(lat) // 2] if lat else float("nan")
    print(
        f"{name}: producer said {producer!r}; {len(per_client)} clients received "
        f"{sum(per_client)} of {count * len(per_client)} events (per client min {min(per_client)}, "
        f"max {max(per_client)}), missing {missing}, duplicates {duplicates}, p50 {p50:.1f} ms",
        flush=True,
    )
    return missing == 0 and duplicates == 0


# The two baselines


async def socketio_smoke(broker: str, clients: int, count: int, logs: Path) -> bool:
    server = (sys.executable, str(HERE / "socketio_server.py"), "--port", "0", "--broker", broker)
    emitter = (sys.executable, str(HERE / "socketio_emitter.py"), "--broker", broker)
    async with started("socketio", server, logs / "socketio.log") as port:
        tally = Tally(uuid.uuid4().hex[:12], count)
        conns: list[SioClient] = await asyncio.gather(
            *(sio_connect(port, tally.recorder()) for _ in range(clients))
        )
        try:
            await asyncio.sleep(SETTLE)
            said = await produce(emitter, tally.run, count)
            await tally.drain()
        finally:
            await asyncio.gather(*(c.close() for c in conns))
    return report("socketio", tally, count, said)


async def channels_smoke(redis: str, clients: int, count: int, logs: Path) -> bool:
    prefix = "smoke-" + uuid.uuid4().hex[:8]
    layer = ("--redis", redis, "--prefix", prefix)
    server = (sys.executable, str(HERE / "channels_server" / "serve.py"), "--port", "0", *layer)
    publisher = (sys.executable, str(HERE / "channels_publisher.py"), *layer)
    async with started("channels", server, logs / "channels.log") as port:
        tally = Tally(uuid.uuid4().hex[:12], count)
        conns = await asyncio.gather(
            *(_ws_client(f"ws://{HOST}:{port}/ws", tally.recorder()) for _ in range(clients))
        )
        try:
            said = await produce(publisher, tally.run, count)
            await tally.drain()
        finally:
            for ws, reader in conns:
                reader.cancel()
                await ws.close()
            await _forget(redis, prefix)
    return report("channels", tally, count, said)


async def _forget(url: str, prefix: str) -> None:
    """Delete the layer's keys of this run (the group lasts a day otherwise)."""
    client = aioredis.from_url(url)
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            await client.delete(key)
    finally:
        await client.aclose()


async def _ws_client(
    uri: str, record: Callable[[bytes | bytearray, float], None]
) -> tuple[ClientConnection, asyncio.Task[None]]:
    ws = await ws_connect(uri, compression=None)
    welcome = json.loads(await ws.recv())
    assert welcome == {"type": "bridge:welcome"}, welcome

    async def read() -> None:
        with contextlib.suppress(Exception):
            async for message in ws:
                record(message.encode() if isinstance(message, str) else message, time.time())

    return ws, asyncio.create_task(read())


async def main_async(args: argparse.Namespace, logs: Path) -> bool:
    ok = True
    if "socketio" in args.servers:
        with vhost() as name:
            ok &= await socketio_smoke(f"{args.amqp}/{name}", args.clients, args.events, logs)
    if "channels" in args.servers:
        ok &= await channels_smoke(args.redis, args.clients, args.events, logs)
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=20)
    parser.add_argument(
        "--servers", nargs="+", choices=["socketio", "channels"], default=["socketio", "channels"]
    )
    parser.add_argument("--amqp", default="amqp://guest:guest@127.0.0.1:5672")
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--logs", type=Path, default=Path(tempfile.gettempdir()), help="servers' stderr"
    )
    args = parser.parse_args()
    ok = asyncio.run(main_async(args, args.logs))
    print("smoke: ok" if ok else "smoke: FAILED", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
