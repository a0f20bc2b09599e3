"""Typed and untyped events are counted apart, and callers' names cannot grow the counts."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from api_rest.events import Reserva, ReservaCreada
from bridge.config import Limits
from bridge.counts import OTHER, Kind, TypeCounts
from schemas import Event
from tests.support.bridges import client, operator, recv_json, running, settings, token
from tests.support.httpclient import request


def test_each_kind_is_told_apart() -> None:
    counts = TypeCounts({"reserva:creada"}, limit=10)
    typed = Event.of(ReservaCreada(reserva=Reserva(id=1)))
    misfit = Event.untyped("reserva:creada", {"reserva": {"id": "1"}})
    unknown = Event.untyped("promo", {})
    assert [counts.kind(e) for e in (typed, misfit, unknown)] == [
        Kind.TYPED,
        Kind.MISFIT,
        Kind.UNKNOWN,
    ]
    for event in (typed, misfit, unknown):
        counts.count(event, counts.kind(event))
    assert counts.by_type == {"reserva:creada": 2, "promo": 1}
    assert counts.untyped == {"reserva:creada": 1, "promo": 1}


def test_names_past_the_limit_are_counted_together_and_the_catalogs_never_are() -> None:
    counts = TypeCounts({"reserva:creada"}, limit=3)
    names = [counts.name(f"t{i}") for i in range(5)]
    assert names == ["t0", "t1", "t2", OTHER, OTHER]
    assert counts.name("t1") == "t1"  # a name already counted keeps its own count
    assert counts.name("reserva:creada") == "reserva:creada"


async def test_a_flood_of_new_names_leaves_stats_and_metrics_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="bridge.ws")
    limits = Limits(max_event_types=20, api_rate_per_ip=0)
    async with (
        running(settings(tmp_path, limits=limits)) as bridge,
        client(bridge, token=token()) as ws,
    ):
        await ws.send('{"op": "ping"}')  # no resume: live events flow at once
        assert (await recv_json(ws))["type"] == "bridge:pong"
        for i in range(60):
            body = f'{{"type": "invented:{i}", "data": {{}}}}'.encode()
            reply = await request(bridge.port, "POST", "/api/dashboard/emit-event", body)
            assert reply.status == 202
        misfit = b'{"type": "reserva:creada", "data": {"reserva": {"id": "1"}}}'
        for _ in range(3):
            reply = await request(bridge.port, "POST", "/api/dashboard/emit-event", misfit)
            assert reply.status == 202
        # Every event was counted once the last one reached a client.
        received = [(await recv_json(ws))["type"] for _ in range(63)]
        assert received[-1] == "reserva:creada"
        stats = (
            await request(bridge.port, "GET", "/api/dashboard/stats", headers=operator())
        ).json()
        metrics = (await request(bridge.port, "GET", "/metrics", headers=operator())).body.decode()
    by_type = stats["events"]["byType"]
    assert len(by_type) == 20 + 2  # 20 invented names, "(other)", and the catalog's type
    assert by_type[OTHER] == 40
    assert stats["events"]["untypedByType"]["reserva:creada"] == 3
    received = [
        line for line in metrics.splitlines() if line.startswith("bridge_events_received_total{")
    ]
    assert len(received) == 22
    assert 'bridge_events_untyped_total{reason="misfit",type="reserva:creada"} 3.0' in metrics
    assert 'bridge_events_untyped_total{reason="unknown",type="(other)"} 40.0' in metrics
    misfits = [r for r in caplog.records if "does not fit its model" in r.getMessage()]
    assert len(misfits) == 1  # once per type, not once per event
    assert "reserva.id: Input should be a valid integer" in misfits[0].getMessage()
    assert '"1"' not in misfits[0].getMessage()  # the reason, never the values sent
