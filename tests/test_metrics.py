"""Prometheus metrics of one bridge, as an operator scraping ``/metrics`` reads them.

:class:`~bridge.metrics.Metrics` alone, for the names and labels
docs/operations.md promises, the live gauges and the registry of its own; then
a bridge's hub (nothing listening, clients on in-memory transports) for which
events move which counters, and for the bound on event type labels.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from api_rest.events import Reserva, ReservaCreada
from bridge.app import Bridge, open_broker
from bridge.config import Limits
from bridge.counts import OTHER
from bridge.handshake import Handshake
from bridge.http import Request
from bridge.metrics import Metrics
from bridge.websocket import WebSocketLink
from schemas import Event
from tests.support.bridges import operator, running, settings, token
from tests.support.httpclient import request
from tests.support.wire import Wire

OPERATIONS = Path(__file__).parent.parent / "docs" / "operations.md"

#: (sample name, sorted label pairs) -> value
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(metrics: Metrics) -> Samples:
    """What Prometheus reads from ``metrics``, parsed."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(metrics.render().decode())
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def labelled(samples: Samples, name: str, label: str) -> dict[str, float]:
    """The values of ``name`` by its ``label``."""
    return {dict(key)[label]: v for (n, key), v in samples.items() if n == name}


@dataclass
class State:
    """What the live gauges read, changed by the test between scrapes."""

    by_role: dict[str, int]
    total: int = 0
    broker: bool = True
    dead: int = 0
    queued: int = 0

    def metrics(self) -> Metrics:
        return Metrics(
            connections_by_role=lambda: self.by_role,
            connections=lambda: self.total,
            broker_connected=lambda: self.broker,
            dead_lettered=lambda: self.dead,
            queued=lambda: self.queued,
        )


def promised() -> dict[str, set[str]]:
    """The metrics the operations guide's table lists, with their label names."""
    names: dict[str, set[str]] = {}
    for line in OPERATIONS.read_text().splitlines():
        if line.startswith("| `bridge_"):
            first_cell = line.split("|")[1]
            for name, labels in re.findall(r"`(bridge_\w+)(?:\{([\w,]*)\})?`", first_cell):
                names[name] = set(filter(None, labels.split(",")))
    return names


# Metrics alone


def test_the_guide_lists_the_metrics_an_operator_alerts_on() -> None:
    # If the table's format changes, the next test would check nothing.
    assert {
        "bridge_broker_connected",
        "bridge_events_received_total",
        "bridge_slow_clients_dropped_total",
        "bridge_delivery_latency_seconds",
    } <= set(promised())
    assert promised()["bridge_events_untyped_total"] == {"type", "reason"}


def test_every_metric_the_guide_promises_is_scraped_with_its_labels() -> None:
    metrics = State(by_role={"admin": 1}).metrics()
    # Labelled counters show up once something is counted under a label.
    metrics.events_in.labels("t").inc()
    metrics.events_out.labels("t").inc()
    metrics.untyped.labels("t", "unknown").inc()
    metrics.published.labels("emit-event").inc()
    metrics.rate_limited.labels("per-ip").inc()
    metrics.connections_refused.labels("total").inc()
    metrics.http_timeouts.labels("idle").inc()
    metrics.latency.observe(0.001)
    samples = scrape(metrics)
    for name, labels in promised().items():
        # A histogram is read through its _count, _sum and _bucket samples.
        sample = f"{name}_count" if name.endswith("_seconds") else name
        found = [dict(key) for n, key in samples if n == sample]
        assert found, f"{name} is in docs/operations.md but not scraped"
        assert all(set(f) == labels for f in found), (name, found)


def test_the_live_gauges_are_read_at_each_scrape() -> None:
    state = State(by_role={"admin": 2, "proveedor": 1}, total=3, dead=4, queued=512)
    metrics = state.metrics()
    samples = scrape(metrics)
    assert value(samples, "bridge_connections") == 3
    assert labelled(samples, "bridge_connections_by_role", "role") == {"admin": 2, "proveedor": 1}
    assert value(samples, "bridge_broker_connected") == 1
    assert value(samples, "bridge_dead_lettered_total") == 4
    assert value(samples, "bridge_queued_bytes") == 512
    state.by_role, state.total, state.broker, state.dead, state.queued = {}, 0, False, 5, 0
    samples = scrape(metrics)
    assert value(samples, "bridge_connections") == 0
    assert labelled(samples, "bridge_connections_by_role", "role") == {}
    assert value(samples, "bridge_broker_connected") == 0
    assert value(samples, "bridge_dead_lettered_total") == 5
    assert value(samples, "bridge_queued_bytes") == 0


def test_two_bridges_in_one_process_keep_their_own_counts() -> None:
    one, two = State(by_role={}).metrics(), State(by_role={}).metrics()
    one.duplicates.inc(3)
    one.events_in.labels("reserva:creada").inc()
    one.slow_clients.inc()
    assert value(scrape(one), "bridge_events_duplicate_total") == 3
    theirs = scrape(two)
    assert value(theirs, "bridge_events_duplicate_total") == 0
    assert value(theirs, "bridge_slow_clients_dropped_total") == 0
    assert labelled(theirs, "bridge_events_received_total", "type") == {}


# A bridge's hub moving them


@dataclass
class Connected:
    """A WebSocket client of the hub, on a :class:`Wire`."""

    protocol: ClientProtocol
    wire: Wire
    link: WebSocketLink

    def send(self, text: str) -> None:
        self.protocol.send_text(text.encode())
        self.link.receive(b"".join(self.protocol.data_to_send()))

    def frames(self) -> list[Frame]:
        self.protocol.receive_data(bytes(self.wire.out))
        self.wire.out.clear()
        return [e for e in self.protocol.events_received() if isinstance(e, Frame)]


@dataclass
class Hubbed:
    bridge: Bridge

    @property
    def metrics(self) -> Metrics:
        return self.bridge.metrics

    def connect(self, roles: tuple[str, ...] = (), buffered: int = 0) -> Connected:
        """A client with a token for ``roles``, past its resume window (live events flow)."""
        protocol = ClientProtocol(
            parse_uri(f"ws://127.0.0.1/ws?{urlencode({'token': token(roles=roles)})}")
        )
        ws_request = protocol.connect()
        protocol.send_request(ws_request)
        parts = urlsplit(ws_request.path)
        parsed = Request(
            "GET",
            parts.path,
            dict(parse_qsl(parts.query)),
            {k.lower(): v for k, v in ws_request.headers.raw_items()},
        )
        wire = Wire()
        bridge = self.bridge
        handshake = Handshake(bridge.hub, bridge.authenticator, bridge.settings)
        client = handshake(wire, b"".join(protocol.data_to_send()), parsed)
        assert client is not None
        connected = Connected(protocol, wire, client)
        assert [json.loads(bytes(f.data))["type"] for f in connected.frames()] == ["bridge:welcome"]
        connected.send('{"op": "ping"}')  # no resume: live events flow at once
        assert [json.loads(bytes(f.data))["type"] for f in connected.frames()] == ["bridge:pong"]
        wire.buffered = buffered
        return connected

    def deliver(self, *events: Event) -> None:
        """Accept ``events`` and write them out, as the next turn of the loop would."""
        for event in events:
            self.bridge.hub.on_event(event)
        self.bridge.hub.flush()


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Callable[..., Hubbed]]:
    """Builds a bridge with its history open and nothing listening."""
    bridges: list[Bridge] = []

    def build(**limits: Any) -> Hubbed:
        config = settings(tmp_path / str(len(bridges)), limits=Limits(**limits))
        bridge = Bridge(config, open_broker(config))
        bridge.history.open()
        bridges.append(bridge)
        return Hubbed(bridge)

    yield build
    for bridge in bridges:
        bridge.history.close()


def reserva(n: int) -> Event:
    return Event.of(ReservaCreada(reserva=Reserva(id=n)), id=f"e{n}")


async def test_an_accepted_event_is_received_once_and_delivered_once_per_recipient(
    make: Callable[..., Hubbed],
) -> None:
    hubbed = make()
    hubbed.connect(("admin",))
    hubbed.connect(("proveedor",))
    hubbed.deliver(reserva(1))
    samples = scrape(hubbed.metrics)
    assert value(samples, "bridge_events_received_total", type="reserva:creada") == 1
    assert value(samples, "bridge_events_delivered_total", type="reserva:creada") == 2
    assert labelled(samples, "bridge_events_untyped_total", "type") == {}
    assert value(samples, "bridge_delivery_latency_seconds_count") == 1
    assert value(samples, "bridge_connections") == 2
    assert labelled(samples, "bridge_connections_by_role", "role") == {"admin": 1, "proveedor": 1}


async def test_an_event_seen_before_counts_as_a_duplicate_not_as_received(
    make: Callable[..., Hubbed],
) -> None:
    hubbed = make()
    hubbed.deliver(reserva(1), reserva(1), reserva(1))
    samples = scrape(hubbed.metrics)
    assert value(samples, "bridge_events_received_total", type="reserva:creada") == 1
    assert value(samples, "bridge_events_duplicate_total") == 2


async def test_untyped_events_are_counted_by_type_and_why(make: Callable[..., Hubbed]) -> None:
    hubbed = make()
    hubbed.deliver(
        Event.untyped("promo:lanzada", {"x": 1}),
        Event.untyped("promo:lanzada", {"x": 2}),
        Event.untyped("reserva:creada", {"reserva": {"id": "not a number"}}),
        reserva(1),
    )
    samples = scrape(hubbed.metrics)
    untyped = {
        (dict(key)["type"], dict(key)["reason"]): v
        for (name, key), v in samples.items()
        if name == "bridge_events_untyped_total"
    }
    assert untyped == {("promo:lanzada", "unknown"): 2, ("reserva:creada", "misfit"): 1}
    received = labelled(samples, "bridge_events_received_total", "type")
    assert received == {"promo:lanzada": 2, "reserva:creada": 2}


async def test_a_client_too_slow_to_read_is_dropped_and_counted(
    make: Callable[..., Hubbed],
) -> None:
    hubbed = make(max_send_buffer=1024)
    keeping_up = hubbed.connect()
    slow = hubbed.connect(buffered=1025)
    hubbed.deliver(reserva(1))
    assert value(scrape(hubbed.metrics), "bridge_slow_clients_dropped_total") == 1
    closes = [f for f in slow.frames() if f.opcode is Opcode.CLOSE]
    assert [int.from_bytes(f.data[:2], "big") for f in closes] == [1013]
    assert [json.loads(bytes(f.data))["id"] for f in keeping_up.frames()] == ["e1"]


async def test_event_type_labels_are_bounded_by_max_event_types(
    make: Callable[..., Hubbed],
) -> None:
    hubbed = make(max_event_types=3)
    hubbed.connect()
    hubbed.deliver(*(Event.untyped(f"invented:{i}", {}) for i in range(10)), reserva(1))
    samples = scrape(hubbed.metrics)
    expected = {"invented:0": 1, "invented:1": 1, "invented:2": 1, OTHER: 7, "reserva:creada": 1}
    assert labelled(samples, "bridge_events_received_total", "type") == expected
    assert labelled(samples, "bridge_events_delivered_total", "type") == expected
    untyped = labelled(samples, "bridge_events_untyped_total", "type")
    assert untyped == {k: v for k, v in expected.items() if k != "reserva:creada"}


async def test_operators_scrape_the_text_format_and_others_are_refused(tmp_path: Path) -> None:
    async with running(settings(tmp_path)) as bridge:
        bridge.hub.on_event(reserva(1))
        reply = await request(bridge.port, "GET", "/metrics", headers=operator())
        anonymous = await request(bridge.port, "GET", "/metrics")
    assert reply.status == 200
    assert reply.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = reply.body.decode()
    assert 'bridge_events_received_total{type="reserva:creada"} 1.0' in text
    assert anonymous.status == 401
    assert "bridge_" not in anonymous.body.decode()
