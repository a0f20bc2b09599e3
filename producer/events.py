"""Declarative model events: one call per model instead of a hand-written signal receiver.

::

    from producer import model_events

    model_events(
        Reserva,
        created="reserva:creada",
        updated="reserva:actualizada",
        payload=lambda r: {"reserva": {"id": r.id, "clienteId": r.cliente_id,
                                       "estado": r.estado, "fecha": str(r.fecha),
                                       "hora": str(r.hora),
                                       "totalEstimado": float(r.total_estimado)}},
    )

Call it from your ``AppConfig.ready()``. On each save the payload is built,
validated against the event type's model in the project's catalog, and
enqueued with the save's transaction (by default written to the outbox in it),
exactly as :class:`~producer.notifier.WebSocketNotifier` sends it. While
``EVENT_BRIDGE["STRICT"]`` holds (by default, when ``DEBUG`` does) a type
outside the catalog, or a payload that does not fit, raises in the save and is
reported by ``manage.py check``; otherwise it is sent untyped.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model
from django.db.models.signals import post_save

from producer.conf import producer_settings
from producer.notifier import WebSocketNotifier
from schemas import Payload

__all__ = ["declared_types", "model_events"]

PayloadBuilder = Callable[[Any], dict[str, Any] | Payload]

# The event types each model declared, by dispatch uid, for manage.py check.
_declared: dict[str, tuple[str, tuple[str, ...]]] = {}


def declared_types() -> list[tuple[str, str]]:
    """``(model label, event type)`` for every ``model_events`` declaration."""
    return [(label, t) for label, types in _declared.values() for t in types]


def model_events(
    model: type[Model],
    *,
    payload: PayloadBuilder,
    created: str | None = None,
    updated: str | None = None,
    notifier: WebSocketNotifier | None = None,
) -> None:
    """Send ``created`` when a ``model`` instance is created, ``updated`` when saved again.

    ``payload`` turns the instance into the event's data: a dict as the seed
    writes it (camelCase keys), or a payload model from ``schemas``. Events go
    to everyone. Declaring the same model twice replaces the first declaration.
    """
    if created is None and updated is None:
        raise ValueError(f"model_events({model.__name__}): give created=, updated= or both")

    def receiver(sender: type[Model], instance: Model, created: bool, using: str, **_: Any) -> None:
        event_type = created_type if created else updated
        if event_type is None:
            return
        # The save's own database decides when its transaction commits.
        sender_of = notifier or WebSocketNotifier(
            strict=producer_settings().strict_models, using=using
        )
        try:
            data = payload(instance)
        except Exception as exc:
            sender_of.failed(f"payload for {event_type} could not be built: {exc}", exc)
            return
        if isinstance(data, Payload):
            # Checked against the declared type, whatever class the builder used.
            data = data.model_dump(mode="json", exclude_unset=True)
        sender_of.emit_event(event_type, data)

    created_type = created
    uid = f"event-bridge:{model._meta.label}"
    _declared[uid] = (model._meta.label, tuple(t for t in (created, updated) if t is not None))
    post_save.connect(receiver, sender=model, weak=False, dispatch_uid=uid)
