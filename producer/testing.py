"""Record the events a block of code would send, for a project's own tests. No RabbitMQ needed.

::

    from producer.testing import captured_events

    def test_an_order_tells_the_browsers(db):
        with captured_events() as sent:
            Order.objects.create(total=12)
        assert [e.type for e in sent] == ["order:created"]

Only events whose transaction commits are recorded, in the order they would
leave; a rollback records nothing. Inside Django's ``TestCase`` (and
pytest-django's ``db``), whose own transaction never commits, an event sent
outside any other transaction is recorded at once, and one sent in an inner
``transaction.atomic()`` that commits is recorded when the block ends. With
pytest, add ``pytest_plugins = ["producer.pytest_plugin"]`` to a
``conftest.py`` for the ``sent_events`` fixture. While capturing, nothing is
written to the outbox or published.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial

from django.db import DEFAULT_DB_ALIAS, connections, transaction

from schemas import Event

__all__ = ["captured_events", "record"]

_sink: ContextVar[list[Event] | None] = ContextVar("event_bridge_capture", default=None)


def record(event: Event, using: str) -> bool:
    """Keep ``event`` for the block capturing, once its transaction commits; false if none."""
    sink = _sink.get()
    if sink is None:
        return False
    if _only_the_tests_transaction(using):
        sink.append(event)  # committed, as far as the code under test can tell
        return True
    keep = partial(sink.append, event)
    keep.event_bridge_capture = True  # type: ignore[attr-defined]
    transaction.on_commit(keep, using=using)
    return True


def _only_the_tests_transaction(using: str) -> bool:
    """Whether every open transaction is a ``TestCase``'s, which never commits."""
    connection = connections[using]
    return connection.in_atomic_block and all(
        getattr(block, "_from_testcase", False) for block in connection.atomic_blocks
    )


@contextmanager
def captured_events(*, using: str = DEFAULT_DB_ALIAS) -> Iterator[list[Event]]:
    """The events the block sends through ``WebSocketNotifier`` or ``model_events``."""
    sent: list[Event] = []
    connection = connections[using]
    start = len(connection.run_on_commit)
    token = _sink.set(sent)
    try:
        yield sent
    finally:
        _sink.reset(token)
        # Inside a TestCase the outermost transactions are the test's, and never commit:
        # what an inner transaction committed waits for them, and counts now.
        if _only_the_tests_transaction(using):
            waiting = connection.run_on_commit[start:]
            ours = [entry for entry in waiting if getattr(entry[1], "event_bridge_capture", False)]
            connection.run_on_commit[start:] = [entry for entry in waiting if entry not in ours]
            for entry in ours:
                entry[1]()
