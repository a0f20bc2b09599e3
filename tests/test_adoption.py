"""A new project adopts the package without editing it: its own event types, end to end.

``tests/data/shop`` is copied to a folder outside the repository and run there as
docs/django.md says: its own ``shop/events.py``, ``model_events``, ``migrate`` on a
fresh PostgreSQL database, the outbox relay, and ``event-bridge serve --catalog
shop.events`` started in the project's folder. Browsers get its events typed; a
rolled-back transaction sends nothing; the seed's notifier and endpoints keep
working with names no catalog knows.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from websockets.asyncio.client import ClientConnection

from tests.support.bridges import EVENT_BRIDGE, SECRET, client, operator, recv_json, token
from tests.support.httpclient import request
from tests.support.output import Output

TEMPLATE = Path(__file__).resolve().parent / "data" / "shop"
POSTGRES = os.environ.get(
    "EVENT_BRIDGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
#: Seconds any one wait may take.
WAIT = 20.0


@dataclass
class Project:
    folder: Path
    env: dict[str, str]
    port: int
    bridge: Output

    def manage(self, *args: str) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=self.folder, env=self.env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout


def _database() -> Iterator[str]:
    """A PostgreSQL database of this test's own, dropped afterwards; its URL."""
    name = f"shop_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES}: {exc}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield urlunsplit(urlsplit(POSTGRES)._replace(path=f"/{name}"))
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _start(args: list[str], folder: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        args, cwd=folder, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _stop(proc: subprocess.Popen[str], output: Output) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    output.close()


@pytest.fixture(scope="module")
def project(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Project]:
    """The shop, migrated and checked, with its bridge and its relay running."""
    folder = tmp_path_factory.mktemp("adoption") / "shop-project"
    shutil.copytree(TEMPLATE, folder)
    instance = f"adoption-{uuid.uuid4().hex[:8]}"
    for database_url in _database():
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTHONPATH"))},
            "DATABASE_URL": database_url,
            "BROKER_URL": amqp_url,
            "JWT_SECRET": SECRET,
        }
        project = Project(folder, env, 0, Output(iter(())))
        project.manage("migrate", "--verbosity", "0")
        assert "no issues" in project.manage("check")
        bridge = _start(
            [EVENT_BRIDGE, "serve", "--port", "0", "--catalog", "shop.events",
             "--broker", amqp_url, "--instance", instance, "--jwt-secret", SECRET,
             "--state-dir", str(folder / "state")],
            folder, env,
        )  # fmt: skip
        assert bridge.stdout is not None
        output = Output(bridge.stdout)
        startup = output.wait_for("event-bridge: instance", WAIT)
        assert "catalog shop.events (2 types, others untyped)" in startup
        project.port = int(startup.split("ws://127.0.0.1:")[1].split("/")[0])
        project.bridge = output
        # Its queue exists once it consumes: what the relay publishes then reaches it.
        output.wait_for("connected to", WAIT)
        relay = _start([sys.executable, "manage.py", "event_bridge_relay"], folder, env)
        assert relay.stdout is not None
        relay_output = Output(relay.stdout)
        try:
            yield project
        finally:
            _stop(relay, relay_output)
            _stop(bridge, output)


async def ready(ws: ClientConnection) -> None:
    """No resume: live events flow at once."""
    await ws.send('{"op": "ping"}')
    assert (await recv_json(ws, WAIT))["type"] == "bridge:pong"


async def events(ws: ClientConnection, count: int) -> list[dict[str, Any]]:
    return [await recv_json(ws, WAIT) for _ in range(count)]


SAVES = """
from decimal import Decimal
from django.db import transaction
from shop.models import Order

with transaction.atomic():
    order = Order.objects.create(customer_id=7, total=Decimal("12.50"))
    order.shipped = True
    order.save()
try:
    with transaction.atomic():
        Order.objects.create(customer_id=8, total=Decimal("99.00"))
        raise RuntimeError("the customer cancelled")
except RuntimeError:
    pass
Order.objects.create(customer_id=9, total=Decimal("1.00"))  # after the rollback: the sentinel
"""


async def test_the_projects_own_events_arrive_typed_and_a_rollback_sends_nothing(
    project: Project,
) -> None:
    bridge = type("B", (), {"port": project.port})()
    async with (
        client(bridge, token=token(None, "7", ("customer",))) as customer,
        client(bridge, token=token(None, "staff-1", ("staff",))) as staff,
    ):
        await ready(customer)
        await ready(staff)
        project.manage("shell", "-v", "0", "-c", SAVES)
        for ws in (customer, staff):
            received = await events(ws, 3)
            assert [(e["type"], e["data"]) for e in received] == [
                ("order:created", {"order": {"id": 1, "total": 12.5, "customerId": 7}}),
                ("order:shipped", {"order": {"id": 1, "total": 12.5, "customerId": 7}}),
                # The rolled-back order 2 sent nothing: the next event is order 3.
                ("order:created", {"order": {"id": 3, "total": 1.0, "customerId": 9}}),
            ]
    stats = (await request(project.port, "GET", "/api/dashboard/stats", headers=operator())).json()
    assert stats["catalog"] == ["order:created", "order:shipped"]
    assert stats["events"]["byType"] == {"order:created": 2, "order:shipped": 1}
    assert stats["events"]["untypedByType"] == {}


NOTIFIER = """
from producer import WebSocketNotifier

notifier = WebSocketNotifier()
print(notifier.notify_role("cliente", "promo", {"codigo": "X1"}))
print(notifier.notify_user("u1", "solo_u1", {"mensaje": "hola"}))
print(notifier.emit_event("algo:nuevo", {"lo": ["que", 1]}))
print(notifier.emit_event("order:created", {"order": {"id": "no es un número"}}))
"""


async def test_the_seeds_notifier_sends_names_no_catalog_knows(project: Project) -> None:
    bridge = type("B", (), {"port": project.port})()
    async with (
        client(bridge, token=token(None, "u1", ("cliente",))) as u1,
        client(bridge, token=token(None, "u2", ())) as u2,
    ):
        await ready(u1)
        await ready(u2)
        printed = project.manage("shell", "-v", "0", "-c", NOTIFIER)
        assert printed.split() == ["True"] * 4
        assert [(e["type"], e["data"]) for e in await events(u1, 4)] == [
            ("promo", {"codigo": "X1"}),
            ("solo_u1", {"mensaje": "hola"}),
            ("algo:nuevo", {"lo": ["que", 1]}),
            ("order:created", {"order": {"id": "no es un número"}}),
        ]
        # u2 has neither the role nor the id: only the events for everyone.
        assert [e["type"] for e in await events(u2, 2)] == ["algo:nuevo", "order:created"]
    metrics = (await request(project.port, "GET", "/metrics", headers=operator())).body.decode()
    assert 'bridge_events_untyped_total{reason="unknown",type="promo"} 1.0' in metrics
    assert 'bridge_events_untyped_total{reason="misfit",type="order:created"} 1.0' in metrics
    project.bridge.wait_for("'order:created' does not fit its model", WAIT)


SEED_BODIES = [
    ("emit-event", {"type": "factura:emitida", "data": {"facturaId": 3}}, "factura:emitida"),
    ("notify-role", {"role": "cliente", "event": "nueva_solicitud",
                     "payload": {"servicioId": 1}}, "nueva_solicitud"),
    ("notify-user", {"userId": "u1", "event": "solo_u1", "payload": [1, 2]}, "solo_u1"),
    ("update-dashboard", {"ventas": {"hoy": 3}}, "dashboard:update"),
]  # fmt: skip


async def test_the_seeds_endpoints_take_names_and_shapes_no_catalog_knows(
    project: Project,
) -> None:
    bridge = type("B", (), {"port": project.port})()
    async with client(bridge, token=token(None, "u1", ("cliente",))) as u1:
        await ready(u1)
        for endpoint, body, event_type in SEED_BODIES:
            raw = json.dumps(body).encode()
            reply = await request(project.port, "POST", f"/api/dashboard/{endpoint}", raw)
            assert reply.status == 202, reply.body
            event = await recv_json(u1, WAIT)
            assert event["type"] == event_type
            assert event["data"] == body.get("data", body.get("payload", body))


#: The project's own tests, as its team would write them with ``producer.testing``.
OWN_TESTS = """
from decimal import Decimal

import pytest
from django.db import transaction
from django.test import TestCase

from producer import WebSocketNotifier
from producer.testing import captured_events
from shop.models import Order


@pytest.mark.django_db
def test_an_order_is_announced(sent_events):
    Order.objects.create(customer_id=7, total=Decimal("12.50"))
    assert [e.type for e in sent_events] == ["order:created"]
    assert sent_events[0].data.order.customer_id == 7


@pytest.mark.django_db(transaction=True)
def test_a_rollback_announces_nothing():
    with captured_events() as sent:
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            Order.objects.create(customer_id=7, total=1)
            1 / 0
    assert sent == []


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_from_async_code():
    with captured_events() as sent:
        assert await WebSocketNotifier().aemit_event("order:note", {"text": "hi"})
    assert [e.type for e in sent] == ["order:note"]


class OrdersTest(TestCase):
    def test_created(self):
        with captured_events() as sent:
            Order.objects.create(customer_id=1, total=2)
        self.assertEqual([e.type for e in sent], ["order:created"])
"""


def test_the_projects_own_tests_see_its_events_without_rabbitmq(project: Project) -> None:
    """Issue 15: ``captured_events``, the ``sent_events`` fixture and the async methods,
    in a project outside the repository, with its own pytest configuration."""
    own = project.folder / "own_tests"
    own.mkdir()
    (own / "test_orders.py").write_text(OWN_TESTS)
    (own / "conftest.py").write_text('pytest_plugins = ["producer.pytest_plugin"]\n')
    (own / "pytest.ini").write_text("[pytest]\nDJANGO_SETTINGS_MODULE = config.settings\n")
    env = {
        **project.env,
        "PYTHONPATH": str(project.folder),
        "BROKER_URL": "amqp://nobody@127.0.0.1:1//",
    }
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "."],
        cwd=own, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout
