"""The seed's ``crear_reserva`` endpoint, the token view, and the notifier with RabbitMQ away."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import pytest
from django.test import Client, override_settings
from django.urls import reverse
from rest_framework.test import APIClient

from api_rest.models import Reserva
from bridge.auth import Authenticator
from bridge.exceptions import Unauthorized
from messaging.publisher import PublishError
from producer import WebSocketNotifier, issue_token
from schemas import SchemaError
from tests.django import factories
from tests.support.bridges import SECRET, token
from tests.support.django_live import LiveBridge

#: EVENT_BRIDGE["PUBLISH_TIMEOUT"]'s default, and the margin a test allows over it.
PUBLISH_TIMEOUT = 2.0
BOUND = 2.5

RESERVA = {"fecha": "2024-11-15", "hora": "14:30", "total_estimado": "50000"}


def seed_reserva(reserva_id: int, cliente_id: int) -> dict[str, Any]:
    """What the seed's view sends for :data:`RESERVA`."""
    return {
        "reserva": {
            "id": reserva_id,
            "clienteId": cliente_id,
            "estado": "pendiente",
            "fecha": "2024-11-15",
            "hora": "14:30:00",
            "totalEstimado": 50000.0,
        }
    }


def logged_in(user: Any) -> APIClient:
    api = APIClient()
    api.force_login(user)
    return api


# crear_reserva


@pytest.mark.django_db(transaction=True)
def test_crear_reserva_sends_the_seeds_two_events(live: LiveBridge) -> None:
    ana = factories.cliente("ana")
    with (
        live.browser(token(None, "p1", ("proveedor",))) as proveedor,
        live.browser(token(None, "c1", ("cliente",))) as cliente,
    ):
        reply = logged_in(ana.user).post(reverse("crear_reserva"), RESERVA, format="json")
        assert reply.status_code == 200, reply.content
        reserva_id = reply.json()["reserva_id"]
        assert reply.json() == {"success": True, "reserva_id": reserva_id}

        reserva = seed_reserva(reserva_id, ana.id)
        everyone = {"kind": "all"}
        got = [proveedor.receive() for _ in range(3)]
        assert [(e["type"], e["data"], e["audience"]) for e in got] == [
            # Reserva's declared signal (the seed's signals.py), then the view itself:
            # the seed sends reserva:creada twice for a booking made through its view.
            ("reserva:creada", reserva, everyone),
            ("reserva:creada", reserva, everyone),
            (
                "nueva_reserva",
                {"reservaId": reserva_id, "clienteNombre": "ana"},
                {"kind": "role", "role": "proveedor"},
            ),
        ]
        rest_of_proveedor, rest_of_cliente = live.settle(proveedor, cliente)
        assert rest_of_proveedor == []
        assert [(e["type"], e["data"]) for e in rest_of_cliente] == [
            ("reserva:creada", reserva),
            ("reserva:creada", reserva),
        ]  # not nueva_reserva: that is for providers


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("who", "body", "status"),
    [
        ("cliente", {**RESERVA, "fecha": "mañana"}, 400),
        ("cliente", {"fecha": "2024-11-15"}, 400),
        ("proveedor", RESERVA, 403),
        (None, RESERVA, 403),  # SessionAuthentication comes first: 403, not 401
    ],
)
def test_crear_reserva_refuses_what_it_cannot_book_and_sends_nothing(
    live: LiveBridge, who: str | None, body: dict[str, str], status: int
) -> None:
    someone = {"cliente": factories.cliente, "proveedor": factories.proveedor}
    api = logged_in(someone[who]().user) if who else APIClient()
    with live.browser(token(None, "p1", ("proveedor",))) as browser:
        reply = api.post(reverse("crear_reserva"), body, format="json")
        assert reply.status_code == status, reply.content
        assert live.settle(browser) == [[]]
    assert not Reserva.objects.exists()


# The token view


@pytest.mark.django_db
def test_a_token_from_the_token_view_opens_ws_with_the_users_groups_as_roles(
    live: LiveBridge, client: Client, settings: Any, event_bridge: dict[str, Any]
) -> None:
    settings.EVENT_BRIDGE = {**event_bridge, "BRIDGE_URL": live.ws_url}
    marta = factories.user("marta", "proveedor", "cliente")
    client.force_login(marta)
    reply = client.get(reverse("producer:token"))
    assert reply.status_code == 200
    body = reply.json()
    assert body["url"] == live.ws_url
    claims = jwt.decode(body["token"], SECRET, algorithms=["HS256"])
    assert 290 < claims["exp"] - datetime.now(UTC).timestamp() <= 300  # TOKEN_TTL's default
    with live.browser(body["token"]) as browser:
        assert browser.welcome == {
            "type": "bridge:welcome",
            "user": str(marta.pk),
            "roles": ["cliente", "proveedor"],
            "instance": live.bridge.settings.instance,
        }


@pytest.mark.django_db
def test_the_token_view_sets_the_issuer_and_audience_the_bridge_checks(
    client: Client, settings: Any, event_bridge: dict[str, Any]
) -> None:
    settings.EVENT_BRIDGE = {**event_bridge, "JWT_ISSUER": "shop", "JWT_AUDIENCE": "bridge"}
    client.force_login(factories.user("marta", "cliente"))
    issued = client.get(reverse("producer:token")).json()["token"]
    # The bridge's own check, as `serve --jwt-issuer shop --jwt-audience bridge` makes it.
    principal = Authenticator(SECRET, issuer="shop", audience="bridge").verify(issued)
    assert principal.roles == {"cliente"}
    with pytest.raises(Unauthorized, match="Invalid issuer"):
        Authenticator(SECRET, issuer="another", audience="bridge").verify(issued)


@pytest.mark.django_db
def test_the_token_view_answers_a_fetch_without_login_with_401_json(client: Client) -> None:
    # Issue 15: it redirected to the login page, which a fetch() reads as HTML.
    reply = client.get(reverse("producer:token"))
    assert reply.status_code == 401
    assert reply.json() == {"error": "log in first: tokens are for logged-in users"}


@pytest.mark.django_db
def test_issue_token_makes_user_and_monitor_tokens_the_bridge_accepts(
    settings: Any, event_bridge: dict[str, Any]
) -> None:
    settings.EVENT_BRIDGE = event_bridge
    marta = factories.user("marta", "proveedor")
    bridge = Authenticator(SECRET)
    user = bridge.verify(issue_token(marta, ttl=60))
    staff = bridge.verify(issue_token(marta, monitor=True))
    assert (user.user, user.roles, user.monitor) == (str(marta.pk), {"proveedor"}, False)
    assert staff.monitor is True
    assert user.expires is not None
    assert 50 < user.expires - time.time() <= 60


@pytest.mark.django_db
def test_the_token_view_answers_503_without_a_secret(
    client: Client, settings: Any, event_bridge: dict[str, Any]
) -> None:
    settings.EVENT_BRIDGE = {k: v for k, v in event_bridge.items() if k != "JWT_SECRET"}
    client.force_login(factories.user("marta"))
    reply = client.get(reverse("producer:token"))
    assert reply.status_code == 503
    assert "JWT_SECRET" in reply.json()["error"]


# RabbitMQ unreachable, in direct delivery (the outbox's are in test_django_outbox.py)


@pytest.fixture(params=["refused", "silent"])
def unreachable(request: pytest.FixtureRequest) -> Iterator[str]:
    """A broker URL nobody answers: a closed port, or a port that accepts and never speaks."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        if request.param == "silent":
            sock.listen()
            yield f"amqp://guest:guest@127.0.0.1:{port}//"
            return
    yield f"amqp://guest:guest@127.0.0.1:{port}//"


CALLS: dict[str, Callable[[WebSocketNotifier], bool]] = {
    "emit_event": lambda n: n.emit_event("reserva:creada", {"reserva": {"id": 1}}),
    "notify_role": lambda n: n.notify_role(
        "proveedor", "nueva_reserva", {"reservaId": 1, "clienteNombre": "ana"}
    ),
    "notify_user": lambda n: n.notify_user("7", "reserva_confirmada", {"reservaId": 1}),
    "update_dashboard": lambda n: n.update_dashboard({"services": {"total": 1}}),
}


@pytest.mark.parametrize("call", CALLS)
def test_with_rabbitmq_unreachable_the_notifier_returns_false_within_the_bound(
    unreachable: str, event_bridge: dict[str, Any], call: str, caplog: pytest.LogCaptureFixture
) -> None:
    direct = {**event_bridge, "DELIVERY": "direct"}
    with override_settings(EVENT_BRIDGE={**direct, "BROKER_URL": unreachable}):
        started = time.monotonic()
        sent = CALLS[call](WebSocketNotifier())
        elapsed = time.monotonic() - started
    assert sent is False
    assert elapsed < BOUND, f"{elapsed:.2f} s"
    assert "RabbitMQ did not take event" in caplog.text
    assert caplog.records[-1].levelno == logging.WARNING


@pytest.mark.django_db(transaction=True)
def test_with_rabbitmq_unreachable_crear_reserva_still_books(
    unreachable: str, event_bridge: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    api = logged_in(factories.cliente("ana").user)
    direct = {**event_bridge, "DELIVERY": "direct"}
    with override_settings(EVENT_BRIDGE={**direct, "BROKER_URL": unreachable}):
        started = time.monotonic()
        reply = api.post(reverse("crear_reserva"), RESERVA, format="json")
        elapsed = time.monotonic() - started
    assert reply.status_code == 200
    assert Reserva.objects.filter(pk=reply.json()["reserva_id"]).exists()
    # Three events (the signal's and the view's two): the first waits out the bound,
    # the next two fail at once, so the request waits one bound, not three.
    assert caplog.text.count("RabbitMQ did not take") == 3
    assert elapsed < BOUND + 0.5, f"{elapsed:.2f} s"
    # The later two say how long ago the failure was, not the cooldown, and that the
    # event is lost, not retried (issue 15).
    later = [r.getMessage() for r in caplog.records if "s ago" in r.getMessage()]
    assert len(later) == 2
    for line in later:
        ago = float(line.split("did not take an event ")[1].split(" s ago")[0])
        assert ago < 1.0, line
        assert "lost: direct delivery does not retry" in line
        assert "retrying" not in line


def test_in_strict_mode_an_unreachable_rabbitmq_raises(
    unreachable: str, event_bridge: dict[str, Any]
) -> None:
    broken = {**event_bridge, "DELIVERY": "direct", "BROKER_URL": unreachable}
    with override_settings(EVENT_BRIDGE={**broken, "STRICT": True}):
        started = time.monotonic()
        with pytest.raises(PublishError, match="RabbitMQ did not take event"):
            WebSocketNotifier().emit_event("reserva:creada", {"reserva": {"id": 1}})
        assert time.monotonic() - started < BOUND
    with override_settings(EVENT_BRIDGE=broken), pytest.raises(PublishError):
        WebSocketNotifier(strict=True).notify_user("7", "reserva_confirmada", {"reservaId": 1})


def test_a_strict_notifier_refuses_what_the_catalog_does_not_know_before_rabbitmq() -> None:
    strict = WebSocketNotifier(strict=True)
    with pytest.raises(SchemaError, match=r"data\.reserva\.id: Input should be a valid integer"):
        strict.emit_event("reserva:creada", {"reserva": {"id": "1"}})
    with pytest.raises(SchemaError, match="unknown event type 'reserva:borrada'"):
        strict.emit_event("reserva:borrada", {})


def test_a_notifier_that_is_not_strict_refuses_only_what_cannot_be_an_event() -> None:
    notifier = WebSocketNotifier(strict=False)
    assert notifier.emit_event("bridge:welcome", {}) is False
    assert notifier.notify_user("two words", "promo", {}) is False
