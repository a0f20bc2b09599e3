"""``WebSocketNotifier``: the seed's API, now enqueuing typed events after each commit."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from functools import cache
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, connections, transaction

from producer.conf import producer_settings
from producer.publisher import Publisher, PublishError
from schemas import Event, SchemaError
from schemas.requests import ENDPOINTS

__all__ = ["WebSocketNotifier", "publisher"]

log = logging.getLogger("producer")


@cache
def _publisher(broker_url: str, timeout: float) -> Publisher:
    return Publisher(broker_url, timeout=timeout)


def publisher() -> Publisher:
    """The process's publisher for the configured broker (one per URL and timeout)."""
    config = producer_settings()
    if not config.broker_url:
        raise PublishError("no broker: set EVENT_BRIDGE['BROKER_URL'] or CELERY_BROKER_URL")
    return _publisher(config.broker_url, config.publish_timeout)


class WebSocketNotifier:
    """Sends events to browsers through RabbitMQ, as the seed's class did over HTTP.

    Each method validates the event, then publishes it once the current
    transaction commits (at once outside a transaction; nothing if it rolls
    back). It returns ``True`` once the event is enqueued, or ``False`` with
    the reason logged; with ``strict=True`` (or ``EVENT_BRIDGE["STRICT"]``) it
    raises instead.
    """

    def __init__(self, *, strict: bool | None = None, using: str = DEFAULT_DB_ALIAS) -> None:
        self._strict = strict
        self._using = using

    def emit_event(self, event_type: str, data: dict[str, Any]) -> bool:
        """An event for every connection (``emit-event``)."""
        return self._read("emit-event", {"type": event_type, "data": data})

    def notify_role(self, role: str, event: str, payload: dict[str, Any]) -> bool:
        """An event for every connection whose token has ``role``."""
        return self._read("notify-role", {"role": role, "event": event, "payload": payload})

    def notify_user(self, user_id: str, event: str, payload: dict[str, Any]) -> bool:
        """An event for every connection of one user."""
        return self._read(
            "notify-user", {"userId": str(user_id), "event": event, "payload": payload}
        )

    def update_dashboard(self, data: dict[str, Any]) -> bool:
        """A new dashboard snapshot for every connection."""
        return self._read("update-dashboard", data)

    def send(self, event: Event) -> bool:
        """A typed event, e.g. ``Event.of(ReservaCreada(reserva=Reserva(id=1)))``.

        Inside a transaction it returns ``True`` at once and sends on commit;
        a failure then is logged, never raised, since the data is committed
        and no caller is left to handle it.
        """
        connection = connections[self._using]
        if connection.in_atomic_block:
            # Leaves only if the transaction commits; a rollback sends nothing.
            transaction.on_commit(
                lambda: self._publish(event, after_commit=True), using=self._using
            )
            return True
        return self._publish(event)

    @staticmethod
    def get_timestamp() -> str:
        """Now, as the seed wrote timestamps."""
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")

    def failed(self, reason: str, exc: Exception, *, after_commit: bool = False) -> bool:
        """Log why an event was not sent and return ``False``; in strict mode, raise ``exc``."""
        strict = producer_settings().strict if self._strict is None else self._strict
        if strict and not after_commit:
            raise exc
        log.warning("event-bridge: %s", reason)
        return False

    def _read(self, endpoint: str, body: dict[str, Any]) -> bool:
        try:
            event = ENDPOINTS[endpoint].read(json.dumps(body, cls=DjangoJSONEncoder))
        except (SchemaError, TypeError) as exc:
            return self.failed(f"event not valid, not sent: {exc}", exc)
        return self.send(event)

    def _publish(self, event: Event, *, after_commit: bool = False) -> bool:
        try:
            publisher().publish(event)
        except PublishError as exc:
            return self.failed(str(exc), exc, after_commit=after_commit)
        return True
