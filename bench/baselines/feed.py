"""The feeders' shared loop: each feeder process keeps the schedule and stamps ``sentAt``.

``bench/delivery.py`` starts one feeder process per server on the load generator's
core (``amqp_feeder.py``, ``http_feeder.py``, ``socketio_emitter.py``,
``channels_publisher.py``), because its own event loop is busy reading up to 5,000
client sockets: a turn of it can last tens of ms, and a ``sentAt`` stamped there
would count that as the server's latency (and the sends would bunch). Here the loop
does nothing but send.

The protocol, on standard input and output, one JSON object a line:

- the feeder prints ``ready`` once connected;
- each ``{"run": RUN, "rate": R, "duration": D, "pad": P}`` line asks for
  ``max(1, round(R * D))`` events (``seq`` 0, 1, …) on a fixed schedule, event
  ``seq`` due ``seq / R`` seconds after the line arrived; the feeder answers with
  ``{"attempted": N, "failed": F, "rate": R', "slowest": S}`` once every send has
  completed (for AMQP, once RabbitMQ confirmed it): ``rate`` the events sent and
  not failed per second, from the first event's due time to the last one's stamp
  (a feeder that falls behind its schedule sends less than the rate asked for),
  ``slowest`` the longest a send took, its answer (confirm) included, in seconds;
- at the end of standard input it prints ``done N``, the events sent in all.

Each event is built before it is due with a placeholder ``sentAt``, which
:func:`stamp` replaces with ``time.time()`` immediately before the bytes go to the
kernel (or to the client library that writes them): nothing else runs in between.
Sends start in order; a feeder whose sends must not overlap passes ``ordered=True``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: Longest line accepted on stdin.
MAX_LINE = 1 << 20
#: The ``sentAt`` of an event not yet sent; no real one has it (2001-09-09).
PLACEHOLDER = 1000000000.25
_PLACEHOLDER = repr(PLACEHOLDER).encode()
#: Longest wait for the last sends of a run (and their confirms).
SEND_TIMEOUT = 15.0


def fields(run: str, seq: int, pad: int) -> dict[str, Any]:
    """The benchmark's fields of one event, ``sentAt`` still the placeholder."""
    return {"run": run, "seq": seq, "sentAt": PLACEHOLDER, "pad": "x" * pad}


def event_body(run: str, seq: int, pad: int, audience: Any = None) -> bytes:
    """A bare dashboard event (``dashboard:update``), ``sentAt`` the placeholder; for
    everyone, or for ``audience`` (a ``schemas.audience`` model)."""
    from schemas import DASHBOARD, Event  # noqa: PLC0415 - only the feeders that send events need it

    return Event.untyped(DASHBOARD, fields(run, seq, pad), audience=audience).to_json()


class _Stamps:
    #: ``time.monotonic()`` of the latest stamp: when the latest event went out.
    last = 0.0


def now() -> float:
    """A ``sentAt`` for an event that goes out now (CLOCK_REALTIME); noted for the rate."""
    _Stamps.last = time.monotonic()
    return time.time()


def stamp(body: bytes) -> bytes:
    """``body`` with its placeholder ``sentAt`` replaced by :func:`now`."""
    return body.replace(_PLACEHOLDER, repr(now()).encode(), 1)


async def _paced(
    prepare: Callable[[str, int, int], Any],
    send: Callable[[Any], Awaitable[object]],
    job: dict[str, Any],
    lock: asyncio.Lock | None,
) -> dict[str, Any]:
    run, rate, pad = str(job["run"]), float(job["rate"]), int(job["pad"])
    count = max(1, round(rate * float(job["duration"])))

    async def timed(item: Any) -> float:
        if lock is None:
            started = time.monotonic()
            await send(item)
            return time.monotonic() - started
        async with lock:
            started = time.monotonic()
            await send(item)
            return time.monotonic() - started

    start = time.monotonic()
    _Stamps.last = start
    sends = []
    for seq in range(count):
        item = prepare(run, seq, pad)
        delay = start + seq / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        # A task, so that a send waiting for its answer (a confirm, a 202) does not hold
        # up the next; tasks start in the order they were made.
        sends.append(asyncio.ensure_future(timed(item)))
    try:
        outcomes = await asyncio.wait_for(
            asyncio.gather(*sends, return_exceptions=True), SEND_TIMEOUT
        )
    except TimeoutError:
        outcomes = [
            s.result() if s.done() and not s.cancelled() and s.exception() is None
            else TimeoutError()
            for s in sends
        ]  # fmt: skip
    took = max(_Stamps.last - start, (count - 1) / rate) + 1 / rate
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    if errors:
        print(f"feed: {len(errors)} sends failed, the first: {errors[0]!r}", file=sys.stderr)
    waits = [o for o in outcomes if isinstance(o, float)]
    return {
        "attempted": count,
        "failed": len(errors),
        "rate": (count - len(errors)) / took,
        "slowest": max(waits, default=0.0),
    }


async def feed(
    prepare: Callable[[str, int, int], Any],
    send: Callable[[Any], Awaitable[object]],
    *,
    ordered: bool = False,
) -> int:
    """Serve runs from stdin: ``prepare(run, seq, pad)`` ahead of time, ``send`` when due.

    ``send`` must call :func:`stamp` (or stamp ``sentAt`` itself) right before it
    writes. ``ordered``: one send at a time, in order. Returns the events sent.
    """
    print("ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    lock = asyncio.Lock() if ordered else None
    sent = 0
    while line := await reader.readline():
        if not line.strip():
            continue
        result = await _paced(prepare, send, json.loads(line), lock)
        sent += result["attempted"] - result["failed"]
        print(json.dumps(result), flush=True)
    print(f"done {sent}", flush=True)
    return sent
