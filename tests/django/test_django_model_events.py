"""``model_events`` as real models need it: audiences, deletes, watched fields, several
declarations per model (issue 15). Events are read with ``captured_events``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.db.models.signals import post_delete, post_init, post_save

from api_rest.models import Reserva
from producer import events, model_events
from producer.testing import captured_events
from schemas.audience import Role, User
from tests.django import factories

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def declarations() -> Iterator[None]:
    """The example's own declarations, restored after each test adds its own."""
    signals = (post_save, post_delete, post_init)
    saved = [list(s.receivers) for s in signals]
    declared = dict(events._declared)
    yield
    for signal, receivers in zip(signals, saved, strict=True):
        signal.receivers = receivers
        signal.sender_receivers_cache.clear()
    events._declared.clear()
    events._declared.update(declared)


def data(r: Reserva) -> dict[str, Any]:
    return {"reservaId": r.id}


def sent_for(action: Any) -> list[tuple[str, dict[str, Any]]]:
    with captured_events() as sent:
        action()
    return [(e.type, e.audience.model_dump()) for e in sent]


def test_an_audience_per_instance_and_a_second_declaration_beside_the_first() -> None:
    cliente = factories.cliente("ana")
    owner = lambda r: User(user=str(r.cliente.user_id))  # noqa: E731
    model_events(Reserva, created="reserva_confirmada", payload=data, audience=owner)
    model_events(
        Reserva, created="nueva_reserva", audience=lambda r: Role(role="proveedor"),
        payload=lambda r: {"reservaId": r.id, "clienteNombre": "ana"},
    )  # fmt: skip
    sent = sent_for(lambda: factories.reserva(cliente))
    assert sent == [
        ("reserva:creada", {"kind": "all"}),  # the example's own declaration stays
        ("reserva_confirmada", {"kind": "user", "user": str(cliente.user_id)}),
        ("nueva_reserva", {"kind": "role", "role": "proveedor"}),
    ]


def test_deleted_is_sent_with_the_instance_as_it_was() -> None:
    reserva = factories.reserva(factories.cliente("ana"))
    number = reserva.id
    model_events(Reserva, deleted="reserva:borrada", payload=data)
    with captured_events() as sent:
        reserva.delete()
    assert [(e.type, e.data) for e in sent] == [("reserva:borrada", {"reservaId": number})]


def test_updated_only_when_a_watched_field_changed() -> None:
    model_events(Reserva, updated="reserva:cancelada", payload=data, fields=["estado"])
    reserva = factories.reserva(factories.cliente("ana"))

    def touch() -> None:
        reserva.total_estimado = 1
        reserva.save()

    def cancel() -> None:
        reserva.estado = Reserva.Estado.CANCELADA
        reserva.save()

    def reload_and_save() -> None:
        Reserva.objects.get(pk=reserva.pk).save()

    untouched = [t for t, _ in sent_for(touch) if t == "reserva:cancelada"]
    cancelled = [t for t, _ in sent_for(cancel) if t == "reserva:cancelada"]
    again = [t for t, _ in sent_for(reload_and_save) if t == "reserva:cancelada"]
    assert (untouched, cancelled, again) == ([], ["reserva:cancelada"], [])


def test_a_field_the_model_does_not_have_is_refused_at_declaration() -> None:
    with pytest.raises(ValueError, match=r"no such fields \['estatus'\]"):
        model_events(Reserva, updated="reserva:actualizada", payload=data, fields=["estatus"])
