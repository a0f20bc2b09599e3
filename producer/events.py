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

Each call is one declaration; a model may have several (one per audience,
say). ``audience=`` sends to a role or one user instead of everyone,
``channel=`` to the subscribers of the instance's own channel
(``channel=lambda order: f"order:{order.pk}"``),
``deleted=`` on delete, ``fields=`` sends ``updated`` only when one of those
fields changed. ``QuerySet.update()``, ``bulk_create()``, ``bulk_update()``
and raw SQL send no signals, so they send no events: send those with
``WebSocketNotifier().send(...)`` or its seed methods after the bulk call.

Call it from your ``AppConfig.ready()``. On each save the payload is built,
validated against the event type's model in the project's catalog, and
enqueued with the save's transaction (by default written to the outbox in it),
exactly as :class:`~producer.notifier.WebSocketNotifier` sends it. While
``EVENT_BRIDGE["STRICT"]`` holds (by default, when ``DEBUG`` does) a type
outside the catalog, or a payload that does not fit, raises in the save and is
reported by ``manage.py check``; otherwise it is sent untyped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.db.models import Model
from django.db.models.signals import post_delete, post_init, post_save

from producer.conf import producer_settings
from producer.notifier import WebSocketNotifier
from schemas import Payload
from schemas.audience import Channel, Everyone, Role, User

__all__ = ["declared_types", "model_events"]

PayloadBuilder = Callable[[Any], dict[str, Any] | Payload]
AudienceOf = Callable[[Any], Everyone | Role | User]

# The event types each declaration sends, by dispatch uid, for manage.py check.
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
    deleted: str | None = None,
    audience: AudienceOf | None = None,
    channel: Callable[[Any], str] | None = None,
    fields: Iterable[str] | None = None,
    notifier: WebSocketNotifier | None = None,
) -> None:
    """Send ``created`` when a ``model`` instance is created, ``updated`` when saved again,
    ``deleted`` when deleted.

    ``payload`` turns the instance into the event's data: a dict as the seed
    writes it (camelCase keys), or a payload model from ``schemas``.
    ``audience`` gives, per instance, who gets it: ``Everyone()`` (the
    default), ``Role(role=…)`` or ``User(user=…)``, e.g. the order's owner.
    ``channel`` gives instead the channel its subscribers follow, e.g.
    ``lambda order: f"order:{order.pk}"``: a page showing the order subscribes to it.
    With ``fields``, ``updated`` is sent only when one of them changed since
    the instance was loaded or last saved. Declaring the same model with the
    same event types again replaces that declaration (``ready()`` may run twice).
    """
    if created is None and updated is None and deleted is None:
        raise ValueError(
            f"model_events({model.__name__}): give created=, updated=, deleted= or several"
        )
    if audience is not None and channel is not None:
        raise ValueError(
            f"model_events({model.__name__}): give audience= or channel=, not both "
            "(declare the model twice to send to both)"
        )
    # Compared by attname, as the instance holds them ("cliente" is "cliente_id").
    attnames = {f.name: f.attname for f in model._meta.concrete_fields}
    attnames |= {a: a for a in attnames.values()}
    unknown = sorted(set(fields or ()) - set(attnames))
    if unknown:
        raise ValueError(f"model_events({model.__name__}): no such fields {unknown}")
    watched = tuple(attnames[f] for f in fields or ())
    types = (created, updated, deleted)
    uid = f"event-bridge:{model._meta.label}:" + ":".join(t or "" for t in types)
    _declared[uid] = (model._meta.label, tuple(t for t in types if t is not None))

    def send(instance: Model, event_type: str, using: str) -> None:
        # The save's own database decides when its transaction commits.
        sender_of = notifier or WebSocketNotifier(
            strict=producer_settings().strict_models, using=using
        )
        try:
            data = payload(instance)
            to: Everyone | Role | User | Channel = (
                audience(instance)
                if audience is not None
                else Channel(channel=channel(instance))
                if channel is not None
                else Everyone()
            )
        except Exception as exc:
            sender_of.failed(f"payload for {event_type} could not be built: {exc}", exc)
            return
        if isinstance(data, Payload):
            # Checked against the declared type, whatever class the builder used.
            data = data.model_dump(mode="json", exclude_unset=True)
        match to:
            case Role(role=role):
                sender_of.notify_role(role, event_type, data)
            case User(user=user):
                sender_of.notify_user(user, event_type, data)
            case Channel(channel=name):
                sender_of.publish(name, event_type, data)
            case _:
                sender_of.emit_event(event_type, data)

    def saved(sender: type[Model], instance: Model, created: bool, using: str, **_: Any) -> None:
        event_type = types[0] if created else types[1]
        changed = created or not watched or _changed(instance, uid, watched)
        _remember(instance, uid, watched)
        if event_type is not None and changed:
            send(instance, event_type, using)

    post_save.connect(saved, sender=model, weak=False, dispatch_uid=uid)
    if watched:

        def loaded(sender: type[Model], instance: Model, **_: Any) -> None:
            _remember(instance, uid, watched)

        post_init.connect(loaded, sender=model, weak=False, dispatch_uid=uid)
    if deleted is not None:

        def removed(sender: type[Model], instance: Model, using: str, **_: Any) -> None:
            send(instance, deleted, using)

        post_delete.connect(removed, sender=model, weak=False, dispatch_uid=uid)


def _remember(instance: Model, uid: str, watched: tuple[str, ...]) -> None:
    if watched:
        seen = instance.__dict__.setdefault("_event_bridge_seen", {})
        seen[uid] = {f: instance.__dict__.get(f) for f in watched}


def _changed(instance: Model, uid: str, watched: tuple[str, ...]) -> bool:
    before = instance.__dict__.get("_event_bridge_seen", {}).get(uid)
    if before is None:
        return True  # never seen loaded: assume it changed
    return any(instance.__dict__.get(f) != before[f] for f in watched)
