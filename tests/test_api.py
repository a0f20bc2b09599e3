"""The HTTP API as legacy callers use it: the seed's requests, status codes, reads."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bridge.app import Bridge
from bridge.auth import Authenticator
from bridge.config import Limits
from tests.support.bridges import (
    SECRET,
    Watch,
    client,
    operator,
    rabbit,
    recv_json,
    running,
    settings,
    token,
)
from tests.support.httpclient import request
from tests.support.seed import SEED, curls


@pytest.fixture
async def bridge(tmp_path: Path) -> AsyncIterator[Bridge]:
    async with running(settings(tmp_path)) as b:
        yield b


async def post(bridge: Bridge, endpoint: str, body: bytes, **headers: str) -> tuple[int, object]:
    reply = await request(bridge.port, "POST", f"/api/dashboard/{endpoint}", body, headers)
    return reply.status, reply.json()


async def test_every_seed_curl_gets_202_and_reaches_its_audience(bridge: Bridge) -> None:
    monitor = Authenticator(SECRET).issue(
        "ops", [], ttl=__import__("datetime").timedelta(minutes=5), monitor=True
    )
    async with client(bridge, token=monitor) as ws:
        await ws.send('{"op": "ping"}')
        await recv_json(ws)
        for curl in curls():
            status, answer = await post(bridge, curl.endpoint, curl.body)
            assert status == 202, answer
            assert isinstance(answer, dict)
            event = await recv_json(ws)
            assert event["id"] == answer["id"]
            body = curl.json
            if curl.endpoint == "emit-event":
                assert (event["type"], event["data"]) == (body["type"], body["data"])
            elif curl.endpoint == "update-dashboard":
                assert (event["type"], event["data"]) == ("dashboard:update", body)
            else:
                assert (event["type"], event["data"]) == (body["event"], body["payload"])


async def test_the_seeds_notifier_class_works_unchanged(bridge: Bridge, tmp_path: Path) -> None:
    # The class exactly as the seed writes it, with only Django's settings around it.
    code = re.search(r"```python\n(import requests\n.*?)```", SEED.read_text(), re.S)
    assert code is not None
    script = tmp_path / "notifier.py"
    script.write_text(
        "from django.conf import settings\n"
        f"settings.configure(WS_SERVER_URL='http://127.0.0.1:{bridge.port}/api')\n"
        + code.group(1)
        + "n = WebSocketNotifier()\n"
        "print(n.emit_event('reserva:creada', {'reserva': {'id': 1, 'estado': 'confirmada'}}))\n"
        "print(n.notify_role('proveedor', 'nueva_reserva', {'reservaId': 1, 'clienteNombre': 'ana'}))\n"
        "print(n.notify_user('user_123', 'reserva_confirmada', {'reservaId': 1}))\n"
        "print(n.emit_event('reserva:borrada', {}))\n"  # outside the catalog: as sent
        "print(n.notify_role('proveedor', 'nueva_solicitud', {'servicioId': 1}))\n"  # misfit
    )
    async with client(bridge, token=token(None, "user_123", ("proveedor",))) as ws:
        await ws.send('{"op": "ping"}')
        await recv_json(ws)
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-W", "ignore::DeprecationWarning", str(script),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert out.decode().split() == ["True"] * 5, err.decode()
        received = [await recv_json(ws) for _ in range(5)]
    assert [e["type"] for e in received] == [
        "reserva:creada",
        "nueva_reserva",
        "reserva_confirmada",
        "reserva:borrada",
        "nueva_solicitud",
    ]
    assert [e["data"] for e in received[3:]] == [{}, {"servicioId": 1}]
    stats = (await request(bridge.port, "GET", "/api/dashboard/stats", headers=operator())).json()
    assert stats["events"]["untypedByType"] == {"nueva_solicitud": 1, "reserva:borrada": 1}


async def test_a_strict_bridge_refuses_what_the_catalog_does_not_know(tmp_path: Path) -> None:
    async with running(settings(tmp_path, strict_events=True)) as bridge:
        for body, says in [
            (b'{"type": "reserva:creada", "data": {"reserva": {"id": "1"}}}', "valid integer"),
            (b'{"type": "reserva:borrada", "data": {}}', "unknown event type 'reserva:borrada'"),
        ]:
            got, answer = await post(bridge, "emit-event", body)
            assert got == 422
            assert isinstance(answer, dict)
            assert says in answer["error"]
            assert answer["detail"][0]["msg"]
        notify = b'{"role": "proveedor", "event": "promo", "payload": {}}'
        got, answer = await post(bridge, "notify-role", notify)
        assert (got, answer["detail"][0]["loc"]) == (422, ["event"])  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b'{"type": "bridge:reset", "data": {}}', 422, "not starting with 'bridge:'"),
        (b'{"type": "promo"}', 422, "Field required"),
        (b"[]", 422, "object"),
    ],
)
async def test_bad_bodies_get_a_4xx_with_the_reason(
    bridge: Bridge, body: bytes, status: int, says: str
) -> None:
    got, answer = await post(bridge, "emit-event", body)
    assert got == status
    assert isinstance(answer, dict)
    assert says in answer["error"]
    if status == 422:
        assert answer["detail"][0]["msg"]


async def test_a_body_over_the_limit_gets_413(bridge: Bridge) -> None:
    big = json.dumps({"blob": "x" * (2 * 1024 * 1024)}).encode()
    status, answer = await post(bridge, "update-dashboard", big)
    assert status == 413
    assert "over" in answer["error"]  # type: ignore[index]


async def test_an_api_key_is_required_when_set(tmp_path: Path) -> None:
    body = b'{"services": {"total": 1}}'
    async with running(settings(tmp_path, api_key="k" * 20)) as bridge:
        assert (await post(bridge, "update-dashboard", body))[0] == 401
        assert (await post(bridge, "update-dashboard", body, **{"X-API-Key": "wrong"}))[0] == 401
        assert (await post(bridge, "update-dashboard", body, **{"X-API-Key": "k" * 20}))[0] == 202
        bearer = {"Authorization": "Bearer " + "k" * 20}
        assert (await post(bridge, "update-dashboard", body, **bearer))[0] == 202


async def test_a_flood_from_one_caller_gets_429_and_health_is_never_limited(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    key = "k" * 20
    limits = Limits(
        api_rate_per_ip=0.1, api_burst_per_ip=5, api_rate_per_key=0.1, api_burst_per_key=8
    )
    caplog.set_level(logging.INFO, logger="bridge.api")
    async with running(settings(tmp_path, api_key=key, limits=limits)) as bridge:
        flood = [
            await request(bridge.port, "GET", "/api/dashboard/stats", headers=operator())
            for _ in range(20)
        ]
        assert [r.status for r in flood] == [200] * 5 + [429] * 15
        refused = flood[-1]
        retry_after = int(refused.headers["retry-after"])
        assert 1 <= retry_after <= 10
        assert refused.json() == {
            "error": "too many requests: at most 0.1 per second (5 at once) per address; "
            f"retry after {retry_after} s"
        }
        # The key's holder has a budget of its own, not the flooded address's.
        body, with_key = b'{"services": {"total": 1}}', {"X-API-Key": key}
        statuses = [(await post(bridge, "update-dashboard", body, **with_key))[0] for _ in range(9)]
        assert statuses == [202] * 8 + [429]
        for path in ("/api/health", "/metrics") * 10:
            assert (await request(bridge.port, "GET", path, headers=operator())).status == 200
        metrics = (await request(bridge.port, "GET", "/metrics", headers=operator())).body.decode()
        assert 'bridge_http_rate_limited_total{limit="per-ip"} 15.0' in metrics
        assert 'bridge_http_rate_limited_total{limit="per-key"} 1.0' in metrics
    # One line per spell of refusals, naming the limit and the address, never the key.
    spells = [r for r in caplog.records if r.getMessage() == "rate limited"]
    assert [(r.limit, r.remote.rpartition(":")[0]) for r in spells] == [  # type: ignore[attr-defined]
        ("per-ip", "127.0.0.1"),
        ("per-key", "127.0.0.1"),
    ]
    assert not any(key in str(vars(r)) for r in caplog.records)


async def test_a_broker_that_cannot_confirm_gets_503(bridge: Bridge) -> None:
    await bridge.broker.close()
    status, answer = await post(bridge, "update-dashboard", b"{}")
    assert status == 503
    assert "not taken" in answer["error"]  # type: ignore[index]


async def test_the_same_id_posted_twice_is_delivered_once(amqp_url: str, tmp_path: Path) -> None:
    """Issue 8, scenario 13: replayed publishes, through the real RabbitMQ."""
    limits = Limits(resume_window=0.2, api_rate_per_ip=0)  # 201 POSTs in a burst
    config = settings(tmp_path, broker_url=amqp_url, instance="replayed", limits=limits)
    watch = Watch()
    ids = [f"pago-{n}" for n in range(100)]

    def body(id_: str, amount: int = 1) -> bytes:
        data = {"pago": {"id": amount}}
        return json.dumps({"type": "pago:procesado", "data": data, "id": id_}).encode()

    async with running(config, rabbit(config, watch)) as bridge:
        await asyncio.wait_for(watch.up.wait(), 15)
        async with client(bridge, token=token()) as ws:
            await ws.send('{"op": "ping"}')
            await recv_json(ws)
            # Every id twice, the replays in reverse order; one replay with other data.
            posts = [body(i) for i in ids] + [body(i) for i in reversed(ids[1:])]
            posts += [body(ids[0], amount=999), body("last")]
            statuses = [(await post(bridge, "emit-event", b))[0] for b in posts]
            assert statuses == [202] * len(posts)  # a replay is no error: it is taken, once
            received: list[dict[str, object]] = []
            while not received or received[-1]["id"] != "last":
                received.append(await recv_json(ws, timeout=15))
        metrics = (await request(bridge.port, "GET", "/metrics", headers=operator())).body.decode()
    delivered = [e["id"] for e in received]
    assert delivered == [*ids, "last"]
    assert all(e["data"] == {"pago": {"id": 1}} for e in received[:-1])  # the first one wins
    assert "bridge_events_duplicate_total 100.0" in metrics
    # 201 POSTs of 101 ids: 101 delivered, none lost, none twice.
    assert (len(posts), len(set(delivered)), len(delivered) - len(set(delivered))) == (201, 101, 0)


async def test_history_shows_each_caller_what_it_may_see(bridge: Bridge) -> None:
    await post(bridge, "emit-event", b'{"type": "pago:procesado", "data": {"pago": {"id": 1}}}')
    await post(
        bridge,
        "notify-user",
        b'{"userId": "u9", "event": "reserva_confirmada", "payload": {"reservaId": 1}}',
    )
    monitor = Authenticator(SECRET).issue(
        "ops", [], ttl=__import__("datetime").timedelta(minutes=5), monitor=True
    )

    async def types(**headers: str) -> list[str] | int:
        reply = await request(bridge.port, "GET", "/api/dashboard/history", headers=headers)
        return reply.status if reply.status != 200 else [e["type"] for e in reply.json()]

    assert await types() == 401  # no credentials: the bridge runs without --public-reads
    assert await types(Authorization=f"Bearer {token(None, 'u9')}") == [
        "pago:procesado",
        "reserva_confirmada",
    ]
    assert await types(Authorization=f"Bearer {monitor}") == [
        "pago:procesado",
        "reserva_confirmada",
    ]
    assert await types(Authorization="Bearer forged") == 401


async def test_reads_need_credentials_unless_public_reads(tmp_path: Path) -> None:
    """Issue 14: history (personal data, maybe), stats and metrics were open to anyone."""
    reads = ["/api/dashboard/history", "/api/dashboard/stats", "/metrics"]
    client_token = {"Authorization": f"Bearer {token(None, 'u1')}"}
    key = {"Authorization": "Bearer " + "k" * 20}
    async with running(settings(tmp_path, api_key="k" * 20)) as bridge:
        statuses = {
            who: [(await request(bridge.port, "GET", path, headers=headers)).status for path in reads]
            for who, headers in [("nobody", {}), ("client", client_token), ("operator", operator()), ("key", key)]
        }  # fmt: skip
    async with running(settings(tmp_path, public_reads=True)) as bridge:
        seed = [(await request(bridge.port, "GET", path)).status for path in reads]
    assert statuses == {
        "nobody": [401, 401, 401],
        "client": [200, 403, 403],  # its own events; the operator's views are not its own
        "operator": [200, 200, 200],
        "key": [200, 200, 200],
    }
    assert seed == [200, 200, 200]  # --public-reads: as the seed served them


async def test_stats_count_connections_by_role_and_events_by_type(bridge: Bridge) -> None:
    await post(bridge, "update-dashboard", b'{"services": {"total": 50, "activos": 45}}')
    async with client(bridge, token=token(None, "u1", ("proveedor",))):
        reply = await request(bridge.port, "GET", "/api/dashboard/stats", headers=operator())
    stats = reply.json()
    assert stats["connections"] == {"total": 1, "byRole": {"proveedor": 1}}
    assert stats["events"]["byType"] == {"dashboard:update": 1}
    assert stats["dashboard"] == {"services": {"total": 50, "activos": 45}}


async def test_metrics_are_prometheus_text(bridge: Bridge) -> None:
    await post(bridge, "emit-event", b'{"type": "pago:procesado", "data": {"pago": {"id": 1}}}')
    async with client(bridge, token=token(None, "u1", ("cliente",))):
        reply = await request(bridge.port, "GET", "/metrics", headers=operator())
    text = reply.body.decode()
    assert reply.headers["content-type"].startswith("text/plain")
    assert 'bridge_events_received_total{type="pago:procesado"} 1.0' in text
    assert 'bridge_connections_by_role{role="cliente"} 1.0' in text
    assert "bridge_broker_connected 1.0" in text
    assert "bridge_delivery_latency_seconds_count 1.0" in text
    assert "bridge_dead_lettered_total 0.0" in text


async def test_cors_answers_allowed_origins_only(tmp_path: Path) -> None:
    config = settings(tmp_path, allowed_origins=frozenset({"https://app.example"}))
    async with running(config) as bridge:
        allowed = await request(
            bridge.port,
            "OPTIONS",
            "/api/dashboard/emit-event",
            headers={"Origin": "https://app.example"},
        )
        other = await request(
            bridge.port,
            "OPTIONS",
            "/api/dashboard/emit-event",
            headers={"Origin": "https://evil.example"},
        )
    assert allowed.status == 204
    assert allowed.headers["access-control-allow-origin"] == "https://app.example"
    assert "x-api-key" in allowed.headers["access-control-allow-headers"]
    assert "access-control-allow-origin" not in other.headers


@pytest.mark.parametrize(
    ("method", "path", "status", "allow"),
    [
        ("GET", "/nope", 404, None),
        ("GET", "/api/dashboard/emit-event", 405, "OPTIONS, POST"),
        ("DELETE", "/api/health", 405, "GET, HEAD, OPTIONS"),
    ],
)
async def test_unknown_paths_and_methods(
    bridge: Bridge, method: str, path: str, status: int, allow: str | None
) -> None:
    reply = await request(bridge.port, method, path)
    assert (reply.status, reply.headers.get("allow")) == (status, allow)


async def test_openapi_describes_the_endpoints(bridge: Bridge) -> None:
    doc = (await request(bridge.port, "GET", "/openapi.json")).json()
    assert doc["openapi"] == "3.1.0"
    assert set(doc["paths"]) >= {
        f"/api/dashboard/{n}"
        for n in ("emit-event", "update-dashboard", "notify-role", "notify-user")
    }
    # The loaded catalog's types, and the untyped body any other name may take.
    assert {"ReservaCreadaEmitEvent", "UntypedEmitEvent"} <= set(doc["components"]["schemas"])
    for path, operations in doc["paths"].items():
        for operation in operations.values():
            limited = "429" in operation["responses"]
            assert limited == path.startswith("/api/dashboard/"), path
            if limited:
                assert "Retry-After" in operation["responses"]["429"]["headers"]


async def test_a_malformed_request_gets_400_without_its_bytes_echoed(bridge: Bridge) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
    writer.write(b"GET /ws?token=secret.jwt.value HTTP/1.1 junk\r\nHost: x\r\n\r\n")
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 400 ")
    assert b'"bad HTTP request: illegal request line"' in response
    assert b"secret" not in response


async def test_a_bearer_that_is_not_ascii_gets_401_not_500(tmp_path: Path) -> None:
    # Issue 14, vulnerability 4: hmac.compare_digest raised on a non-ASCII str.
    async with running(settings(tmp_path, api_key="k" * 20)) as bridge:
        reader, writer = await asyncio.open_connection("127.0.0.1", bridge.port)
        writer.write(
            b"GET /api/dashboard/history HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Authorization: Bearer k\xe9y\r\nConnection: close\r\n\r\n"
        )
        response = await asyncio.wait_for(reader.read(), 5)
        writer.close()
    assert response.startswith(b"HTTP/1.1 401 "), response[:200]


async def _post_as(port: int, origin: str | None, content_type: str) -> tuple[int, str]:
    """POST a body with exactly these headers, as a browser (with Origin) or a script."""
    body = b'{"type": "promo", "data": {}}'
    head = [
        "POST /api/dashboard/emit-event HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if origin is not None:
        head.append(f"Origin: {origin}")
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return int(response.split()[1]), response.decode(errors="replace")


async def test_a_page_on_another_site_cannot_publish(tmp_path: Path) -> None:
    # Issue 14, vulnerability 3: a text/plain POST from any web page answered 202.
    async with running(settings(tmp_path)) as bridge:
        port = bridge.port
        status, text = await _post_as(port, "http://evil.example", "text/plain")
        assert status == 403
        assert "add it to --allowed-origins" in text
        own = f"http://127.0.0.1:{port}"
        assert (await _post_as(port, own, "text/plain"))[0] == 415
        assert (await _post_as(port, own, "application/json"))[0] == 202
        # Servers and scripts send no Origin: legacy callers are not affected.
        assert (await _post_as(port, None, "text/plain"))[0] == 202
