"""Sends committed outbox rows from the process that wrote them, off the request's thread.

The outbox row commits with the caller's data; then an ``on_commit`` hook hands
its id to this process's :class:`Sender`, which returns at once. One background
thread publishes the handed-over rows, oldest first, with confirms, and deletes
each confirmed one: an event reaches the browsers with nothing else running,
and the request never waits on RabbitMQ.

What it cannot send stays in the outbox, so nothing is lost:

- RabbitMQ refused: the thread sweeps the whole outbox again after a backoff
  (0.5 s, doubling to 30 s), oldest first, until it is empty;
- the process died between the commit and the confirm: the rows wait for the
  relay (``manage.py event_bridge_relay``), which takes rows older than
  :data:`~producer.relay.SWEEP_AFTER`, or for this sender's next sweep;
- more than ``max_pending`` handed over and not yet sent: the rest wait for a
  sweep too.
"""

from __future__ import annotations

import atexit
import logging
import threading
import time
from collections import deque
from functools import cache

from django.db import DEFAULT_DB_ALIAS, close_old_connections

from messaging.forks import reset_in_child
from messaging.publisher import Publisher
from producer.conf import producer_settings
from producer.relay import (
    FIRST_BACKOFF,
    MAX_BACKOFF,
    describe_backlog,
    drain,
    events,
    relay_batch,
)
from schemas.topology import display_url

__all__ = ["MAX_PENDING", "Sender", "sender"]

log = logging.getLogger("producer")

#: Rows handed over and not yet sent, at most; past it they wait for a sweep.
MAX_PENDING = 10_000


@cache
def _publisher(broker_url: str, timeout: float) -> Publisher:
    # No cooldown: the sender backs off on its own, and sweeps after it.
    return Publisher(broker_url, timeout=timeout, cooldown=0)


class Sender:
    """One background thread per process that publishes committed outbox rows.

    Args:
        max_pending: rows handed over and waiting, at most (a bound on memory,
            not on what is kept: the rows are in the outbox).
        batch_size: rows claimed, published and deleted per transaction.
    """

    def __init__(self, *, max_pending: int = MAX_PENDING, batch_size: int = 100) -> None:
        self.max_pending = max_pending
        self.batch_size = batch_size
        self._fresh()
        # A forked child (a gunicorn worker) inherits neither the thread nor a usable lock.
        reset_in_child(self._fresh)

    def _fresh(self) -> None:
        self._changed = threading.Condition()
        self._pending: deque[tuple[str, int]] = deque()
        #: Rows taken by the thread and not yet done with.
        self._busy = 0
        #: Aliases whose outbox holds rows left to a sweep, and when the sweep is due.
        self._owed: set[str] = set()
        self._due = 0.0
        self._backoff = 0.0
        self._overflowed = False
        self._thread: threading.Thread | None = None
        self._closing = False

    def submit(self, using: str, row_id: int) -> None:
        """Hand over a committed row; never blocks on RabbitMQ, never raises."""
        with self._changed:
            if self._closing:
                return  # the row waits in the outbox for the relay
            if self._thread is None:
                self._start()
            if self._owed:
                # RabbitMQ refused lately: the sweep that is due sends it, after older
                # ones, and a save during an outage does not even wake the thread.
                self._owed.add(using)
                return
            if len(self._pending) >= self.max_pending:
                self._owed.add(using)  # a sweep finds it in the outbox
                if not self._overflowed:
                    self._overflowed = True
                    log.warning(
                        "event-bridge: %d events handed over and not yet sent; the next "
                        "ones wait in the outbox for this process's next sweep (or the relay)",
                        self.max_pending,
                    )
                return
            self._pending.append((using, row_id))
            self._changed.notify_all()

    def flush(self, timeout: float) -> bool:
        """Wait until every row handed over is sent or left to a sweep; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._pending and not self._busy, timeout)

    def close(self, timeout: float) -> bool:
        """Stop the thread once the rows handed over are sent; False if it is still busy.

        What it has not sent (rows it owes a sweep, rows handed over afterwards)
        stays in the outbox for the relay. For tests, and code that must know
        the thread is gone; a process that exits needs none of it.
        """
        with self._changed:
            self._closing = True
            self._changed.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="event-bridge sender", daemon=True)
        self._thread.start()
        # A script that sends and exits gives the thread its publish timeout to finish.
        atexit.register(self._at_exit, producer_settings().publish_timeout)

    def _at_exit(self, timeout: float) -> None:
        sent = self.flush(timeout)
        with self._changed:
            left = not sent or bool(self._owed)
        if left:
            log.warning(
                "event-bridge: this process exits with events it could not send: they wait "
                "in the outbox; manage.py event_bridge_relay (or --once) sends them"
            )

    def _run(self) -> None:
        while (taken := self._take()) is not None:
            try:
                self._send(taken)
            except Exception:
                # Whatever it was (a database gone, a bug), the rows are in the outbox:
                # keep the thread alive and sweep them later.
                log.exception("event-bridge: sending from the outbox failed; will sweep it")
                self._failed({using for using, _ in taken} or {DEFAULT_DB_ALIAS})
            finally:
                # As at the end of a request: this thread's connections are closed, or
                # kept as long as the project's CONN_MAX_AGE allows.
                close_old_connections()
                with self._changed:
                    self._busy = 0
                    self._changed.notify_all()

    def _take(self) -> list[tuple[str, int]] | None:
        """Wait for rows or a due sweep: a batch of rows, [] for the sweep, None to stop."""
        with self._changed:
            while True:
                if self._closing and (self._owed or not self._pending):
                    self._pending.clear()  # left to a sweep: the relay's
                    self._changed.notify_all()
                    return None
                if self._owed:
                    # Rows handed over meanwhile go with the sweep, after older ones:
                    # the outbox's order is kept.
                    self._owed.update(using for using, _ in self._pending)
                    self._pending.clear()
                    self._changed.notify_all()
                    left = self._due - time.monotonic()
                    if left <= 0:
                        return []
                    self._changed.wait(left)
                elif self._pending:
                    count = min(self.batch_size, len(self._pending))
                    self._busy = count
                    return [self._pending.popleft() for _ in range(count)]
                else:
                    self._changed.wait()

    def _send(self, taken: list[tuple[str, int]]) -> None:
        config = producer_settings()
        if not config.send_on_commit or not config.broker_url:
            with self._changed:
                self._owed.clear()  # turned off: the relay sends them
            return
        publisher = _publisher(config.broker_url, config.publish_timeout)
        broker = display_url(config.broker_url)
        if not taken:
            self._sweep(publisher, broker)
            return
        by_alias: dict[str, list[int]] = {}
        for using, row_id in taken:
            by_alias.setdefault(using, []).append(row_id)
        for using, ids in by_alias.items():
            batch = relay_batch(publisher, size=len(ids), using=using, ids=ids)
            if batch.error is not None:
                self._failed({using}, f"{batch.error} (broker {broker})")

    def _sweep(self, publisher: Publisher, broker: str) -> None:
        with self._changed:
            owed, self._owed = self._owed, set()
        for using in owed:
            sent, batch = drain(publisher, size=self.batch_size, using=using)
            if batch.error is not None:
                self._failed({using}, f"{batch.error} (broker {broker})")
            elif self._backoff:
                log.info(
                    "event-bridge: RabbitMQ at %s takes events again: %s sent from the outbox",
                    broker,
                    events(sent),
                )
        with self._changed:
            if not self._owed:
                self._backoff = 0.0
                self._overflowed = False

    def _failed(self, aliases: set[str], reason: str | None = None) -> None:
        with self._changed:
            self._backoff = min(MAX_BACKOFF, self._backoff * 2 or FIRST_BACKOFF)
            self._owed.update(aliases)
            self._due = time.monotonic() + self._backoff
        if reason is not None:
            for using in aliases:
                log.warning(
                    "event-bridge: %s; %s, kept: this process tries again in %.1f s "
                    "(and manage.py event_bridge_relay sends them, if it runs)",
                    reason,
                    describe_backlog(using),
                    self._backoff,
                )


#: This process's sender.
sender = Sender()
