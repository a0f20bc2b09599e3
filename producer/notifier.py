"""``WebSocketNotifier``: the seed's API, now enqueuing typed events with their transaction.

Two ways to deliver, chosen by ``EVENT_BRIDGE["DELIVERY"]``:

- ``"outbox"`` (the default): the event is written to the outbox table in the
  caller's transaction, one INSERT. Once that commits, this process publishes
  it from a background thread (:mod:`producer.sender`) and deletes the row on
  RabbitMQ's confirm; what it cannot send, ``manage.py event_bridge_relay``
  sends. RabbitMQ being down costs the request nothing, and a process killed
  after the commit loses nothing.
- ``"direct"``: the event is published on commit by this process, with confirms,
  within ``PUBLISH_TIMEOUT``; no relay to run, but an event that RabbitMQ does
  not take then is lost (logged).
"""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime
from functools import cache, partial
from typing import Any

from asgiref.sync import sync_to_async
from django.core.serializers.json import DjangoJSONEncoder
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction

from messaging.publisher import Publisher, PublishError
from producer.conf import OUTBOX, producer_reader, producer_settings
from producer.testing import record
from schemas import CatalogError, Event, SchemaError

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


class _BacklogWatch:
    """Says in this process's log when stored events are not being sent.

    Forgetting ``event_bridge_relay`` otherwise fails silently: saves succeed and
    no browser hears of them. One look every ``STUCK_AFTER`` seconds at most.
    """

    def __init__(self) -> None:
        self._looked = -float("inf")

    def look(self, using: str) -> None:
        # Not at the top: the relay module loads models.
        from producer.relay import STUCK_AFTER, backlog  # noqa: PLC0415

        now = time.monotonic()
        if now - self._looked < STUCK_AFTER:
            return
        self._looked = now
        waiting = backlog(using)
        if waiting.stuck:
            log.warning(
                "event-bridge: %s: nothing is sending them, so no browser gets them; "
                "run manage.py event_bridge_relay (manage.py check --database %s says so too)",
                waiting,
                using,
            )


_watch = _BacklogWatch()


class WebSocketNotifier:
    """Sends events to browsers through RabbitMQ, as the seed's class did over HTTP.

    Each method reads the event against the project's catalog
    (``EVENT_BRIDGE["CATALOG"]``), then enqueues it with the current
    transaction: nothing leaves if it rolls back. A type outside the catalog,
    or one whose data does not fit it, is sent untyped, as given (the latter
    with a warning, once per type), unless strict. In ``"outbox"`` delivery (the
    default) ``True`` means the event is stored in the outbox (in the caller's
    transaction, or committed at once outside one); in ``"direct"`` delivery
    it means RabbitMQ confirmed it (outside a transaction) or that it will be
    published on commit. ``False`` comes with the reason logged. With
    ``strict=True`` (or ``EVENT_BRIDGE["STRICT"]``) types outside the catalog
    and data that does not fit are refused, and every failure raises instead.
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

    def publish(self, channel: str, event: str, payload: dict[str, Any]) -> bool:
        """An event for the connections subscribed to ``channel`` (``"order:42"``)."""
        return self._read("publish", {"channel": channel, "event": event, "payload": payload})

    def send(self, event: Event) -> bool:
        """A typed event, e.g. ``Event.of(ReservaCreada(reserva=Reserva(id=1)))``.

        In ``"outbox"`` delivery it writes one row in the current transaction;
        a database error there is raised, since that transaction cannot go on.
        In ``"direct"`` delivery, inside a transaction it returns ``True`` at once
        and sends on commit; a failure then is logged, never raised, since the
        data is committed and no caller is left to handle it.
        """
        if record(event, self._using):
            return True  # a test is capturing: nothing leaves
        config = producer_settings()
        if config.delivery == OUTBOX:
            return self._store(
                event, send_on_commit=config.send_on_commit and bool(config.broker_url)
            )
        connection = connections[self._using]
        if connection.in_atomic_block:
            # Leaves only if the transaction commits; a rollback sends nothing.
            transaction.on_commit(
                lambda: self._publish(event, after_commit=True), using=self._using
            )
            return True
        return self._publish(event)

    # From async code (an async view, ASGI): the same, run where Django's ORM may run.

    async def aemit_event(self, event_type: str, data: dict[str, Any]) -> bool:
        """:meth:`emit_event` for async code: ``await notifier.aemit_event(...)``."""
        return await sync_to_async(self.emit_event)(event_type, data)

    async def anotify_role(self, role: str, event: str, payload: dict[str, Any]) -> bool:
        """:meth:`notify_role` for async code."""
        return await sync_to_async(self.notify_role)(role, event, payload)

    async def anotify_user(self, user_id: str, event: str, payload: dict[str, Any]) -> bool:
        """:meth:`notify_user` for async code."""
        return await sync_to_async(self.notify_user)(user_id, event, payload)

    async def aupdate_dashboard(self, data: dict[str, Any]) -> bool:
        """:meth:`update_dashboard` for async code."""
        return await sync_to_async(self.update_dashboard)(data)

    async def apublish(self, channel: str, event: str, payload: dict[str, Any]) -> bool:
        """:meth:`publish` for async code."""
        return await sync_to_async(self.publish)(channel, event, payload)

    async def asend(self, event: Event) -> bool:
        """:meth:`send` for async code.

        Async code holds no transaction, so the event is stored (or published)
        at once, as sync code outside a transaction does. To send with a
        transaction, call the sync methods inside the function that you run
        with ``sync_to_async`` in its ``transaction.atomic()``.
        """
        return await sync_to_async(self.send)(event)

    @staticmethod
    def get_timestamp() -> str:
        """Now, as the seed wrote timestamps."""
        return datetime.now(UTC).isoformat().replace("+00:00", "Z")

    @property
    def strict(self) -> bool:
        """Whether this notifier refuses untyped events and raises when it cannot send."""
        return producer_settings().strict if self._strict is None else self._strict

    def failed(self, reason: str, exc: Exception, *, after_commit: bool = False) -> bool:
        """Log why an event was not sent and return ``False``; in strict mode, raise ``exc``."""
        if self.strict and not after_commit:
            raise exc
        log.warning("event-bridge: %s", reason)
        return False

    def _read(self, endpoint: str, body: dict[str, Any]) -> bool:
        try:
            reader = producer_reader(strict=self.strict)
            event = reader.body(endpoint, json.dumps(body, cls=DjangoJSONEncoder))
        except CatalogError as exc:
            return self.failed(f"EVENT_BRIDGE['CATALOG'] cannot be loaded, not sent: {exc}", exc)
        except (SchemaError, TypeError) as exc:
            return self.failed(f"event not valid, not sent: {exc}", exc)
        if not event.typed and event.type in reader.catalog:
            _misfit(event.type)
        return self.send(event)

    def _store(self, event: Event, *, send_on_commit: bool) -> bool:
        # Not at the top: apps.py files import this module before models may load.
        from producer.models import OutboxEvent  # noqa: PLC0415
        from producer.sender import sender  # noqa: PLC0415

        try:
            row = OutboxEvent.objects.using(self._using).create(
                event_id=event.id, body=event.to_json().decode()
            )
        except DatabaseError as exc:
            if connections[self._using].in_atomic_block:
                raise  # the caller's transaction is broken: its caller must know
            return self.failed(f"event {event.id} not stored in the outbox: {exc}", exc)
        if send_on_commit:
            # At once outside a transaction; after the commit inside one, never on rollback.
            transaction.on_commit(partial(sender.submit, self._using, row.id), using=self._using)
        _watch.look(self._using)
        return True

    def _publish(self, event: Event, *, after_commit: bool = False) -> bool:
        try:
            publisher().publish(event)
        except PublishError as exc:
            # Direct delivery has nothing that tries again: say so, the outbox would keep it.
            reason = f'{exc}; lost: direct delivery does not retry ("DELIVERY": "outbox" would)'
            return self.failed(reason, exc, after_commit=after_commit)
        return True


#: Catalog types whose misfit was logged: one line each is enough to act on.
_misfits_logged: set[str] = set()


def _misfit(event_type: str) -> None:
    if event_type not in _misfits_logged:
        _misfits_logged.add(event_type)
        log.warning(
            "event-bridge: %s does not fit its model in the catalog: sent untyped, as given "
            "(logged once per type; set EVENT_BRIDGE['STRICT'] = True to see why)",
            event_type,
        )
