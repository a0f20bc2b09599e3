"""Sending from async code (an async view, ASGI): no ``SynchronousOnlyOperation`` (issue 15)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation
from django.db import connections, transaction

from producer import WebSocketNotifier
from producer.models import OutboxEvent
from producer.testing import captured_events
from tests.django import factories
from tests.django.rollback import Boom, fail_in_a_transaction

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def _close_the_threads_connection() -> AsyncIterator[None]:
    # sync_to_async runs the ORM in a thread of its own, whose connection would outlive
    # the test (and keep PostgreSQL from dropping the test database at the end).
    yield
    await sync_to_async(connections.close_all)()


async def test_the_async_methods_store_what_the_sync_ones_cannot_from_async_code() -> None:
    notifier = WebSocketNotifier()
    with pytest.raises(SynchronousOnlyOperation):
        notifier.emit_event("pago:procesado", {"pago": {"id": 1}})
    sent = [
        await notifier.aemit_event("pago:procesado", {"pago": {"id": 1}}),
        await notifier.anotify_role("proveedor", "nueva_reserva", {"reservaId": 1, "clienteNombre": "a"}),
        await notifier.anotify_user("7", "reserva_confirmada", {"reservaId": 1}),
        await notifier.aupdate_dashboard({"services": {"total": 1}}),
    ]  # fmt: skip
    stored = await sync_to_async(OutboxEvent.objects.count)()
    assert (sent, stored) == ([True] * 4, 4)


async def test_a_transaction_run_with_sync_to_async_sends_on_commit_only() -> None:
    @sync_to_async
    def book(fail: bool) -> None:
        cliente = factories.cliente("ana" if not fail else "eva")
        if fail:
            fail_in_a_transaction(lambda: factories.reserva(cliente))
        with transaction.atomic():
            factories.reserva(cliente)

    with captured_events() as sent:
        await book(fail=False)
        with pytest.raises(Boom):
            await book(fail=True)
    assert [e.type for e in sent] == ["cliente:nuevo", "reserva:creada", "cliente:nuevo"]
