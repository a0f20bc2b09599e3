"""The ``EVENT_BRIDGE`` settings dict, read when needed, never at import time.

::

    EVENT_BRIDGE = {
        "BROKER_URL": "amqp://guest:guest@localhost:5672//",  # default: CELERY_BROKER_URL;
                                  # a cluster's nodes: "amqp://a//;amqp://b//" or a list
        "DELIVERY": "outbox",     # or "direct": publish on commit, lost if RabbitMQ is down
        "SEND_ON_COMMIT": True,   # outbox: this process publishes each committed row at
                                  # once, off the request's thread; False leaves them
                                  # all to manage.py event_bridge_relay
        "CATALOG": "shop.events", # your event types (a module without Django); default: none
        "STRICT": True,           # refuse types outside the catalog and data that does not
                                  # fit, raising; default: DEBUG for model_events, False for
                                  # the seed's notifier methods
        "PUBLISH_TIMEOUT": 2.0,   # seconds one send may take, retries included
        "JWT_SECRET": "…",        # the bridge's --jwt-secret, for the token view
        "TOKEN_TTL": 300,         # seconds a browser token lives (the browser client
                                  # fetches a new one when the bridge asks)
        "JWT_ISSUER": "shop",     # the iss and aud of tokens, if the bridge checks them
        "JWT_AUDIENCE": "event-bridge",  # (its --jwt-issuer and --jwt-audience)
        "BRIDGE_URL": "ws://localhost:4000/ws",
        "ROLES": "myapp.auth.roles_for",  # user -> list of roles; default: group names
        "RELAY_POLL_INTERVAL": 0.2,  # seconds the relay waits between looks (not PostgreSQL)
        "RELAY_BATCH_SIZE": 100,  # rows the relay claims, publishes and deletes at a time
    }
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings

from schemas import Catalog, Reader, load_catalog

__all__ = [
    "DELIVERIES",
    "DIRECT",
    "OUTBOX",
    "ProducerSettings",
    "producer_reader",
    "producer_settings",
]

#: Events are written to the outbox table in the caller's transaction; the relay sends them.
OUTBOX = "outbox"
#: Events are published on commit by the process that saved them (lost if RabbitMQ is down).
DIRECT = "direct"
DELIVERIES = (OUTBOX, DIRECT)


@dataclass(frozen=True)
class ProducerSettings:
    broker_url: str | None
    #: The seed's notifier methods: strict only when ``STRICT`` says so, since legacy
    #: code sends names and shapes nobody declared.
    strict: bool
    #: ``model_events``, the producer's own typed API: ``STRICT``, or ``DEBUG`` when
    #: unset, so a mistake surfaces in development where it is made.
    strict_models: bool
    catalog: str | None
    publish_timeout: float
    jwt_secret: str | None
    token_ttl: int
    jwt_issuer: str | None
    jwt_audience: str | None
    bridge_url: str
    roles: str | None
    delivery: str
    send_on_commit: bool
    relay_poll_interval: float
    relay_batch_size: int


def producer_settings() -> ProducerSettings:
    """The current settings; ``override_settings`` in tests is honoured."""
    given: dict[str, Any] = getattr(settings, "EVENT_BRIDGE", {})
    return ProducerSettings(
        broker_url=_broker(given.get("BROKER_URL") or getattr(settings, "CELERY_BROKER_URL", None)),
        strict=bool(given.get("STRICT", False)),
        strict_models=bool(given.get("STRICT", settings.DEBUG)),
        catalog=given.get("CATALOG") or None,
        publish_timeout=float(given.get("PUBLISH_TIMEOUT", 2.0)),
        jwt_secret=given.get("JWT_SECRET"),
        token_ttl=int(given.get("TOKEN_TTL", 300)),
        jwt_issuer=given.get("JWT_ISSUER") or None,
        jwt_audience=given.get("JWT_AUDIENCE") or None,
        bridge_url=given.get("BRIDGE_URL", "ws://localhost:4000/ws"),
        roles=given.get("ROLES"),
        delivery=str(given.get("DELIVERY", OUTBOX)),
        send_on_commit=bool(given.get("SEND_ON_COMMIT", True)),
        relay_poll_interval=float(given.get("RELAY_POLL_INTERVAL", 0.2)),
        relay_batch_size=int(given.get("RELAY_BATCH_SIZE", 100)),
    )


def _broker(setting: str | Sequence[str] | None) -> str | None:
    # Celery takes the nodes of a cluster as a list too; kombu's own form is "a;b".
    if setting is None or isinstance(setting, str):
        return setting
    return ";".join(setting)


def producer_reader(*, strict: bool) -> Reader:
    """The reader of the configured catalog; raises :class:`~schemas.CatalogError`."""
    return _reader(producer_settings().catalog, strict)


@cache
def _reader(spec: str | None, strict: bool) -> Reader:
    # Built once per process: a reader compiles the catalog's validators.
    return Reader(load_catalog(spec) if spec else Catalog(), strict=strict)
