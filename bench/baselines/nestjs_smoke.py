"""Smoke check of the NestJS baseline (``bench/baselines/nestjs``), the seed's architecture.

Builds it (``build.sh``: ``npm ci`` and ``tsc``, both skipped when up to date),
starts ``node dist/main.js --port 0``, connects N socket.io clients over plain
WebSockets (Engine.IO v4, namespace ``/ws``), POSTs M events to
``/api/dashboard/emit-event`` one after the other as the seed's Django code
does (``{"type", "data", "timestamp"}``, a new connection per POST, 202
expected), then checks that every client got every event exactly once and in
order. Prints the counts and how long each POST took; exit code 0 only if all
arrived.

    .venv/bin/python bench/baselines/nestjs_smoke.py [--clients 20] [--events 10]

The socket.io framing on a bare WebSocket (``/socket.io/?EIO=4&transport=websocket``)::

    server  0{"sid":…,"pingInterval":25000,…}   Engine.IO open
    client  40/ws,                               Socket.IO CONNECT to namespace /ws
    server  40/ws,{"sid":…}                      connected
    server  42/ws,["business:event",{…}]         EVENT in namespace /ws
    server  2           client  3                Engine.IO ping, pong
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect

HERE = Path(__file__).resolve().parent / "nestjs"
HOST = "127.0.0.1"
NAMESPACE = "/ws"
EVENT_NAME = "business:event"
EVENT_PREFIX = f"42{NAMESPACE},"
TIMEOUT = 10.0


@dataclass
class Client:
    ws: ClientConnection
    seqs: list[int] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    pings: int = 0
    other: list[str] = field(default_factory=list)


async def open_client(port: int) -> Client:
    ws = await connect(
        f"ws://{HOST}:{port}/socket.io/?EIO=4&transport=websocket",
        compression=None,
        open_timeout=TIMEOUT,
    )
    opened = await asyncio.wait_for(ws.recv(), TIMEOUT)
    if not isinstance(opened, str) or not opened.startswith("0{"):
        raise RuntimeError(f"expected an Engine.IO open packet, got {opened!r}")
    await ws.send(f"40{NAMESPACE},")
    connected = await asyncio.wait_for(ws.recv(), TIMEOUT)
    if not isinstance(connected, str) or not connected.startswith(f"40{NAMESPACE},{{"):
        raise RuntimeError(f"expected a CONNECT answer for {NAMESPACE}, got {connected!r}")
    return Client(ws)


async def listen(client: Client, run: str) -> None:
    """Answer pings; record the ``seq`` and latency of this run's events."""
    with contextlib.suppress(Exception):
        async for message in client.ws:
            now = time.time()
            if message == "2":
                client.pings += 1
                await client.ws.send("3")
            elif isinstance(message, str) and message.startswith(EVENT_PREFIX):
                name, event = json.loads(message[len(EVENT_PREFIX) :])
                data = event.get("data", {}) if name == EVENT_NAME else {}
                if data.get("run") == run:
                    client.seqs.append(data["seq"])
                    client.latencies.append((now - data["sentAt"]) * 1000)
                else:
                    client.other.append(message[:80])
            else:
                client.other.append(str(message)[:80])


def post_event(port: int, run: str, seq: int, pad: int) -> tuple[int, float, str]:
    """One POST as the seed's ``emit_event`` sends it; its status, ms and Server-Timing.

    A new connection each time, like ``requests.post`` without a session.
    """
    body = json.dumps(
        {
            "type": "reserva:creada",
            "data": {"run": run, "seq": seq, "sentAt": time.time(), "pad": "x" * pad},
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
    ).encode()
    started = time.perf_counter()
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request(
            "POST",
            "/api/dashboard/emit-event",
            body=body,
            headers={"Content-Type": "application/json"},
        )
        response = connection.getresponse()
        response.read()
        elapsed = (time.perf_counter() - started) * 1000
        return response.status, elapsed, response.headers.get("Server-Timing", "")
    finally:
        connection.close()


async def start_server() -> tuple[asyncio.subprocess.Process, int, str]:
    proc = await asyncio.create_subprocess_exec(
        "node", str(HERE / "dist" / "main.js"), "--port", "0", "--host", HOST,
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode().strip()
    if not line.startswith("listening on "):
        raise RuntimeError(f"server did not start: {line!r}")
    port = int(line.split()[2].rstrip(":"))
    return proc, port, line


async def stop_server(proc: asyncio.subprocess.Process) -> float:
    started = time.perf_counter()
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    return time.perf_counter() - started


async def smoke(clients_n: int, events_n: int, pad: int) -> bool:
    proc, port, line = await start_server()
    print(line)
    run = uuid.uuid4().hex[:8]
    clients: list[Client] = []
    listeners: list[asyncio.Task[None]] = []
    try:
        clients = list(await asyncio.gather(*(open_client(port) for _ in range(clients_n))))
        listeners = [asyncio.create_task(listen(c, run)) for c in clients]
        print(f"{len(clients)} clients connected to namespace {NAMESPACE}")
        for seq in range(events_n):
            status, ms, timing = await asyncio.to_thread(post_event, port, run, seq, pad)
            print(f"POST {seq}: {status} in {ms:.2f} ms ({timing or 'no Server-Timing'})")
            if status != 202:
                return False
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and any(len(c.seqs) < events_n for c in clients):  # noqa: ASYNC110 - polls many clients
            await asyncio.sleep(0.05)
        complete = sum(c.seqs == list(range(events_n)) for c in clients)
        counts = sorted({len(c.seqs) for c in clients})
        latencies = sorted(ms for c in clients for ms in c.latencies)
        other = [m for c in clients for m in c.other]
        print(
            f"{complete}/{len(clients)} clients got all {events_n} events once and in order "
            f"(events per client: {counts}); latency after POST start: "
            f"median {latencies[len(latencies) // 2] if latencies else float('nan'):.2f} ms, "
            f"max {latencies[-1] if latencies else float('nan'):.2f} ms"
        )
        if other:
            print(f"unexpected messages: {len(other)}, first: {other[0]!r}")
        return complete == len(clients) and not other
    finally:
        for c in clients:
            with contextlib.suppress(Exception):
                await c.ws.close()
        for task in listeners:
            task.cancel()
        print(f"server stopped in {await stop_server(proc):.2f} s (exit code {proc.returncode})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--events", type=int, default=10)
    parser.add_argument("--pad", type=int, default=150, help="bytes of padding per event")
    args = parser.parse_args()
    started = time.perf_counter()
    subprocess.run([str(HERE / "build.sh")], check=True)  # noqa: S603 - fixed arguments
    print(f"build.sh: {time.perf_counter() - started:.1f} s")
    ok = asyncio.run(smoke(args.clients, args.events, args.pad))
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
