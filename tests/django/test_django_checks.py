"""``manage.py check`` reports the producer settings that cannot work."""

from __future__ import annotations

from io import StringIO
from typing import Any

import django
import pytest
from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection
from django.test import override_settings

from producer.conf import producer_settings
from producer.models import OUTBOX_TABLE


def event_bridge_ids() -> list[str]:
    return sorted(m.id for m in checks.run_checks() if (m.id or "").startswith("event_bridge."))


def test_the_example_settings_pass() -> None:
    assert event_bridge_ids() == []
    out = StringIO()
    call_command("check", stdout=out)
    assert "no issues" in out.getvalue()


def test_a_cluster_s_nodes_are_one_broker_setting(event_bridge: dict[str, Any]) -> None:
    """Issue 17: kombu's ';' form, or a list as Celery takes it, is one setting."""
    nodes = ["amqp://u:p@rabbit-1//", "pyamqp://u:p@rabbit-2//"]
    for given in (nodes, ";".join(nodes)):
        with override_settings(EVENT_BRIDGE={**event_bridge, "BROKER_URL": given}):
            assert producer_settings().broker_url == ";".join(nodes)
            assert event_bridge_ids() == []
    run_together = "amqp://u:secret1@a//,amqp://u:secret2@b//"
    with override_settings(EVENT_BRIDGE={**event_bridge, "BROKER_URL": run_together}):
        (error,) = [m for m in checks.run_checks() if m.id == "event_bridge.E002"]
        assert "separated by ';'" in error.msg
        assert "secret" not in error.msg


def test_a_missing_broker_is_event_bridge_e001(event_bridge: dict[str, Any]) -> None:
    without_broker = {k: v for k, v in event_bridge.items() if k != "BROKER_URL"}
    with override_settings(EVENT_BRIDGE=without_broker):
        assert event_bridge_ids() == ["event_bridge.E001"]
        with pytest.raises(SystemCheckError, match=r"event_bridge\.E001"):
            call_command("check")
    # Celery's broker is the default.
    with override_settings(EVENT_BRIDGE=without_broker, CELERY_BROKER_URL="amqp://rabbit//"):
        assert event_bridge_ids() == []


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"BROKER_URL": "redis://127.0.0.1:6379/0"}, "event_bridge.E002"),
        ({"BROKER_URL": ["amqp://a//", "redis://b/0"]}, "event_bridge.E002"),
        ({"BROKER_URL": "amqp://u:p@a//,amqp://u:p@b//"}, "event_bridge.E002"),
        ({"ROLES": "api_rest.nowhere.roles_for"}, "event_bridge.E003"),
        ({"JWT_SECRET": "too-short"}, "event_bridge.E004"),
        ({"JWT_SECRET": None}, "event_bridge.W001"),
        ({"DELIVERY": "later"}, "event_bridge.E005"),
        ({"CATALOG": "api_rest.nowhere"}, "event_bridge.E006"),
        ({"CATALOG": "api_rest.models"}, "event_bridge.E006"),  # holds no Catalog
    ],
)
def test_each_setting_that_cannot_work_is_reported(
    event_bridge: dict[str, Any], changes: dict[str, Any], expected: str
) -> None:
    with override_settings(EVENT_BRIDGE={**event_bridge, **changes}):
        assert event_bridge_ids() == [expected]


@pytest.mark.django_db
def test_outbox_delivery_without_the_outbox_table_is_event_bridge_w002(
    event_bridge: dict[str, Any],
) -> None:
    def database_ids() -> list[str]:
        found = checks.run_checks(databases=["default"], tags=[checks.Tags.database])
        return sorted(m.id for m in found if (m.id or "").startswith("event_bridge."))

    assert database_ids() == []
    with connection.cursor() as cursor:  # rolled back with the test's transaction
        cursor.execute(f"ALTER TABLE {OUTBOX_TABLE} RENAME TO not_the_outbox")
    assert database_ids() == ["event_bridge.W002"]
    with override_settings(EVENT_BRIDGE={**event_bridge, "DELIVERY": "direct"}):
        assert database_ids() == []


def test_sqlite_with_deferred_transactions_and_the_outbox_is_event_bridge_w003(
    event_bridge: dict[str, Any],
) -> None:
    if connection.vendor != "sqlite":
        pytest.skip(f"W003 is about SQLite; this run's database is {connection.vendor}")
    options = connection.settings_dict["OPTIONS"]
    if django.VERSION < (5, 1):
        # The example cannot set it: Django reads it from 5.1 on. W003 says what to do.
        [found] = [m for m in checks.run_checks() if m.id == "event_bridge.W003"]
        assert "Django 5.1 and later take" in (found.hint or "")
        assert "or use PostgreSQL" in (found.hint or "")
        return
    assert options["transaction_mode"] == "IMMEDIATE"  # as the example sets it
    try:
        del options["transaction_mode"]
        assert event_bridge_ids() == ["event_bridge.W003"]
        with override_settings(EVENT_BRIDGE={**event_bridge, "DELIVERY": "direct"}):
            assert event_bridge_ids() == []  # no relay writes then
    finally:
        options["transaction_mode"] = "IMMEDIATE"


def test_a_model_events_type_outside_the_catalog_is_e007_while_strict(
    event_bridge: dict[str, Any],
) -> None:
    # The example declares model_events for the seed's types; without its catalog none is known.
    no_catalog = {k: v for k, v in event_bridge.items() if k != "CATALOG"}
    with override_settings(EVENT_BRIDGE={**no_catalog, "STRICT": True}):
        found = [m for m in checks.run_checks() if m.id == "event_bridge.E007"]
        assert found, "the example's model_events types should be reported"
        assert "model_events(api_rest.Reserva) sends 'reserva:creada'" in found[0].msg
        assert "@catalog.register('reserva:creada')" in (found[0].hint or "")
    with override_settings(EVENT_BRIDGE={**no_catalog, "STRICT": False}):
        assert event_bridge_ids() == []
    # STRICT left out: DEBUG decides, so development is strict and production is not.
    with override_settings(EVENT_BRIDGE=no_catalog, DEBUG=True):
        assert "event_bridge.E007" in event_bridge_ids()
    with override_settings(EVENT_BRIDGE=no_catalog, DEBUG=False):
        assert event_bridge_ids() == []
