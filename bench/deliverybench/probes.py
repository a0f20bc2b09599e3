"""Probe clients: a few more clients of the server under test, in a process of their own
that reads the moment anything arrives, so their latencies are exact.

Why: the load generator reads 1,000 clients in one Python process. When it is
busy (up to 25 ms at 40 events/s), an event that reached a client's socket
waits there until the next one arrives, and one read takes both. The kernel's
receive time of a read is that of its latest segment, and TCP even merges
segments that wait in a receive queue, keeping the newer time: the earlier
event is stamped as late as the later one. That is the load generator's
delay, not the server's, yet it lands in the p99 of every server.

The probes connect like every other client and run with real-time priority
(``SCHED_FIFO``) on the generator's core: a read of theirs takes one event.
Their p99 is what a browser, which reads its one socket at once, would see;
the generator's p99 stays in the tables beside it, for every client.

Run by :class:`Probes`, as ``python -m deliverybench.probes``: it prints one
JSON line once connected, then answers ``begin RUN`` (start recording run
``RUN``) and ``end`` (the latencies of the run, in ms) on its standard input
and output, and stops at ``quit`` or end of input.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from .clients import (
    AnyClient,
    Client,
    StreamClient,
    close_clients,
    connect_clients,
    connect_sio_clients,
)
from .constants import BENCH, GENERATOR_CORE

#: Real-time priority of the probes: above the generator and the feeder, on their core.
PRIORITY = 10
#: Longest wait for the probes to connect, or to answer a command.
TIMEOUT = 60.0
#: Longest answer: the latencies of a long run (20 probes, 10,000 events, 10 bytes each).
ANSWER_LIMIT = 1 << 22


@dataclass
class Probes:
    """The probe process of one group of clients."""

    process: asyncio.subprocess.Process
    #: How many connected, and at which priority (``SCHED_FIFO 10``, or why not).
    connected: int
    priority: str

    @classmethod
    async def start(
        cls,
        port: int,
        path: str,
        count: int,
        *,
        kind: str,
        namespace: str = "/",
        event: str = "event",
        deflate: bool = False,
    ) -> Probes:
        """Start ``count`` probes of ``kind`` (``ws``, ``sse`` or ``sio``) on ``port``."""
        command = [
            sys.executable, "-m", "deliverybench.probes", "--port", str(port), "--path", path,
            "--count", str(count), "--kind", kind, "--namespace", namespace, "--event", event,
        ]  # fmt: skip
        if deflate:
            command.append("--deflate")
        env = {**os.environ, "PYTHONPATH": str(BENCH)}
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            limit=ANSWER_LIMIT,
        )
        hello = await cls._answer(process)
        return cls(process, int(hello["connected"]), str(hello["priority"]))

    @staticmethod
    async def _answer(process: asyncio.subprocess.Process) -> dict[str, object]:
        assert process.stdout is not None
        async with asyncio.timeout(TIMEOUT):
            line = await process.stdout.readline()
        if not line:
            raise RuntimeError(f"the probe process ended (exit {await process.wait()})")
        answer: dict[str, object] = json.loads(line)
        return answer

    async def _ask(self, command: str) -> dict[str, object]:
        assert self.process.stdin is not None
        self.process.stdin.write(command.encode() + b"\n")
        await self.process.stdin.drain()
        return await self._answer(self.process)

    async def begin(self, run: str) -> None:
        await self._ask(f"begin {run}")

    async def end(self) -> list[float]:
        """The latencies of the run begun last, in ms, sorted."""
        latencies = (await self._ask("end"))["latencies"]
        assert isinstance(latencies, list)
        return sorted(float(x) for x in latencies)

    async def close(self) -> None:
        with contextlib.suppress(ProcessLookupError, ConnectionError):
            assert self.process.stdin is not None
            self.process.stdin.write(b"quit\n")
            await self.process.stdin.drain()
        try:
            await asyncio.wait_for(self.process.wait(), 10)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()


# The probe process


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Probe clients (see deliverybench.probes).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--count", type=int, default=20)
    parser.add_argument("--kind", choices=("ws", "sse", "sio"), default="ws")
    parser.add_argument("--namespace", default="/")
    parser.add_argument("--event", default="event")
    parser.add_argument("--deflate", action="store_true")
    return parser.parse_args(argv)


def _prioritize() -> str:
    os.sched_setaffinity(0, {GENERATOR_CORE})
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(PRIORITY))
    except OSError as exc:
        return f"normal priority: SCHED_FIFO refused ({exc.strerror})"
    return f"SCHED_FIFO {PRIORITY}"


async def _connect(args: argparse.Namespace) -> Sequence[AnyClient]:
    if args.kind == "sio":
        return await connect_sio_clients(
            args.port, args.count, args.namespace, args.event, args.count, deflate=args.deflate
        )
    kind = StreamClient if args.kind == "sse" else Client
    return await connect_clients(
        args.port, args.count, args.path, args.count, deflate=args.deflate, kind=kind
    )


async def _serve(args: argparse.Namespace) -> None:
    priority = _prioritize()
    clients = await _connect(args)
    print(json.dumps({"connected": len(clients), "priority": priority}), flush=True)
    loop = asyncio.get_running_loop()
    commands = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
    try:
        while line := (await commands.readline()).decode().strip():
            match line.split():
                case ["begin", run]:
                    for client in clients:
                        client.begin(run.encode())
                    print(json.dumps({"begun": run}), flush=True)
                case ["end"]:
                    latencies = [round(1000 * x, 3) for c in clients for _, x in c.records]
                    print(json.dumps({"latencies": latencies}), flush=True)
                case _:
                    break
    finally:
        await close_clients(clients)


if __name__ == "__main__":
    asyncio.run(_serve(_parse(None)))
