"""The outbox relay: publishes stored events with confirms, then deletes them.

Its core is :func:`relay_batch`: claim the oldest rows, publish each through the
Django-free :class:`~messaging.publisher.Publisher`, delete the confirmed ones,
commit. :class:`Relay` repeats it, waking when an insert commits (PostgreSQL's
LISTEN/NOTIFY) or every ``poll_interval`` seconds (other databases), and backs
off while RabbitMQ refuses. ``manage.py event_bridge_relay`` runs it.

Delivery is at least once: a relay that dies between a confirm and the delete
sends those events again, and the bridge drops them by event id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache
from typing import Any, Protocol

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.utils import timezone

from messaging.publisher import Publisher, PublishError
from producer.models import OUTBOX_CHANNEL, OutboxEvent
from schemas import Catalog, Reader, SchemaError

__all__ = [
    "FIRST_BACKOFF",
    "MAX_BACKOFF",
    "STUCK_AFTER",
    "SWEEP_AFTER",
    "Backlog",
    "Batch",
    "Listener",
    "Poller",
    "Relay",
    "backlog",
    "describe_backlog",
    "drain",
    "events",
    "relay_batch",
    "waiter",
]

log = logging.getLogger("producer.relay")

#: Seconds the relay waits after its first failure; doubled after each next one.
FIRST_BACKOFF = 0.5
#: The most it waits between two tries.
MAX_BACKOFF = 30.0
#: On PostgreSQL, seconds between two looks when no notification came (a safety net).
LISTEN_RECHECK = 5.0
#: The longest one wait lasts before the relay checks whether it was asked to stop.
STOP_CHECK = 0.25
#: Seconds after which an event still in the outbox means nothing is sending it:
#: a running relay takes rows within its poll interval, or its backoff while
#: RabbitMQ is down (at most ``MAX_BACKOFF``).
STUCK_AFTER = 30.0
#: Seconds a row is left to the process that wrote it, which sends it on commit
#: (``SEND_ON_COMMIT``), before the relay takes it as left over: two senders
#: racing for a fresh row would send it twice, or out of order, where rows
#: cannot be claimed (SQLite).
SWEEP_AFTER = 5.0


@dataclass(frozen=True)
class Batch:
    """What one :func:`relay_batch` did."""

    #: Rows it claimed.
    claimed: int
    #: Events RabbitMQ confirmed (their rows are deleted).
    sent: int
    #: Why it stopped before the end of the batch, if it did.
    error: PublishError | None = None


def relay_batch(
    publisher: Publisher,
    *,
    size: int,
    using: str = DEFAULT_DB_ALIAS,
    ids: Collection[int] | None = None,
    older_than: float = 0.0,
) -> Batch:
    """Publish up to ``size`` of the oldest events, and delete those RabbitMQ confirmed.

    ``ids`` limits it to those rows, ``older_than`` to rows stored at least that
    many seconds ago. Where the database can skip locked rows (PostgreSQL,
    MySQL 8, Oracle), the rows are claimed with ``SELECT … FOR UPDATE SKIP
    LOCKED`` in a transaction held while publishing, so several relays and
    senders share the work. Elsewhere (SQLite) nothing is claimed: run one
    relay only, or events may be sent twice (the bridge drops the second).
    """
    rows = OutboxEvent.objects.using(using).order_by("id")
    if ids is not None:
        rows = rows.filter(id__in=ids)
    if older_than:
        rows = rows.filter(created__lte=timezone.now() - timedelta(seconds=older_than))
    if not connections[using].features.has_select_for_update_skip_locked:
        return _publish(publisher, list(rows[:size]), using)
    with transaction.atomic(using=using):
        return _publish(publisher, list(rows.select_for_update(skip_locked=True)[:size]), using)


def drain(
    publisher: Publisher,
    *,
    size: int,
    using: str = DEFAULT_DB_ALIAS,
    older_than: float = 0.0,
    stop: threading.Event | None = None,
) -> tuple[int, Batch]:
    """Send batches until none is left, one fails or ``stop`` is set: events sent, last batch."""
    sent = 0
    while True:
        batch = relay_batch(publisher, size=size, using=using, older_than=older_than)
        sent += batch.sent
        done = batch.error is not None or batch.claimed < size
        if done or (stop is not None and stop.is_set()):
            return sent, batch


@cache
def _rows() -> Reader:
    # Rows were checked against the catalog when written; sending them needs only
    # the envelope, read untyped, so the relay never depends on the catalog.
    return Reader(Catalog())


def _publish(publisher: Publisher, rows: list[OutboxEvent], using: str) -> Batch:
    done: list[int] = []  # sent, or dropped as unsendable: either way, deleted
    sent = 0
    error = None
    for row in rows:
        try:
            publisher.publish(_rows().event(row.body))
            sent += 1
        except SchemaError as exc:
            # Stored under an older catalog: it can never be sent, and if kept it would
            # be retried forever. The log line keeps it for an operator to replay.
            log.error(
                "outbox event %s dropped, no longer valid: %s; it was: %s",
                row.event_id,
                exc,
                row.body,
            )
        except PublishError as exc:
            error = exc
            break
        done.append(row.id)
    if done:
        OutboxEvent.objects.using(using).filter(id__in=done).delete()
    return Batch(claimed=len(rows), sent=sent, error=error)


@dataclass(frozen=True)
class Backlog:
    """Events waiting in the outbox, and how long the oldest has waited."""

    count: int
    oldest: datetime | None

    @property
    def age(self) -> float:
        """Seconds the oldest event has waited (0 for an empty outbox)."""
        return 0.0 if self.oldest is None else (timezone.now() - self.oldest).total_seconds()

    @property
    def stuck(self) -> bool:
        """Whether the oldest has waited past :data:`STUCK_AFTER`: nothing is sending."""
        return self.age > STUCK_AFTER

    def __str__(self) -> str:
        if self.oldest is None:
            return "the outbox is empty"
        return f"{events(self.count)} waiting in the outbox, the oldest for {self.age:.1f} s"


def events(count: int) -> str:
    """``1 event``, ``2 events``: counts in log lines read as sentences."""
    return f"{count} event" if count == 1 else f"{count} events"


def backlog(using: str = DEFAULT_DB_ALIAS) -> Backlog:
    """The outbox's current backlog (one count and one lookup: for logs, not every batch)."""
    rows = OutboxEvent.objects.using(using)
    oldest = rows.order_by("id").values_list("created", flat=True).first()
    return Backlog(count=rows.count(), oldest=oldest)


def describe_backlog(using: str = DEFAULT_DB_ALIAS) -> str:
    """:func:`backlog` for a log line, which must not fail when the database does."""
    try:
        return str(backlog(using))
    except DatabaseError as exc:
        return f"the backlog is unknown ({exc})"


class Waiter(Protocol):
    def wait(self, stop: threading.Event) -> None: ...

    def close(self) -> None: ...


class Poller:
    """Wakes the relay every ``interval`` seconds."""

    def __init__(self, interval: float) -> None:
        self.interval = interval

    def wait(self, stop: threading.Event) -> None:
        stop.wait(self.interval)

    def __str__(self) -> str:
        return f"every {self.interval} s"

    def close(self) -> None:
        pass


class Listener:
    """Wakes the relay when a transaction that inserted outbox rows commits (PostgreSQL).

    It LISTENs on a connection of its own; the migration's trigger NOTIFYs in
    the inserting transaction. Without a notification it looks again after
    :data:`LISTEN_RECHECK` seconds; if its connection fails it polls until it
    can LISTEN again.
    """

    def __init__(self, using: str, poll_interval: float) -> None:
        self._wrapper = connections[using]
        #: The DB-API module (psycopg), whose errors a raw connection raises.
        self._database: Any = getattr(self._wrapper, "Database")  # noqa: B009 - untyped
        self._poll_interval = poll_interval
        self._connection: Any = None

    def __str__(self) -> str:
        return f"on NOTIFY {OUTBOX_CHANNEL}, and every {LISTEN_RECHECK} s"

    def wait(self, stop: threading.Event) -> None:
        try:
            connection = self._listening()
            deadline = LISTEN_RECHECK
            while deadline > 0 and not stop.is_set():
                for _ in connection.notifies(timeout=min(STOP_CHECK, deadline), stop_after=1):
                    return
                deadline -= STOP_CHECK
        except self._database.Error as exc:  # psycopg's own: not Django's wrapper
            self._lost(exc, stop)

    def _listening(self) -> Any:
        if self._connection is None:
            params = self._wrapper.get_connection_params()
            self._connection = self._database.connect(**params, autocommit=True)
            self._connection.execute(f"LISTEN {OUTBOX_CHANNEL}")
        return self._connection

    def _lost(self, exc: Exception, stop: threading.Event) -> None:
        log.warning("relay: LISTEN failed (%s); polling every %.1f s", exc, self._poll_interval)
        self.close()
        stop.wait(self._poll_interval)

    def close(self) -> None:
        if self._connection is not None:
            connection, self._connection = self._connection, None
            try:
                connection.close()
            except self._database.Error:
                log.debug("relay: closing the LISTEN connection failed", exc_info=True)


def waiter(using: str, poll_interval: float) -> Waiter:
    """LISTEN/NOTIFY on PostgreSQL with psycopg 3; polling every ``poll_interval`` s elsewhere."""
    wrapper = connections[using]
    if wrapper.vendor == "postgresql" and getattr(wrapper, "Database").__name__ == "psycopg":  # noqa: B009
        return Listener(using, poll_interval)
    return Poller(poll_interval)


class Relay:
    """Moves events from the outbox to RabbitMQ until asked to stop.

    Args:
        publisher: publishes one event with confirms; give it ``cooldown=0``,
            since the relay backs off on its own.
        broker: the broker's URL with its password hidden, for log lines.
        using: the database alias whose outbox it drains.
        batch_size: rows claimed, published and deleted per transaction.
        wait: how it waits for new rows (:func:`waiter`).
        sweep_after: seconds a row is left to the process that wrote it
            (:data:`SWEEP_AFTER` when that process sends on commit, else 0).
    """

    def __init__(
        self,
        publisher: Publisher,
        *,
        broker: str,
        wait: Waiter,
        using: str = DEFAULT_DB_ALIAS,
        batch_size: int = 100,
        sweep_after: float = 0.0,
        first_backoff: float = FIRST_BACKOFF,
        max_backoff: float = MAX_BACKOFF,
    ) -> None:
        self.publisher = publisher
        self.broker = broker
        self.using = using
        self.batch_size = batch_size
        self.sweep_after = sweep_after
        self.first_backoff = first_backoff
        self.max_backoff = max_backoff
        self._wait = wait
        self._backoff = 0.0
        #: Events published since the relay started.
        self.sent = 0

    def drain(self, stop: threading.Event | None = None) -> Batch:
        """Send batches until the outbox is empty, one fails or ``stop`` is set; the last batch."""
        sent, batch = drain(
            self.publisher,
            size=self.batch_size,
            using=self.using,
            older_than=self.sweep_after,
            stop=stop,
        )
        self.sent += sent
        return batch

    def run(self, stop: threading.Event) -> None:
        """Drain, then wait for more, until ``stop`` is set; back off while failing."""
        try:
            while not stop.is_set():
                if self._step(stop):
                    self._wait.wait(stop)
                else:
                    stop.wait(self._backoff)
        finally:
            self._wait.close()
            connections[self.using].close()

    def _step(self, stop: threading.Event) -> bool:
        """One drain; False if it failed (after logging what an operator can do)."""
        try:
            batch = self.drain(stop)
        except DatabaseError as exc:
            self._failed(f"the database did not answer: {exc}")
            connections[self.using].close()  # a fresh connection for the next try
            return False
        if batch.error is not None:
            self._failed(f"{batch.error}", waiting=True)
            return False
        if self._backoff:
            log.info(
                "relay: RabbitMQ at %s takes events again; %s",
                self.broker,
                describe_backlog(self.using),
            )
            self._backoff = 0.0
        return True

    def _failed(self, reason: str, *, waiting: bool = False) -> None:
        self._backoff = min(self.max_backoff, self._backoff * 2 or self.first_backoff)
        left = describe_backlog(self.using) if waiting else "the outbox keeps its events"
        log.warning(
            "relay: %s; %s; retrying in %.1f s (check that RabbitMQ at %s is up and this "
            "user may publish to bridge.events)",
            reason,
            left,
            self._backoff,
            self.broker,
        )
