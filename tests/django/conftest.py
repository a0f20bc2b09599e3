"""The Django side: the example project (``example/``) and the ``producer`` app, for real.

Django is configured here, from ``example/mi_proyecto/settings.py``, when pytest
collects this folder; the other tests need no Django settings. The database
is SQLite, or what ``DATABASE_URL`` names: ``test_django_postgres.py`` runs the
model tests again with PostgreSQL that way. Events go to this run's RabbitMQ
vhost (``amqp_url``) and reach browsers through a bridge consuming from it.

Events are written to the outbox (the default delivery), so ``live`` comes with
an outbox relay, a real ``manage.py event_bridge_relay`` process: the SQLite
test database is a file, not memory, so that it can open it too.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import django
import pytest
from django.db import connection, connections
from pytest_django import DjangoDbBlocker, Settings

from tests.django.relays import running_relay
from tests.support.bridges import SECRET
from tests.support.django_live import LiveBridge, live_bridge

EXAMPLE = Path(__file__).resolve().parents[2] / "example"


def pytest_configure(config: pytest.Config) -> None:
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "mi_proyecto.settings"
    django.setup()
    if connection.vendor == "sqlite":
        # A file, so that a relay process opens the same test database.
        name = Path(tempfile.gettempdir()) / f"event-bridge-test-{os.getpid()}.sqlite3"
        connection.settings_dict["TEST"]["NAME"] = str(name)


@pytest.fixture(autouse=True, scope="session")
def _database_only_when_asked(django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    # As pytest-django does when Django is configured before it starts.
    with django_db_blocker.block():
        yield


@pytest.fixture(autouse=True)
def event_bridge(settings: Settings, amqp_url: str) -> dict[str, Any]:
    """``EVENT_BRIDGE`` for this run's vhost and the test bridges' secret."""
    settings.EVENT_BRIDGE = {
        "BROKER_URL": amqp_url,
        "JWT_SECRET": SECRET,
        "CATALOG": "api_rest.events",
    }
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    config: dict[str, Any] = settings.EVENT_BRIDGE
    return config


#: Seconds a test waits for the relay to empty the outbox.
DRAIN_WAIT = 10.0


def outbox_sent() -> None:
    """Wait until the outbox holds no committed row: what was committed has been published.

    It looks from a thread, on a connection of its own, so that the rows of a
    transaction the test holds open (which cannot be sent yet) are not counted.
    """
    from producer.models import OutboxEvent  # noqa: PLC0415

    def look() -> None:
        deadline = time.monotonic() + DRAIN_WAIT
        try:
            while OutboxEvent.objects.exists():
                assert time.monotonic() < deadline, "the relay did not empty the outbox"
                time.sleep(0.01)  # a condition in another process: polled, with a deadline
        except RuntimeError as exc:  # this test has no database: it wrote no event either
            if "Database access not allowed" not in str(exc):
                raise
        finally:
            connections.close_all()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(look).result()


@pytest.fixture(scope="module")
def relay(
    django_db_setup: None, django_db_blocker: DjangoDbBlocker, amqp_url: str
) -> Iterator[None]:
    """``manage.py event_bridge_relay`` on the test database, for the tests of one module."""
    with django_db_blocker.unblock(), running_relay(amqp_url):
        yield


@pytest.fixture(scope="module")
def live(
    amqp_url: str, tmp_path_factory: pytest.TempPathFactory, relay: None
) -> Iterator[LiveBridge]:
    """A bridge consuming this run's events, and a relay feeding it, for one module's tests."""
    with live_bridge(amqp_url, tmp_path_factory.mktemp("bridge"), outbox_sent) as bridge:
        yield bridge


@pytest.fixture(autouse=True)
def sender(monkeypatch: pytest.MonkeyPatch) -> Any:
    """A sender thread of the test's own, so that no test's sweep runs into the next."""
    import producer.sender  # noqa: PLC0415 - once Django is set up

    fresh = producer.sender.Sender()
    monkeypatch.setattr(producer.sender, "sender", fresh)
    return fresh


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Stop the test's sender once it sent what the test committed, while the database is open."""
    try:
        yield
    finally:
        import producer.sender  # noqa: PLC0415 - once Django is set up

        assert producer.sender.sender.close(DRAIN_WAIT), "the sender thread did not stop"


def pytest_report_header(config: pytest.Config) -> str:
    # Shown when pytest is given this folder (test_django_postgres.py reads it).
    return f"example database: {connection.vendor} {connection.settings_dict['NAME']}"
