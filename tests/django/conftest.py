"""The Django side: the example project (``example/``) and the ``producer`` app, for real.

Django is configured here, from ``example/mi_proyecto/settings.py``, when pytest
collects this folder; the other tests need no Django settings. The database
is SQLite, or what ``DATABASE_URL`` names: ``test_django_postgres.py`` runs the
model tests again with PostgreSQL that way. Events go to this run's RabbitMQ
vhost (``amqp_url``) and reach browsers through a bridge consuming from it.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django
import pytest
from django.db import connection
from pytest_django import DjangoDbBlocker, Settings

from tests.bridges import SECRET
from tests.django_live import LiveBridge, live_bridge

EXAMPLE = Path(__file__).resolve().parents[2] / "example"


def pytest_configure(config: pytest.Config) -> None:
    if str(EXAMPLE) not in sys.path:
        sys.path.insert(0, str(EXAMPLE))
    os.environ["DJANGO_SETTINGS_MODULE"] = "mi_proyecto.settings"
    django.setup()


@pytest.fixture(autouse=True, scope="session")
def _database_only_when_asked(django_db_blocker: DjangoDbBlocker) -> Iterator[None]:
    # As pytest-django does when Django is configured before it starts.
    with django_db_blocker.block():
        yield


@pytest.fixture(autouse=True)
def event_bridge(settings: Settings, amqp_url: str) -> dict[str, Any]:
    """``EVENT_BRIDGE`` for this run's vhost and the test bridges' secret."""
    settings.EVENT_BRIDGE = {"BROKER_URL": amqp_url, "JWT_SECRET": SECRET}
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    config: dict[str, Any] = settings.EVENT_BRIDGE
    return config


@pytest.fixture(scope="module")
def live(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBridge]:
    """A bridge consuming this run's events, for the tests of one module."""
    with live_bridge(amqp_url, tmp_path_factory.mktemp("bridge")) as bridge:
        yield bridge


def pytest_report_header(config: pytest.Config) -> str:
    # Shown when pytest is given this folder (test_django_postgres.py reads it).
    return f"example database: {connection.vendor} {connection.settings_dict['NAME']}"
