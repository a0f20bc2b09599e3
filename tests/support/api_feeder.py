"""Publish test events through the bridges' HTTP API from a process of its own.

It calls ``POST /api/dashboard/emit-event`` as a legacy caller does: one event
at a time, in order, at a steady rate, each with its own id. A 503 (RabbitMQ
did not confirm) or a refused connection is tried again, on the next bridge,
until it is taken: the bridge delivers an id once, however often it is sent.
Exits 0 once every event was taken, printing how many answers were retried.

    python -m tests.support.api_feeder RUN FIRST STEP COUNT RATE PORT [PORT ...]

sends events ``FIRST``, ``FIRST + STEP``, … (``COUNT`` of them) of ``RUN``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from tests.support.httpclient import request

#: The caller's pause before it tries an event again.
RETRY_DELAY = 0.1
#: Tries of one event before the feeder gives up (a minute of retries).
ATTEMPTS = 600
#: What the events are: untyped, for everyone.
TYPE = "load:tick"


async def feed(run: str, first: int, step: int, count: int, rate: float, ports: list[int]) -> int:
    """Send the events; the number of answers that had to be tried again."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    retried = 0
    for n in range(count):
        delay = start + n / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)  # the schedule, not a wait for something
        seq = first + n * step
        data = {"run": run, "seq": seq, "sentAt": time.time()}
        body = json.dumps({"type": TYPE, "id": f"{run}-{seq}", "data": data}).encode()
        for attempt in range(ATTEMPTS):
            port = ports[(n + attempt) % len(ports)]
            try:
                reply = await request(port, "POST", "/api/dashboard/emit-event", body)
            except (OSError, TimeoutError):
                reply = None
            if reply is not None and reply.status == 202:
                break
            if reply is not None and reply.status != 503:
                raise SystemExit(f"event {seq}: {reply.status} {reply.body!r}")
            retried += 1
            await asyncio.sleep(RETRY_DELAY)  # the caller's retry schedule
        else:
            raise SystemExit(f"event {seq} not taken after {ATTEMPTS} tries")
    return retried


async def started(
    run: str, first: int, step: int, count: int, rate: float, ports: list[int]
) -> asyncio.subprocess.Process:
    """Start sending, in a process of its own."""
    args = [run, str(first), str(step), str(count), str(rate), *map(str, ports)]
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.api_feeder", *args
    )


if __name__ == "__main__":
    run, first, step, count, rate, *ports = sys.argv[1:]
    retried = asyncio.run(
        feed(run, int(first), int(step), int(count), float(rate), [int(p) for p in ports])
    )
    print(f"api feeder: {count} events taken, {retried} answers retried")
