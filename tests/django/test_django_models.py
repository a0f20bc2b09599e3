"""Saving the example's models sends the seed's events to browsers, and only once committed.

Each test opens a browser on a bridge consuming from RabbitMQ, saves models as
Django does, and reads what the browser receives. ``live.settle`` proves that
nothing else was sent. These tests also run on PostgreSQL (test_django_postgres.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, time
from decimal import Decimal
from typing import Any

import pytest
from django.db import transaction

from api_rest.models import Cliente
from tests.django import factories
from tests.django.rollback import Boom, fail_in_a_transaction
from tests.support.bridges import token
from tests.support.django_live import Browser, LiveBridge

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def browser(live: LiveBridge) -> Iterator[Browser]:
    with live.browser(token(None, "watcher", ("admin",))) as opened:
        yield opened


def only_event(live: LiveBridge, browser: Browser) -> dict[str, Any]:
    """The one event the browser received since it last settled; fails if there were more."""
    event = browser.receive()
    assert live.settle(browser) == [[]], "more than one event was sent"
    return event


def nothing_sent(live: LiveBridge, browser: Browser) -> bool:
    return live.settle(browser) == [[]]


def test_a_new_reserva_reaches_a_browser_as_the_seeds_signal_built_it(
    live: LiveBridge, browser: Browser
) -> None:
    cliente = factories.cliente()
    live.settle(browser)
    reserva = factories.reserva(
        cliente, fecha=date(2024, 11, 15), hora=time(14, 30), estado="confirmada"
    )
    event = only_event(live, browser)
    assert event["type"] == "reserva:creada"
    assert event["audience"] == {"kind": "all"}
    assert event["id"]
    assert event["timestamp"].endswith("Z")
    assert event["data"] == {
        "reserva": {
            "id": reserva.id,
            "clienteId": cliente.id,
            "estado": "confirmada",
            "fecha": "2024-11-15",  # str(reserva.fecha)
            "hora": "14:30:00",  # str(reserva.hora)
            "totalEstimado": 50000.0,  # float(reserva.total_estimado)
        }
    }
    assert isinstance(event["data"]["reserva"]["totalEstimado"], float)


def test_a_saved_reserva_is_sent_again_as_reserva_actualizada(
    live: LiveBridge, browser: Browser
) -> None:
    cliente = factories.cliente()
    reserva = factories.reserva(cliente, total_estimado=Decimal("49999.50"))
    live.settle(browser)
    reserva.estado = "cancelada"
    reserva.save()
    event = only_event(live, browser)
    assert event["type"] == "reserva:actualizada"
    assert event["data"] == {
        "reserva": {
            "id": reserva.id,
            "clienteId": cliente.id,
            "estado": "cancelada",
            "fecha": "2024-11-15",
            "hora": "14:30:00",
            "totalEstimado": 49999.5,
        }
    }


def test_a_new_servicio_is_sent_and_saving_it_again_is_not(
    live: LiveBridge, browser: Browser
) -> None:
    proveedor = factories.proveedor()
    live.settle(browser)
    servicio = factories.servicio(proveedor, nombre_servicio="Limpieza", precio=Decimal("25000"))
    event = only_event(live, browser)
    assert event["type"] == "servicio:creado"
    assert event["data"] == {
        "servicio": {
            "id": servicio.id,
            "nombre": "Limpieza",
            "precio": 25000.0,
            "proveedorId": proveedor.id,
            "categoriaId": servicio.categoria.id,
        }
    }
    servicio.precio = Decimal("26000")
    servicio.save()
    assert nothing_sent(live, browser)


def test_a_new_calificacion_is_sent_and_saving_it_again_is_not(
    live: LiveBridge, browser: Browser
) -> None:
    servicio = factories.servicio(factories.proveedor())
    live.settle(browser)
    calificacion = factories.calificacion(servicio, puntuacion=5)
    event = only_event(live, browser)
    assert event["type"] == "calificacion:creada"
    assert event["data"] == {
        "calificacion": {"id": calificacion.id, "puntuacion": 5, "servicioId": servicio.id}
    }
    calificacion.puntuacion = 4
    calificacion.save()
    assert nothing_sent(live, browser)


def test_a_new_cliente_is_sent_and_saving_it_again_is_not(
    live: LiveBridge, browser: Browser
) -> None:
    user = factories.user("lucia", "cliente")
    live.settle(browser)
    cliente = Cliente.objects.create(user=user, telefono="+34 600000000")
    event = only_event(live, browser)
    assert event["type"] == "cliente:nuevo"
    assert event["data"] == {
        "cliente": {"id": cliente.id, "nombre": "lucia", "email": "lucia@example.com"}
    }
    cliente.telefono = "+34 611111111"
    cliente.save()
    assert nothing_sent(live, browser)


def test_events_leave_only_once_the_transaction_commits(live: LiveBridge, browser: Browser) -> None:
    cliente = factories.cliente()
    live.settle(browser)
    with transaction.atomic():
        reserva = factories.reserva(cliente)
        assert nothing_sent(live, browser)  # saved, not yet committed: not sent
    event = only_event(live, browser)
    assert (event["type"], event["data"]["reserva"]["id"]) == ("reserva:creada", reserva.id)


def test_a_rolled_back_transaction_sends_nothing(live: LiveBridge, browser: Browser) -> None:
    cliente = factories.cliente()
    live.settle(browser)
    with pytest.raises(Boom):
        fail_in_a_transaction(
            lambda: factories.reserva(cliente, estado="rolled-back"),
            lambda: factories.servicio(factories.proveedor()),
        )
    kept = factories.reserva(cliente, estado="kept")
    event = only_event(live, browser)
    assert event["type"] == "reserva:creada"
    assert event["data"]["reserva"]["id"] == kept.id
    assert event["data"]["reserva"]["estado"] == "kept"


def test_a_rolled_back_savepoint_sends_nothing_and_its_transaction_still_does(
    live: LiveBridge, browser: Browser
) -> None:
    cliente = factories.cliente()
    live.settle(browser)
    with transaction.atomic():
        with pytest.raises(Boom):
            fail_in_a_transaction(lambda: factories.reserva(cliente, estado="rolled-back"))
        kept = factories.reserva(cliente, estado="kept")
    event = only_event(live, browser)
    assert event["data"]["reserva"] == {**event["data"]["reserva"], "id": kept.id, "estado": "kept"}
