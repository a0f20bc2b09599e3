"""Store test events in the example project's outbox, as a Django view does.

Each event is written in a transaction of its own, at a steady rate, through
``WebSocketNotifier.send``; ``manage.py event_bridge_relay`` (running beside
it, on the same database) publishes them. Run with
``DJANGO_SETTINGS_MODULE=tests.support.outbox_settings`` and ``example/`` on
``PYTHONPATH``:

    python -m tests.support.outbox_feeder RUN FIRST STEP COUNT RATE
"""

from __future__ import annotations

import sys
import time

import django


def feed(run: str, first: int, step: int, count: int, rate: float) -> None:
    django.setup()
    # After setup: the producer's models load with the apps.
    from django.db import transaction  # noqa: PLC0415

    from producer.notifier import WebSocketNotifier  # noqa: PLC0415
    from schemas import Event  # noqa: PLC0415

    notifier = WebSocketNotifier()
    start = time.monotonic()
    for n in range(count):
        delay = start + n / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)  # the schedule, not a wait for something
        seq = first + n * step
        data = {"run": run, "seq": seq, "sentAt": time.time()}
        with transaction.atomic():
            notifier.send(Event.untyped("load:tick", data, id=f"{run}-{seq}"))


if __name__ == "__main__":
    run, first, step, count, rate = sys.argv[1:]
    feed(run, int(first), int(step), int(count), float(rate))
    print(f"outbox feeder: {count} events stored")
