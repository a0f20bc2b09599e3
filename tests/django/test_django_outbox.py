"""The transactional outbox: written with the save, sent on commit or by the relay, never lost.

With the default settings the process that committed a row publishes it from
a background thread (``producer.sender``), and the relay sweeps what it could
not. Most tests here turn that off (``SEND_ON_COMMIT``) to test the relay as
the only sender; those under "Sent by the process that wrote them" keep it.

Each relay here is a real ``manage.py event_bridge_relay`` process on the test
database, and RabbitMQ "going away" is a TCP proxy in front of it that refuses
to forward (the shared RabbitMQ is never stopped). A browser on a real bridge
counts what arrives; the bridge drops a re-sent event by its id. These tests
also run on PostgreSQL (test_django_postgres.py), with LISTEN/NOTIFY.
"""

from __future__ import annotations

import json
import logging
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, transaction
from django.test import Client, override_settings
from django.utils import timezone

import producer.sender
from producer import WebSocketNotifier, notifier
from producer.models import OutboxEvent
from producer.relay import STUCK_AFTER, SWEEP_AFTER
from producer.sender import Sender
from tests.django import factories
from tests.django.relays import ROOT, Proxy, RelayProcess, manage_env, running_relay
from tests.django.rollback import Boom, fail_in_a_transaction
from tests.support.bridges import token
from tests.support.django_live import WAIT, Browser, LiveBridge, live_bridge

pytestmark = pytest.mark.django_db(transaction=True)

#: The most one save may take while RabbitMQ is unreachable (it never waits for it).
SAVE_BOUND = 0.5
#: Saves made while RabbitMQ is unreachable (issue 8's figure).
SAVES = 1000


#: A relay that takes every row at once, as when web processes do not send on commit.
EVERY_ROW = ("--sweep-after", "0")


@pytest.fixture(autouse=True)
def relay_only(event_bridge: dict[str, Any]) -> None:
    """Rows wait for a relay, unless a test asks for ``sending``."""
    event_bridge["SEND_ON_COMMIT"] = False


@pytest.fixture
def sending(event_bridge: dict[str, Any], sender: Sender) -> Sender:
    """The default: this process sends its committed rows (the test's own sender)."""
    event_bridge["SEND_ON_COMMIT"] = True
    return sender


@pytest.fixture(scope="module")
def live(amqp_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBridge]:
    """A bridge and no relay: each test here runs the relays it needs."""
    with live_bridge(amqp_url, tmp_path_factory.mktemp("bridge")) as bridge:
        yield bridge


@pytest.fixture
def browser(live: LiveBridge) -> Iterator[Browser]:
    with live.browser(token(None, "watcher", ("admin",))) as opened:
        yield opened


@pytest.fixture
def proxy(amqp_url: str) -> Iterator[Proxy]:
    forwarding = Proxy(amqp_url)
    yield forwarding
    forwarding.close()


def stored() -> list[dict[str, Any]]:
    """The events in the outbox, oldest first."""
    return [json.loads(body) for body in OutboxEvent.objects.values_list("body", flat=True)]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}//"


# Written with the save


def test_a_save_writes_its_event_in_its_own_transaction() -> None:
    cliente = factories.cliente()
    OutboxEvent.objects.all().delete()
    with transaction.atomic():
        reserva = factories.reserva(cliente)
        [event] = stored()  # already there, in the same transaction
    assert (event["type"], event["data"]["reserva"]["id"]) == ("reserva:creada", reserva.id)
    assert OutboxEvent.objects.get().event_id == event["id"]


def test_a_rolled_back_transaction_writes_nothing() -> None:
    cliente = factories.cliente()
    OutboxEvent.objects.all().delete()
    notifier = WebSocketNotifier()
    with pytest.raises(Boom):
        fail_in_a_transaction(
            lambda: factories.reserva(cliente),
            lambda: notifier.notify_user("7", "reserva_confirmada", {"reservaId": 1}),
        )
    assert stored() == []


def test_outside_a_transaction_true_means_stored_and_committed() -> None:
    assert WebSocketNotifier().notify_role(
        "proveedor", "nueva_reserva", {"reservaId": 1, "clienteNombre": "ana"}
    )
    [event] = stored()
    assert event["audience"] == {"kind": "role", "role": "proveedor"}


# Sent by the relay


def test_the_relay_sends_what_commits_and_nothing_that_rolls_back(
    live: LiveBridge, browser: Browser, amqp_url: str
) -> None:
    cliente = factories.cliente()
    with running_relay(amqp_url, *EVERY_ROW) as relay:
        wakes = "on NOTIFY" if connection.vendor == "postgresql" else "every 0.05 s"
        assert wakes in relay.lines[-1]
        with pytest.raises(Boom):
            fail_in_a_transaction(lambda: factories.reserva(cliente, estado="rolled-back"))
        kept = factories.reserva(cliente, estado="kept")
        first, second = browser.receive(), browser.receive()
        assert live.settle(browser) == [[]]
    assert first["type"] == "cliente:nuevo"
    assert (second["type"], second["data"]["reserva"]["id"]) == ("reserva:creada", kept.id)
    assert not OutboxEvent.objects.exists()


@pytest.mark.timeout(180)
@pytest.mark.timing
def test_with_rabbitmq_unreachable_saves_stay_fast_and_every_event_arrives_once_it_is_back(
    live: LiveBridge, browser: Browser, proxy: Proxy
) -> None:
    cliente = factories.cliente()
    OutboxEvent.objects.all().delete()
    proxy.down()
    with running_relay(proxy.url, *EVERY_ROW) as relay:
        slowest = 0.0
        reservas = []
        for _ in range(SAVES):
            started = time.monotonic()
            reservas.append(factories.reserva(cliente).id)
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < SAVE_BOUND, f"a save took {slowest:.3f} s"
        assert OutboxEvent.objects.count() == SAVES
        # What an operator reads: why, how much is waiting, where; never the password.
        line = relay.wait_for(f"{SAVES} events waiting in the outbox")
        assert "retrying in" in line
        assert "amqp://guest:***@127.0.0.1" in line
        proxy.up()
        relay.wait_for("takes events again")
        got = [browser.receive() for _ in range(SAVES)]
        assert live.settle(browser) == [[]]  # nothing more: none twice
        assert "guest:guest" not in relay.output
    assert [e["data"]["reserva"]["id"] for e in got] == reservas  # all, in order
    assert len({e["id"] for e in got}) == SAVES
    assert not OutboxEvent.objects.exists()


@pytest.mark.timeout(120)
def test_a_relay_killed_mid_batch_and_restarted_delivers_everything_once(
    live: LiveBridge, browser: Browser, amqp_url: str
) -> None:
    count, seen_before_kill = 1000, 100
    with transaction.atomic():
        notifier = WebSocketNotifier()
        for n in range(count):
            notifier.emit_event("reserva:creada", {"reserva": {"id": n}})
    relay = RelayProcess(amqp_url, "--batch-size", str(count), *EVERY_ROW)
    try:
        got = [browser.receive() for _ in range(seen_before_kill)]
    finally:
        assert relay.stop(signal.SIGKILL) == -signal.SIGKILL
    left = OutboxEvent.objects.count()
    # Killed after confirms and before the delete: those events will go out twice.
    assert left + seen_before_kill > count, left
    with running_relay(amqp_url, *EVERY_ROW):
        while len(got) < count:
            got.append(browser.receive())
        assert live.settle(browser) == [[]]  # the re-sent ones were dropped by id
    assert [e["data"]["reserva"]["id"] for e in got] == list(range(count))
    assert not OutboxEvent.objects.exists()


#: Run by ``manage.py shell`` in a process of its own, with the default settings
#: (it sends on commit): save, commit, and die in the first ``on_commit`` hook,
#: before the event's own hook hands it to the process's sender.
SAVE_AND_DIE = """
import os, signal
from django.contrib.auth.models import User
from django.db import transaction
from api_rest.models import Cliente
with transaction.atomic():
    transaction.on_commit(lambda: os.kill(os.getpid(), signal.SIGKILL))
    Cliente.objects.create(user=User.objects.create(username="killed", email="k@example.com"))
"""

#: The same, ending as a script does: the event leaves before the process exits.
SAVE_AND_EXIT = """
from django.contrib.auth.models import User
from api_rest.models import Cliente
Cliente.objects.create(user=User.objects.create(username="exits", email="e@example.com"))
"""


def manage_shell(amqp_url: str, script: str) -> subprocess.CompletedProcess[str]:
    manage = [sys.executable, str(ROOT / "example" / "manage.py"), "shell", "-c", script]
    return subprocess.run(
        manage,
        env=manage_env(amqp_url),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


#: A web server that forks its workers after the app sent an event (gunicorn --preload).
SEND_AND_FORK = """
import os
from django.db import connections
from producer import WebSocketNotifier
from producer.sender import sender
WebSocketNotifier().emit_event("reserva:creada", {"reserva": {"id": 1}})
assert sender.flush(10)  # forking in the middle of a send would copy half an import
pid = os.fork()
if pid == 0:
    connections.close_all()  # as a forking server does: the child opens its own
    WebSocketNotifier().emit_event("reserva:creada", {"reserva": {"id": 2}})
    os._exit(0 if sender.flush(10) else 3)
_, status = os.waitpid(pid, 0)
assert os.waitstatus_to_exitcode(status) == 0, status
"""


def test_a_django_process_killed_right_after_its_commit_loses_nothing(
    live: LiveBridge, browser: Browser, amqp_url: str
) -> None:
    died = manage_shell(amqp_url, SAVE_AND_DIE)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert live.settle(browser) == [[]]  # nothing published: it died first
    [event] = stored()
    with running_relay(amqp_url) as relay:  # as deployed: a sweeper of older rows
        assert f"taking rows older than {SWEEP_AFTER} s" in relay.lines[-1]
        arrived = browser.receive()
    assert arrived == event
    assert arrived["data"]["cliente"]["nombre"] == "killed"


def test_a_forked_worker_sends_its_own_events(
    live: LiveBridge, browser: Browser, amqp_url: str
) -> None:
    ended = manage_shell(amqp_url, SEND_AND_FORK)
    assert ended.returncode == 0, ended.stderr
    got = [browser.receive(), browser.receive()]
    assert live.settle(browser) == [[]]
    assert sorted(e["data"]["reserva"]["id"] for e in got) == [1, 2]
    assert stored() == []


def test_a_script_that_saves_and_exits_sends_its_event_before_it_ends(
    live: LiveBridge, browser: Browser, amqp_url: str
) -> None:
    ended = manage_shell(amqp_url, SAVE_AND_EXIT)
    assert ended.returncode == 0, ended.stderr
    [arrived] = live.settle(browser)[0]
    assert arrived["data"]["cliente"]["nombre"] == "exits"
    assert stored() == []


@pytest.mark.timeout(120)
def test_two_relays_share_the_outbox(live: LiveBridge, browser: Browser, amqp_url: str) -> None:
    count = 1000
    with (
        running_relay(amqp_url, *EVERY_ROW) as one,
        running_relay(amqp_url, *EVERY_ROW) as two,
    ):
        with transaction.atomic():
            notifier = WebSocketNotifier()
            for n in range(count):
                notifier.emit_event("reserva:creada", {"reserva": {"id": n}})
        got = [browser.receive() for _ in range(count)]
        assert live.settle(browser) == [[]]
    sent = [
        int(re.search(r"stopped after sending (\d+) events?", relay.output)[1])  # type: ignore[index]
        for relay in (one, two)
    ]
    assert sorted(e["data"]["reserva"]["id"] for e in got) == list(range(count))
    if connection.vendor == "postgresql":
        # SKIP LOCKED: each row claimed by one relay only, none published twice.
        assert sum(sent) == count, sent
    else:
        # SQLite cannot claim rows: two relays may both send a row (docs: run one).
        assert sum(sent) >= count, sent


def test_sigterm_stops_the_relay_cleanly(amqp_url: str) -> None:
    relay = RelayProcess(amqp_url)
    try:
        relay.wait_for("relay: outbox of database")
        started = time.monotonic()
        code = relay.stop(signal.SIGTERM)
    finally:
        if relay.proc.poll() is None:
            relay.stop(signal.SIGKILL)
    assert code == 0, relay.output
    assert time.monotonic() - started < 2
    assert "relay: stopped after sending 0 events; the outbox is empty" in relay.output


# --once, and what the command refuses


def test_once_sends_what_is_stored_and_exits(browser: Browser) -> None:
    WebSocketNotifier().notify_user("watcher", "reserva_confirmada", {"reservaId": 3})
    out = StringIO()
    call_command("event_bridge_relay", "--once", stdout=out)
    assert out.getvalue().strip() == "sent 1 event; the outbox is empty"
    assert browser.receive()["data"] == {"reservaId": 3}


def test_once_with_rabbitmq_unreachable_keeps_the_events_and_says_why(
    event_bridge: dict[str, Any],
) -> None:
    WebSocketNotifier().emit_event("reserva:creada", {"reserva": {"id": 1}})
    with override_settings(EVENT_BRIDGE={**event_bridge, "BROKER_URL": closed_port_url()}):
        started = time.monotonic()
        with pytest.raises(CommandError, match=r"RabbitMQ at amqp://guest:\*\*\*@") as raised:
            call_command("event_bridge_relay", "--once", stdout=StringIO())
        assert time.monotonic() - started < SAVE_BOUND * 4
    assert "guest:guest" not in str(raised.value)
    assert OutboxEvent.objects.count() == 1


def test_an_event_no_longer_valid_is_logged_and_dropped_not_retried_forever(
    browser: Browser, caplog: pytest.LogCaptureFixture
) -> None:
    OutboxEvent.objects.create(event_id="old-1", body='{"id": "old-1", "type": "gone:away"}')
    WebSocketNotifier().notify_user("watcher", "reserva_confirmada", {"reservaId": 4})
    out = StringIO()
    call_command("event_bridge_relay", "--once", stdout=out)
    assert out.getvalue().strip() == "sent 1 event; the outbox is empty"
    assert browser.receive()["data"] == {"reservaId": 4}
    [dropped] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert "outbox event old-1 dropped, no longer valid" in dropped.getMessage()
    assert '"type": "gone:away"' in dropped.getMessage()  # kept in the log, to replay


# Direct delivery, as before the outbox


def test_direct_delivery_publishes_on_commit_without_a_relay(
    live: LiveBridge, browser: Browser, event_bridge: dict[str, Any]
) -> None:
    cliente = factories.cliente()
    live.settle(browser)
    OutboxEvent.objects.all().delete()
    with override_settings(EVENT_BRIDGE={**event_bridge, "DELIVERY": "direct"}):
        with transaction.atomic():
            reserva = factories.reserva(cliente)
            assert live.settle(browser) == [[]]  # not before the commit
        event = browser.receive()
    assert (event["type"], event["data"]["reserva"]["id"]) == ("reserva:creada", reserva.id)
    assert not OutboxEvent.objects.exists()


# When nothing sends them (issue 15: a forgotten relay failed silently)


def _stale_row(seconds: float) -> OutboxEvent:
    assert WebSocketNotifier().emit_event("reserva:creada", {"reserva": {"id": 1}})
    row = OutboxEvent.objects.get()
    row.created = timezone.now() - timedelta(seconds=seconds)
    row.save()
    return row


def test_events_waiting_too_long_are_reported_by_check_log_and_admin(
    caplog: pytest.LogCaptureFixture, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    OutboxEvent.objects.all().delete()
    assert not [m for m in run_checks(databases=["default"]) if m.id == "event_bridge.W004"]
    row = _stale_row(STUCK_AFTER + 5)
    [stuck] = [m for m in run_checks(databases=["default"]) if m.id == "event_bridge.W004"]
    assert "1 event waiting in the outbox, the oldest for 3" in stuck.msg
    assert "event_bridge_relay" in str(stuck.hint)
    # The web process says so too, at its next event (and once per 30 s at most).
    monkeypatch.setattr(notifier, "_watch", notifier._BacklogWatch())  # a fresh process
    with caplog.at_level(logging.WARNING, logger="producer"):
        WebSocketNotifier().emit_event("reserva:creada", {"reserva": {"id": 2}})
        WebSocketNotifier().emit_event("reserva:creada", {"reserva": {"id": 3}})
    said = [r.getMessage() for r in caplog.records if "nothing is sending them" in r.getMessage()]
    assert len(said) == 1
    assert "run manage.py event_bridge_relay" in said[0]
    # The admin lists them, read-only, with the backlog on top.
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    listing = client.get("/admin/producer/outboxevent/")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "3 events waiting in the outbox" in page
    assert "nothing is sending them" in page
    assert row.event_id in page
    assert client.get("/admin/producer/outboxevent/add/").status_code == 403
    delete = f"/admin/producer/outboxevent/{row.pk}/delete/"
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert OutboxEvent.objects.count() == 3


def test_a_script_that_exits_with_rabbitmq_unreachable_says_its_events_wait_for_the_relay(
    amqp_url: str,
) -> None:
    OutboxEvent.objects.all().delete()
    ended = manage_shell(closed_port_url(), SAVE_AND_EXIT)
    assert ended.returncode == 0, ended.stderr
    assert "this process exits with events it could not send" in ended.stderr
    assert "manage.py event_bridge_relay" in ended.stderr
    assert "guest:guest" not in ended.stderr
    [event] = stored()
    assert event["data"]["cliente"]["nombre"] == "exits"


# Sent by the process that wrote them (issue 15: the default needs no relay)


def test_with_the_default_settings_and_no_relay_every_call_and_a_save_reach_a_browser(
    live: LiveBridge, browser: Browser, sending: Sender
) -> None:
    notifier = WebSocketNotifier()
    with transaction.atomic():
        cliente = factories.cliente()  # model_events: cliente:nuevo
        notifier.emit_event("reserva:creada", {"reserva": {"id": 1}})
        notifier.notify_role("admin", "nueva_reserva", {"reservaId": 1, "clienteNombre": "ana"})
        notifier.notify_user("watcher", "reserva_confirmada", {"reservaId": 1})
        notifier.update_dashboard({"services": {"total": 1}})
        assert sending.flush(WAIT)
        assert live.settle(browser) == [[]]  # not before the commit
    with pytest.raises(Boom):
        fail_in_a_transaction(lambda: notifier.emit_event("reserva:creada", {"reserva": {"id": 2}}))
    got = [browser.receive() for _ in range(5)]
    assert sending.flush(WAIT)
    assert live.settle(browser) == [[]]  # nothing of the rolled-back one, nothing twice
    assert [e["type"] for e in got] == [
        "cliente:nuevo",
        "reserva:creada",
        "nueva_reserva",
        "reserva_confirmada",
        "dashboard:update",
    ]
    assert got[0]["data"]["cliente"]["id"] == cliente.pk
    assert stored() == []  # each row deleted on RabbitMQ's confirm


@pytest.mark.timeout(120)
@pytest.mark.timing
def test_with_rabbitmq_unreachable_saves_stay_fast_and_the_process_sends_them_once_it_is_back(
    live: LiveBridge,
    browser: Browser,
    proxy: Proxy,
    sending: Sender,
    event_bridge: dict[str, Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    event_bridge["BROKER_URL"] = proxy.url
    cliente = factories.cliente()
    assert sending.flush(WAIT)
    browser.receive()  # cliente:nuevo
    proxy.down()
    count = 50
    slowest = 0.0
    reservas = []
    with caplog.at_level(logging.INFO, logger="producer"):
        for _ in range(count):
            started = time.monotonic()
            reservas.append(factories.reserva(cliente).id)
            slowest = max(slowest, time.monotonic() - started)
        assert slowest < SAVE_BOUND, f"a save took {slowest:.3f} s"
        assert sending.flush(WAIT)
        assert OutboxEvent.objects.count() == count  # kept, nothing lost
        proxy.up()
        got = [browser.receive() for _ in range(count)]
        assert live.settle(browser) == [[]]
    said = [r.getMessage() for r in caplog.records]
    [kept] = [line for line in said if "this process tries again in 0.5 s" in line]
    assert "RabbitMQ did not take event" in kept
    assert f"{count} events waiting in the outbox" in kept or "events waiting" in kept
    assert "(broker amqp://guest:***@127.0.0.1:" in kept
    assert any("takes events again" in line for line in said)
    assert not any("guest:guest" in line for line in said)
    assert [e["data"]["reserva"]["id"] for e in got] == reservas  # all, once, in order
    assert stored() == []


def test_rows_past_the_senders_bound_wait_in_the_outbox_and_are_swept_in_order(
    live: LiveBridge,
    browser: Browser,
    event_bridge: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event_bridge["SEND_ON_COMMIT"] = True
    bounded = Sender(max_pending=3)
    monkeypatch.setattr(producer.sender, "sender", bounded)
    # The thread's first batch waits until every row is handed over: the rest pile up.
    handed_over = threading.Event()
    send = bounded._send

    def held(taken: list[tuple[str, int]]) -> None:
        handed_over.wait(WAIT)
        send(taken)

    monkeypatch.setattr(bounded, "_send", held)
    notifier = WebSocketNotifier()
    with caplog.at_level(logging.WARNING, logger="producer"):
        for n in range(10):
            notifier.emit_event("reserva:creada", {"reserva": {"id": n}})
        handed_over.set()
        got = [browser.receive() for _ in range(10)]
    assert bounded.flush(WAIT)
    assert live.settle(browser) == [[]]
    assert [e["data"]["reserva"]["id"] for e in got] == list(range(10))
    [full] = [r.getMessage() for r in caplog.records if "not yet sent" in r.getMessage()]
    assert "3 events handed over and not yet sent" in full
    assert stored() == []
