"""The example's commands, and ``scripts/example`` running it all in one command."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import time
from collections import Counter
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
import requests
from django.contrib.auth import authenticate
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.core.management.base import CommandError
from websockets.asyncio.client import connect

from api_rest.models import Cliente, Proveedor, Servicio
from tests.support.bridges import token
from tests.support.django_live import LiveBridge
from tests.support.output import Output

ROOT = Path(__file__).resolve().parents[2]


# generate_traffic


@pytest.mark.django_db(transaction=True)
def test_generate_traffic_makes_data_whose_events_reach_browsers(live: LiveBridge) -> None:
    count, rate = 12, 40.0
    out = StringIO()
    with live.browser(token(None, "admin", ("admin", "proveedor"))) as browser:
        started = time.monotonic()
        call_command("generate_traffic", f"--count={count}", f"--rate={rate}", stdout=out)
        elapsed = time.monotonic() - started
        [received] = live.settle(browser)
    lines = out.getvalue().splitlines()
    assert lines[-1].startswith(f"{count} steps in ")
    steps = [line.split()[1] for line in lines[-count - 1 : -1]]
    assert elapsed >= (count - 1) / rate  # paced, not as fast as it can
    got = Counter(event["type"] for event in received)
    assert Counter(steps) <= got, (steps, got)  # each step's event arrived
    assert got["dashboard:update"] == 2  # after step 10 and at the end
    assert Servicio.objects.count() >= 6
    assert Cliente.objects.count() >= 5
    assert Proveedor.objects.count() >= 3
    assert set(Group.objects.values_list("name", flat=True)) >= {"cliente", "proveedor", "admin"}


@pytest.mark.parametrize("option", ["--count=0", "--count=10001", "--rate=0", "--rate=1000"])
def test_generate_traffic_is_bounded(option: str) -> None:
    with pytest.raises(CommandError, match=r"argument --(count|rate)"):
        call_command("generate_traffic", option)


@pytest.mark.parametrize("options", [{"count": 10**6}, {"rate": 10**6}])
def test_generate_traffic_is_bounded_when_called_from_python(options: dict[str, Any]) -> None:
    with pytest.raises(CommandError, match="--rate"):
        call_command("generate_traffic", **options)


# demo_users


@pytest.mark.django_db(transaction=True)
def test_demo_users_are_created_once_with_their_roles() -> None:
    out = StringIO()
    call_command("demo_users", "--password=pw-one", stdout=out)
    assert "ana    pw-one" in out.getvalue()
    call_command("demo_users", "--password=pw-two", stdout=out)
    assert "already there" in out.getvalue()
    for username, role in [("admin", "admin"), ("ana", "cliente"), ("pedro", "proveedor")]:
        user = authenticate(username=username, password="pw-one")
        assert user is not None, username
        assert list(user.groups.values_list("name", flat=True)) == [role]
    assert Cliente.objects.get().user.username == "ana"
    assert Proveedor.objects.get().user.username == "pedro"


# scripts/example


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def refused(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def two_events(ws_url: str, bearer: str, book: Any) -> list[dict[str, Any]]:
    async with connect(f"{ws_url}?token={bearer}") as ws:
        welcome = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert welcome["roles"] == ["cliente"]
        await ws.send('{"op": "ping"}')
        await asyncio.to_thread(book)
        messages = [json.loads(await asyncio.wait_for(ws.recv(), 10)) for _ in range(3)]
    return [m for m in messages if m["type"] != "bridge:pong"]


@pytest.mark.timeout(180)
def test_scripts_example_runs_django_and_a_bridge_with_one_secret(
    amqp_url: str, tmp_path: Path
) -> None:
    bridge_port, django_port = free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("BRIDGE_", "DJANGO_"))},
        "BRIDGE_BROKER_URL": amqp_url,
        "BRIDGE_PORT": str(bridge_port),
        "BRIDGE_STATE_DIR": str(tmp_path / "state"),
        "BRIDGE_INSTANCE": "scripts-example",
        "DJANGO_PORT": str(django_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "EXAMPLE_PASSWORD": "pw-for-this-test",
        "PYTHONUNBUFFERED": "1",
    }
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "example")],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        start_new_session=True,
    )
    assert proc.stdout is not None
    output = Output(proc.stdout)
    try:
        assert "pw-for-this-test" in output.wait_for("ana ")
        # The bridge, the relay and Django start at once: their lines come in any order.
        output.wait_for("connected to amqp://")
        output.wait_for("relay: outbox of database 'default' -> RabbitMQ at amqp://guest:***@")
        output.wait_for(f"Starting development server at http://127.0.0.1:{django_port}/")
        site = f"http://127.0.0.1:{django_port}"

        # Log in as a browser does; the token view's token opens the bridge.
        session = requests.Session()
        session.get(f"{site}/accounts/login/", timeout=10)
        reply = session.post(
            f"{site}/accounts/login/",
            data={
                "username": "ana",
                "password": "pw-for-this-test",
                "csrfmiddlewaretoken": session.cookies["csrftoken"],
            },
            headers={"Referer": f"{site}/accounts/login/"},
            timeout=10,
        )
        assert reply.url == f"{site}/", reply.text
        issued = session.get(f"{site}/event-bridge/token/", timeout=10).json()
        assert issued["url"] == f"ws://127.0.0.1:{bridge_port}/ws"

        def book() -> None:
            booked = requests.post(
                f"{site}/api/reservas/",
                json={"fecha": "2024-11-15", "hora": "14:30", "total_estimado": 50000},
                auth=("ana", "pw-for-this-test"),
                timeout=10,
            )
            assert booked.status_code == 200, booked.text

        events = asyncio.run(two_events(issued["url"], issued["token"], book))
        assert [e["type"] for e in events] == ["reserva:creada", "reserva:creada"]

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert refused(bridge_port)
        assert refused(django_port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        output.close()
