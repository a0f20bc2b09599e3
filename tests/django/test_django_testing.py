"""``producer.testing``: a project's tests see the events their code sends, without RabbitMQ.

The same checks run the three ways Django projects test: pytest-django's ``db``
(a transaction per test, like ``TestCase``), ``transaction=True`` (real
commits, like ``TransactionTestCase``), and a ``django.test.TestCase`` class.
"""

from __future__ import annotations

import pytest
from django.db import transaction
from django.test import TestCase

from producer import WebSocketNotifier
from producer.models import OutboxEvent
from producer.pytest_plugin import sent_events  # noqa: F401  (the fixture, as a plugin gives it)
from producer.testing import captured_events
from schemas import Event
from tests.django import factories
from tests.django.rollback import Boom, fail_in_a_transaction


def committed_and_rolled_back() -> list[str]:
    """Save a booking (two model events), then one that rolls back, under capture."""
    with captured_events() as sent:
        cliente = factories.cliente("ana")
        factories.reserva(cliente)
        with pytest.raises(Boom):
            fail_in_a_transaction(
                lambda: factories.reserva(cliente),
                lambda: WebSocketNotifier().emit_event("pago:procesado", {"pago": {"id": 9}}),
            )
        WebSocketNotifier().notify_user("7", "reserva_confirmada", {"reservaId": 1})
    assert all(isinstance(e, Event) for e in sent)
    assert not OutboxEvent.objects.exists(), "nothing leaves while capturing"
    return [e.type for e in sent]


EXPECTED = ["cliente:nuevo", "reserva:creada", "reserva_confirmada"]


@pytest.mark.django_db
def test_in_a_transaction_per_test() -> None:
    assert committed_and_rolled_back() == EXPECTED


@pytest.mark.django_db(transaction=True)
def test_with_real_commits() -> None:
    assert committed_and_rolled_back() == EXPECTED


@pytest.mark.django_db(transaction=True)
def test_an_open_transaction_is_not_sent_yet() -> None:
    with captured_events() as sent, transaction.atomic():
        WebSocketNotifier().emit_event("pago:procesado", {"pago": {"id": 1}})
        assert sent == []  # not committed yet
    assert [e.type for e in sent] == ["pago:procesado"]


@pytest.mark.django_db
def test_the_fixture(sent_events: list[Event]) -> None:  # noqa: F811
    WebSocketNotifier().update_dashboard({"services": {"total": 1}})
    [event] = sent_events  # recorded at once: the test's own transaction never commits
    assert (event.type, event.typed, event.data.services.total) == ("dashboard:update", True, 1)


class CapturedInATestCase(TestCase):
    def test_committed_only(self) -> None:
        assert committed_and_rolled_back() == EXPECTED

    def test_an_inner_transaction_counts_when_the_block_ends(self) -> None:
        with captured_events() as sent:
            with transaction.atomic():
                WebSocketNotifier().emit_event("pago:procesado", {"pago": {"id": 1}})
            assert sent == []  # it waits for the test's transaction, which never commits
        assert [e.type for e in sent] == ["pago:procesado"]
