"""System checks: settings that cannot work are reported by ``manage.py check``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import django
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import connections
from django.utils.module_loading import import_string

from producer.conf import DELIVERIES, OUTBOX, producer_reader, producer_settings
from producer.events import declared_types
from producer.models import OUTBOX_TABLE
from schemas import CatalogError
from schemas.protocol import MIN_SECRET_LENGTH
from schemas.topology import broker_urls, display_url, is_amqp_url

__all__ = ["check_catalog", "check_outbox_table", "check_settings"]


@register()
def check_settings(**_: Any) -> list[CheckMessage]:
    """event_bridge.E001 to E005, W001 and W003."""
    config = producer_settings()
    found: list[CheckMessage] = []
    if not config.broker_url:
        found.append(Error(
            "No broker to send events to.",
            hint="Set EVENT_BRIDGE['BROKER_URL'] or CELERY_BROKER_URL to amqp://…",
            id="event_bridge.E001",
        ))  # fmt: skip
    elif not is_amqp_url(config.broker_url.replace("pyamqp://", "amqp://")):
        schemes = {url.split(":", 1)[0] for url in broker_urls(config.broker_url)}
        other = sorted(schemes - {"amqp", "amqps", "pyamqp"})
        found.append(Error(
            f"The broker must be RabbitMQ, not {other[0]}://." if other else
            f"The broker is not one RabbitMQ URL nor several separated by ';': "
            f"{display_url(config.broker_url)}",
            hint="event-bridge routes through RabbitMQ's bridge.events exchange; a "
            "cluster's nodes go in one string separated by ';', or in a list.",
            id="event_bridge.E002",
        ))  # fmt: skip
    if config.roles:
        try:
            import_string(config.roles)
        except ImportError as exc:
            found.append(Error(
                f"EVENT_BRIDGE['ROLES'] cannot be imported: {exc}",
                hint="Give the dotted path of a function user -> list of role names.",
                id="event_bridge.E003",
            ))  # fmt: skip
    if config.jwt_secret is None:
        found.append(Warning(
            "EVENT_BRIDGE['JWT_SECRET'] is not set: the token view answers 503.",
            hint="Use the same secret as the bridge's --jwt-secret.",
            id="event_bridge.W001",
        ))  # fmt: skip
    elif len(config.jwt_secret) < MIN_SECRET_LENGTH:
        found.append(Error(
            f"EVENT_BRIDGE['JWT_SECRET'] must be at least {MIN_SECRET_LENGTH} characters.",
            id="event_bridge.E004",
        ))  # fmt: skip
    if config.delivery == OUTBOX:
        found += _sqlite_without_immediate()
    if config.delivery not in DELIVERIES:
        found.append(Error(
            f"EVENT_BRIDGE['DELIVERY'] is {config.delivery!r}.",
            hint='Use "outbox" (the default) or "direct".',
            id="event_bridge.E005",
        ))  # fmt: skip
    return found


@register()
def check_catalog(**_: Any) -> list[CheckMessage]:
    """event_bridge.E006 and E007: the catalog loads, and knows every model_events type."""
    config = producer_settings()
    try:
        catalog = producer_reader(strict=False).catalog
    except CatalogError as exc:
        return [Error(
            f"EVENT_BRIDGE['CATALOG'] cannot be loaded: {exc}",
            hint="Give the dotted path of the module holding your Catalog, e.g. 'shop.events'.",
            id="event_bridge.E006",
        )]  # fmt: skip
    if not config.strict_models:
        return []
    where = f"catalog {config.catalog}" if config.catalog else "catalog (none is set)"
    return [
        Error(
            f"model_events({label}) sends {event_type!r}, which is not in the {where}.",
            hint=f"Register it: @catalog.register({event_type!r}) on its payload class, and "
            "set EVENT_BRIDGE['CATALOG'] to that module; or set EVENT_BRIDGE['STRICT'] = "
            "False to send it untyped.",
            id="event_bridge.E007",
        )
        for label, event_type in declared_types()
        if event_type not in catalog
    ]


def _sqlite_without_immediate() -> list[CheckMessage]:
    # The sender thread and the relay delete sent rows on connections of their own. A
    # deferred SQLite transaction that read first and then writes would find the
    # database locked and fail at once (SQLite's deadlock rule), rather than wait;
    # BEGIN IMMEDIATE makes it wait. Django reads transaction_mode from 5.1 on.
    if django.VERSION >= (5, 1):
        hint = "Set DATABASES[{alias!r}]['OPTIONS']['transaction_mode'] = 'IMMEDIATE'."
    else:
        hint = (
            "Django 5.1 and later take DATABASES[{alias!r}]['OPTIONS']['transaction_mode'] "
            "= 'IMMEDIATE'; with Django {version}, keep SQLite for development, or use "
            "PostgreSQL."
        )
    return [
        Warning(
            f"Database {alias!r} is SQLite with deferred transactions: with the outbox's "
            "sender thread and relay writing too, a transaction that reads before it "
            "writes can fail with 'database is locked'.",
            hint=hint.format(alias=alias, version=django.get_version()),
            id="event_bridge.W003",
        )
        for alias in connections
        if connections[alias].vendor == "sqlite"
        and connections[alias].settings_dict.get("OPTIONS", {}).get("transaction_mode")
        != "IMMEDIATE"
    ]


@register(Tags.database)
def check_outbox_backlog(databases: Iterable[str] | None = None, **_: Any) -> list[CheckMessage]:
    """event_bridge.W004: events waiting in the outbox for too long (``check --database``)."""
    if producer_settings().delivery != OUTBOX:
        return []
    # Not at the top: checks load before the app registry is ready.
    from producer.relay import backlog  # noqa: PLC0415

    found: list[CheckMessage] = []
    for alias in databases or ():
        if OUTBOX_TABLE not in connections[alias].introspection.table_names():
            continue  # W002 says so
        waiting = backlog(alias)
        if waiting.stuck:
            found.append(
                Warning(
                    f"{waiting} in database {alias!r}: nothing is sending them, so no "
                    "browser gets them.",
                    hint="Run manage.py event_bridge_relay (keep it running; --once sends "
                    "what is there and exits), and check that RabbitMQ is reachable. Web "
                    "processes send their own events on commit and retry while they run; "
                    "the relay sends what a stopped process left, and everything when "
                    "EVENT_BRIDGE['SEND_ON_COMMIT'] is False.",
                    id="event_bridge.W004",
                )
            )
    return found


@register(Tags.database)
def check_outbox_table(databases: Iterable[str] | None = None, **_: Any) -> list[CheckMessage]:
    """event_bridge.W002: outbox delivery without an outbox table (``check --database``)."""
    if producer_settings().delivery != OUTBOX:
        return []
    return [
        Warning(
            f"EVENT_BRIDGE['DELIVERY'] is 'outbox' but database {alias!r} has no {OUTBOX_TABLE}"
            " table: saves that send events will fail.",
            hint="Run manage.py migrate producer.",
            id="event_bridge.W002",
        )
        for alias in databases or ()
        if OUTBOX_TABLE not in connections[alias].introspection.table_names()
    ]
