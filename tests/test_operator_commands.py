"""The operator commands, run as installed against the real RabbitMQ: topology, emit, tail, dead letters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from kombu import Connection, Exchange, Producer
from websockets.asyncio.client import ClientConnection

from api_rest.events import DashboardUpdate, Reserva, ReservaCreada
from schemas import Event
from tests.support.bridges import (
    EVENT_BRIDGE,
    SECRET,
    Watch,
    client,
    rabbit,
    recv_json,
    running,
    settings,
    token,
)
from tests.support.httpclient import request

#: The example project's catalog (api_rest.events) is importable, as PYTHONPATH makes it.
ENV = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "example")}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [EVENT_BRIDGE, *args], capture_output=True, text=True, check=False, timeout=30, env=ENV
    )


async def arun(*args: str) -> tuple[int, str, str]:
    """The command in a subprocess, without blocking a bridge running in this loop."""
    proc = await asyncio.create_subprocess_exec(
        EVENT_BRIDGE, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=ENV
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def ready(ws: ClientConnection) -> None:
    """End the resume window, so live events flow at once."""
    await ws.send('{"op": "ping"}')
    assert (await recv_json(ws))["type"] == "bridge:pong"


# topology


def test_topology_declares_then_check_passes(amqp_url: str) -> None:
    instance = unique("topo")
    declared = run("topology", "--broker", amqp_url, "--instance", instance)
    assert declared.returncode == 0, declared.stderr
    for name in ("bridge.events", "bridge.dlx", "bridge.dead", f"bridge.instance.{instance}"):
        assert name in declared.stdout
    assert "x-queue-type=quorum" in declared.stdout
    checked = run("topology", "--broker", amqp_url, "--instance", instance, "--check")
    assert checked.returncode == 0, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[0].split() == [
        "name",
        "kind",
        "durable",
        "arguments",
        "messages",
        "consumers",
        "status",
    ]
    assert all(line.rstrip().endswith("ok") for line in lines[1:]), checked.stdout


def test_check_lists_a_missing_queue_and_exits_1(amqp_url: str) -> None:
    instance = unique("never-declared")
    checked = run("topology", "--broker", amqp_url, "--instance", instance, "--check")
    assert checked.returncode == 1
    assert f"bridge.instance.{instance}: missing" in checked.stderr
    # --check created nothing.
    again = run("topology", "--broker", amqp_url, "--instance", instance, "--check")
    assert again.returncode == 1


def test_check_lists_a_queue_with_other_arguments(amqp_url: str) -> None:
    instance = unique("different")
    with Connection(amqp_url) as connection:
        connection.default_channel.queue_declare(
            f"bridge.instance.{instance}", durable=True, auto_delete=False
        )  # a classic queue, not the quorum one
    try:
        checked = run("topology", "--broker", amqp_url, "--instance", instance, "--check")
        assert checked.returncode == 1
        assert f"bridge.instance.{instance}: different: inequivalent arg" in checked.stderr
    finally:
        with Connection(amqp_url) as connection:
            connection.default_channel.queue_delete(f"bridge.instance.{instance}")


@pytest.mark.parametrize("command", [["topology"], ["dead-letters", "list"]])
def test_memory_is_no_broker_for_operator_commands(command: list[str]) -> None:
    done = run(*command, "--broker", "memory://")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    assert "--broker must be an amqp:// or amqps:// URL" in done.stderr


def test_an_unreachable_broker_exits_1() -> None:
    done = run("topology", "--broker", "amqp://guest:secret@127.0.0.1:1/")
    assert done.returncode == 1
    assert "cannot connect to amqp://guest:***@127.0.0.1:1/" in done.stderr
    assert "secret" not in done.stderr


def test_a_cluster_s_nodes_are_tried_in_turn(amqp_url: str) -> None:
    """Issue 17: ``--broker "amqp://a;amqp://b"`` passes over a node that is down."""
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        down = f"amqp://guest:secret@127.0.0.1:{probe.getsockname()[1]}/"
    nodes = f"{down};{amqp_url}"
    instance = unique("nodes")
    declared = run("topology", "--broker", nodes, "--instance", instance)
    assert declared.returncode == 0, declared.stderr
    checked = run("topology", "--broker", nodes, "--instance", instance, "--check")
    assert checked.returncode == 0, checked.stderr
    sent = run("emit", "promo", '{"x": 1}', "--broker", nodes)
    assert sent.returncode == 0, sent.stderr
    alone = run("topology", "--broker", f"{down};{down.replace('guest:', 'other:')}")
    assert alone.returncode == 1
    assert "cannot connect to amqp://guest:***@127.0.0.1" in alone.stderr
    assert ";amqp://other:***@127.0.0.1" in alone.stderr
    assert "secret" not in alone.stderr


# emit


def test_a_bad_payload_exits_2_with_the_field_when_strict() -> None:
    strict = ("--via", "http", "--catalog", "api_rest.events", "--strict-events")
    done = run("emit", "reserva:creada", '{"reserva": {}}', *strict)
    assert done.returncode == 2
    assert "data.reserva.id: Field required" in done.stderr
    unknown = run("emit", "reserva:borrada", "{}", "--role", "admin", *strict)
    assert unknown.returncode == 2
    assert "unknown event type 'reserva:borrada'" in unknown.stderr


def test_emit_without_a_broker_says_how_to_reach_a_bridge_on_memory() -> None:
    done = run("emit", "demo", '{"n": 1}', "--role", "cliente")
    assert done.returncode == 2
    assert "--via amqp needs --broker" in done.stderr
    assert "for a bridge on memory:// use --via http" in done.stderr


def test_an_untyped_event_is_sent_with_a_warning(amqp_url: str) -> None:
    catalog = ("--catalog", "api_rest.events", "--broker", amqp_url)
    misfit = run("emit", "reserva:creada", '{"reserva": {}}', *catalog)
    assert misfit.returncode == 0, misfit.stderr
    assert "warning: reserva:creada does not fit its schema: sent untyped" in misfit.stderr
    unknown = run("emit", "promo", '{"x": 1}', "--role", "cliente", *catalog)
    assert unknown.returncode == 0, unknown.stderr
    assert "warning: promo is not in the catalog: sent untyped" in unknown.stderr


async def test_emit_via_amqp_reaches_a_client_of_a_running_bridge(
    amqp_url: str, tmp_path: Path
) -> None:
    config = settings(tmp_path, broker_url=amqp_url, instance=unique("emit"))
    watch = Watch()
    async with running(config, rabbit(config, watch)) as bridge:
        await asyncio.wait_for(watch.up.wait(), 15)
        async with client(bridge, token=token(user="u7", roles=("admin",))) as ws:
            await ready(ws)
            code, out, err = await arun(
                "emit",
                "reserva:creada",
                '{"reserva": {"id": 7}}',
                "--role",
                "admin",
                "--id",
                "emit-amqp-1",
                "--broker",
                amqp_url,
            )
            assert code == 0, err
            assert out.strip() == "emit-amqp-1"
            got = await recv_json(ws, timeout=15)
            assert got["id"] == "emit-amqp-1"
            assert got["audience"] == {"kind": "role", "role": "admin"}
            assert got["data"] == {"reserva": {"id": 7}}


async def test_emit_via_http_reaches_a_client_of_a_memory_bridge(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as bridge, client(bridge, token=token()) as ws:
        await ready(ws)
        code, out, err = await arun(
            "emit",
            "dashboard:update",
            '{"services": {"total": 3}}',
            "--via",
            "http",
            "--url",
            f"http://127.0.0.1:{bridge.port}",
        )
        assert code == 0, err
        got = await recv_json(ws)
        assert got["id"] == out.strip()
        assert got["type"] == "dashboard:update"
        assert got["data"] == {"services": {"total": 3}}


async def test_emit_says_why_it_was_not_taken(tmp_path: Path) -> None:
    async with running(settings(tmp_path, api_key="k" * 32)) as bridge:
        code, _, err = await arun(
            "emit",
            "reserva:creada",
            '{"reserva": {"id": 1}}',
            "--via",
            "http",
            "--url",
            f"http://127.0.0.1:{bridge.port}",
        )
        assert code == 1
        assert "answered 401" in err
    done = run(
        "emit",
        "reserva:creada",
        '{"reserva": {"id": 1}}',
        "--via",
        "http",
        "--url",
        "http://127.0.0.1:1",
    )
    assert done.returncode == 1
    assert "cannot reach http://127.0.0.1:1/api/dashboard/emit-event" in done.stderr
    gone = run(
        "emit",
        "reserva:creada",
        '{"reserva": {"id": 1}}',
        "--broker",
        "amqp://guest:guest@127.0.0.1:1/",
    )
    assert gone.returncode == 1
    assert "RabbitMQ did not take event" in gone.stderr


# token


async def test_a_monitor_token_made_with_the_secret_opens_the_operators_views(
    tmp_path: Path,
) -> None:
    """Issue 15: with --jwt-secret set the bridge prints no dashboard link; make one."""
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    async with running(settings(tmp_path)) as bridge:
        code, out, err = await arun(
            "token", "--monitor", "--jwt-secret-file", str(secret_file),
            "--dashboard", f"http://127.0.0.1:{bridge.port}/",
        )  # fmt: skip
        assert code == 0, err
        link, _, monitor = out.strip().partition("#token=")
        stats = await request(
            bridge.port,
            "GET",
            "/api/dashboard/stats",
            headers={"Authorization": f"Bearer {monitor}"},
        )
        _, user_token, _ = await arun(
            "token",
            "--user",
            "u7",
            "--roles",
            "cliente,admin",
            "--jwt-secret-file",
            str(secret_file),
        )
        async with client(bridge, token=user_token.strip()) as ws:
            await ready(ws)
        refused = run("token", "--dashboard", "http://x")
        port = bridge.port
    assert link == f"http://127.0.0.1:{port}/dashboard.html"
    assert stats.status == 200  # stats are for monitors only
    assert refused.returncode == 2
    assert "BRIDGE_JWT_SECRET" in refused.stderr


# tail


async def test_tail_prints_an_event_published_meanwhile_and_ctrl_c_exits_0(
    tmp_path: Path,
) -> None:
    async with running(settings(tmp_path)) as bridge:
        proc = await asyncio.create_subprocess_exec(
            EVENT_BRIDGE,
            "tail",
            "--url",
            f"ws://127.0.0.1:{bridge.port}/ws",
            "--jwt-secret",
            SECRET,
            "--all",
            "--types",
            "reserva:creada",
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            hello = (await asyncio.wait_for(proc.stderr.readline(), 15)).decode()
            assert "tail: connected to instance test as event-bridge-tail" in hello
            # Filtered out by --types: the next line is the booking.
            await bridge.broker.publish(Event.of(DashboardUpdate(), id="not-shown"))
            await bridge.broker.publish(Event.of(ReservaCreada(reserva=Reserva(id=1)), id="tail-1"))
            printed = (await asyncio.wait_for(proc.stdout.readline(), 15)).decode()
            assert printed.rstrip().endswith('reserva:creada all {"reserva":{"id":1}}'), printed
            proc.send_signal(signal.SIGINT)
            assert await asyncio.wait_for(proc.wait(), 15) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


def test_tail_refused_exits_1() -> None:
    done = run("tail", "--url", "ws://127.0.0.1:1/ws")
    assert done.returncode == 1
    assert "cannot connect to ws://127.0.0.1:1/ws" in done.stderr


# dead letters


def bury(amqp_url: str, body: bytes, message_id: str, reason: str) -> None:
    """Put a message straight into bridge.dead, as a bridge dead-letters one."""
    with Connection(amqp_url, transport_options={"confirm_publish": True}) as connection:
        Producer(connection.default_channel).publish(
            body,
            exchange=Exchange("bridge.dlx", type="fanout"),
            routing_key="event.reserva.creada",
            content_type="application/json",
            content_encoding="utf-8",
            headers={"x-bridge-error": reason, "x-bridge-instance": "old"},
            message_id=message_id,
        )


def listed(amqp_url: str) -> list[str]:
    done = run("dead-letters", "list", "--broker", amqp_url, "--limit", "0")
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_dead_letters_are_listed_in_order_and_left_in_place(amqp_url: str) -> None:
    assert run("topology", "--broker", amqp_url).returncode == 0
    ids = [unique("dead") for _ in range(3)]
    for n, id_ in enumerate(ids):
        bury(amqp_url, b"not json " + str(n).encode(), id_, f"not valid JSON {n}")
    first = listed(amqp_url)
    mine = [line for line in first if any(id_ in line for id_ in ids)]
    assert [next(i for i in ids if i in line) for line in mine] == ids
    assert "not valid JSON 0 (instance old)" in mine[0]
    assert mine[0].rstrip().endswith("not json 0")
    assert listed(amqp_url) == first  # nothing consumed, nothing reordered


def test_replay_republishes_a_fixed_message_and_keeps_a_bad_one(amqp_url: str) -> None:
    instance = unique("replay")
    assert run("topology", "--broker", amqp_url, "--instance", instance).returncode == 0
    good = Event.of(ReservaCreada(reserva=Reserva(id=9)), id=unique("good"))
    bad = unique("bad")
    bury(amqp_url, good.to_json(), good.id, "unknown event type 'reserva:creada'")
    bury(amqp_url, b"still not json", bad, "not valid JSON")

    dry = run("dead-letters", "replay", "--broker", amqp_url, "--id", good.id, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert f"would replay {good.id} to event.reserva.creada" in dry.stdout

    done = run("dead-letters", "replay", "--broker", amqp_url, "--id", good.id, "--id", bad)
    assert done.returncode == 1
    assert f"replayed {good.id} to event.reserva.creada" in done.stdout
    assert f"kept {bad}: still not an event: not valid JSON" in done.stdout

    left = "\n".join(listed(amqp_url))
    assert bad in left
    assert good.id not in left
    with Connection(amqp_url) as connection:
        message = connection.default_channel.basic_get(f"bridge.instance.{instance}", no_ack=True)
        assert message is not None
        assert json.loads(message.body)["id"] == good.id
        assert "x-bridge-error" not in (message.properties.get("application_headers") or {})
        connection.default_channel.queue_delete(f"bridge.instance.{instance}")


async def test_tokens_made_with_the_secret_subscribe_to_channels(tmp_path: Path) -> None:
    """Issue 18: a connection token listing channels, and a subscription token for one."""
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    made = ("--jwt-secret-file", str(secret_file))
    async with running(settings(tmp_path)) as bridge:
        _, listing, _ = await arun("token", "--user", "u7", "--channels", "order:*", *made)
        _, plain, _ = await arun("token", "--user", "u8", *made)
        _, ticket, _ = await arun("token", "--user", "u8", "--subscription", "order:9", *made)
        async with client(bridge, token=listing.strip()) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": "order:42"}))
            assert (await recv_json(ws))["type"] == "bridge:subscribed"
        async with client(bridge, token=plain.strip()) as ws:
            await ws.send(json.dumps({"op": "subscribe", "channel": "order:9"}))
            assert (await recv_json(ws))["type"] == "bridge:refused"
            subscribe = {"op": "subscribe", "channel": "order:9", "token": ticket.strip()}
            await ws.send(json.dumps(subscribe))
            assert (await recv_json(ws))["type"] == "bridge:subscribed"
    for wrong in (("--subscription", "no spaces"), ("--channels", "order 42")):
        bad = run("token", *wrong, *made)
        assert bad.returncode == 2
        assert "letters, digits" in bad.stderr
    mixed = run("token", "--monitor", "--subscription", "order:1", *made)
    assert mixed.returncode == 2
    assert "leave out --monitor" in mixed.stderr
