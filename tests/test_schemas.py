"""The schemas accept every payload of the seed as written and reject wrong input clearly.

The seed's types are the example project's catalog, ``api_rest.events``. Strict
readers refuse what does not fit; lenient ones (the default) take it untyped.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

import pytest

from api_rest.events import Reserva, ReservaCreada, catalog
from schemas import (
    Catalog,
    CatalogError,
    Category,
    Event,
    InvalidEvent,
    NotJSON,
    Payload,
    Reader,
    Role,
    SchemaError,
    User,
)
from schemas.topology import routing_key
from tests.support.seed import PYTHON_CALLS, SEED, curls

STRICT = Reader(catalog, strict=True)
LENIENT = Reader(catalog)
parse_event = STRICT.event


def read_emit_event(body: bytes | str) -> Event:
    return STRICT.body("emit-event", body)


def read_update_dashboard(body: bytes | str) -> Event:
    return STRICT.body("update-dashboard", body)


def read_notify_role(body: bytes | str) -> Event:
    return STRICT.body("notify-role", body)


def read_notify_user(body: bytes | str) -> Event:
    return STRICT.body("notify-user", body)


def wire(event: Event) -> dict[str, Any]:
    return json.loads(event.to_json())


def test_the_seed_has_its_five_curl_examples() -> None:
    assert [c.endpoint for c in curls()] == [
        "emit-event",
        "update-dashboard",
        "notify-role",
        "notify-user",
        "emit-event",  # the partial test event of the "Testing" section
    ]


def test_the_catalog_has_every_business_type_of_the_seed() -> None:
    listed = re.findall(r"^- `([a-z]+:[a-z]+)` - ", SEED.read_text(), re.M)
    business = [name for name, t in catalog.items() if t.category is Category.BUSINESS]
    assert listed == business
    assert len(listed) == 9


@pytest.mark.parametrize("curl", curls(), ids=lambda c: c.endpoint)
def test_each_seed_curl_body_becomes_an_event_carrying_it_unchanged(curl: Any) -> None:
    event = wire(STRICT.body(curl.endpoint, curl.body))
    body = curl.json
    match curl.endpoint:
        case "emit-event":
            assert (event["type"], event["data"]) == (body["type"], body["data"])
            assert event["timestamp"] == body["timestamp"]
            assert event["audience"] == {"kind": "all"}
        case "update-dashboard":
            assert (event["type"], event["data"]) == ("dashboard:update", body)
        case "notify-role":
            assert (event["type"], event["data"]) == (body["event"], body["payload"])
            assert event["audience"] == {"kind": "role", "role": body["role"]}
        case "notify-user":
            assert (event["type"], event["data"]) == (body["event"], body["payload"])
            assert event["audience"] == {"kind": "user", "user": body["userId"]}


@pytest.mark.parametrize(("call", "type_", "data"), PYTHON_CALLS)
def test_each_payload_the_seeds_django_code_builds_is_valid(
    call: str, type_: str, data: dict[str, Any]
) -> None:
    audience = {"kind": "role", "role": "proveedor"} if call == "notify_role" else {"kind": "all"}
    sent = {"type": type_, "data": data, "audience": audience}
    event = parse_event(json.dumps(sent))
    assert wire(event)["data"] == data
    assert isinstance(event.data, catalog[type_].payload)


def test_an_event_gets_an_id_a_utc_timestamp_and_everyone_when_left_out() -> None:
    event = parse_event(b'{"type": "reserva:creada", "data": {"reserva": {"id": 1}}}')
    assert event.id
    assert event.timestamp.tzinfo is not None
    assert wire(event)["audience"] == {"kind": "all"}


def test_a_timestamp_without_a_zone_is_utc() -> None:
    body = b'{"type": "reserva:creada", "data": {"reserva": {"id": 1}}, "timestamp": "2024-11-15T14:30:00"}'
    event = read_emit_event(body)
    assert event.timestamp == datetime(2024, 11, 15, 14, 30, tzinfo=UTC)
    assert wire(event)["timestamp"] == "2024-11-15T14:30:00Z"


def test_the_seed_notifiers_own_timestamp_format_is_accepted() -> None:
    stamp = datetime(2024, 11, 15, 14, 30, 0, 123456).isoformat() + "Z"  # as get_timestamp()
    body = {"type": "pago:procesado", "data": {"pago": {"id": 1}}, "timestamp": stamp}
    assert read_emit_event(json.dumps(body)).timestamp.microsecond == 123456


def test_python_payloads_take_djangos_types_and_send_only_what_was_given() -> None:
    reserva = Reserva(
        id=1, fecha=date(2024, 11, 15), hora=time(14, 30), total_estimado=Decimal("50000.50")
    )
    event = Event.of(ReservaCreada(reserva=reserva), audience=User(user="user_123"), id="e-1")
    assert wire(event) == {
        "id": "e-1",
        "type": "reserva:creada",
        "data": {
            "reserva": {
                "id": 1,
                "fecha": "2024-11-15",
                "hora": "14:30:00",
                "totalEstimado": 50000.5,
            }
        },
        "timestamp": wire(event)["timestamp"],
        "audience": {"kind": "user", "user": "user_123"},
    }


@pytest.mark.parametrize(
    ("event", "audience", "key"),
    [
        ({"type": "reserva:creada", "data": {"reserva": {"id": 1}}}, None, "event.reserva.creada"),
        ({"type": "dashboard:update", "data": {}}, None, "dashboard"),
        ({"type": "nueva_solicitud", "data": {"servicioId": 1, "clienteId": 2}},
         Role(role="proveedor"), "role.proveedor"),
        ({"type": "reserva_confirmada", "data": {"reservaId": 1}},
         User(user="user_123"), "user.user_123"),
    ],
)  # fmt: skip
def test_the_routing_key_says_who_the_event_is_for(
    event: dict[str, Any], audience: Role | User | None, key: str
) -> None:
    parsed = parse_event(json.dumps(event))
    assert routing_key(Event.of(parsed.data, audience=audience)) == key


# Wrong input: (body, reader, where, what the message says)
WRONG = [
    pytest.param(b"{not json", read_emit_event, None, "not valid JSON", id="not-json"),
    pytest.param(b"", read_notify_user, None, "not valid JSON", id="empty"),
    pytest.param(b"[1, 2]", read_emit_event, [], "object", id="not-an-object"),
    pytest.param(
        b'{"type": "reserva:borrada", "data": {}}',
        read_emit_event,
        ["type"],
        "unknown event type 'reserva:borrada'; known: 'reserva:creada', 'reserva:actualizada'",
        id="unknown-type",
    ),
    pytest.param(b'{"data": {}}', read_emit_event, ["type"], "Field required", id="no-type"),
    pytest.param(
        b'{"type": "reserva:creada"}', read_emit_event, ["data"], "Field required", id="no-data"
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": "1"}}}',
        read_emit_event,
        ["data", "reserva", "id"],
        "valid integer",
        id="string-for-int",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": true}}}',
        read_emit_event,
        ["data", "reserva", "id"],
        "valid integer",
        id="bool-for-int",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1.5}}}',
        read_emit_event,
        ["data", "reserva", "id"],
        "valid integer",
        id="fraction-for-int",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1, "estado": 3}}}',
        read_emit_event,
        ["data", "reserva", "estado"],
        "valid string",
        id="number-for-string",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1, "totalEstimado": "50000"}}}',
        read_emit_event,
        ["data", "reserva", "totalEstimado"],
        "valid number",
        id="string-for-number",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1, "fecha": "15/11/2024"}}}',
        read_emit_event,
        ["data", "reserva", "fecha"],
        "valid date",
        id="bad-date",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1, "hora": "2:30pm"}}}',
        read_emit_event,
        ["data", "reserva", "hora"],
        "time of day such as '14:30'",
        id="bad-time",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1, "clientId": 3}}}',
        read_emit_event,
        ["data", "reserva", "clientId"],
        "Extra inputs are not permitted",
        id="misspelt-field",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1}}, "timestamp": 1731681000}',
        read_emit_event,
        ["timestamp"],
        "valid datetime",
        id="number-for-timestamp",
    ),
    pytest.param(
        b'{"type": "reserva:creada", "data": {"reserva": {"id": 1}}, "id": "two words"}',
        read_emit_event,
        ["id"],
        "match pattern",
        id="id-with-space",
    ),
    pytest.param(
        b'{"role": "proveedor", "event": "nueva_solicitud", "payload": {"servicioId": 1}}',
        read_notify_role,
        ["payload", "clienteId"],
        "Field required",
        id="missing-payload-field",
    ),
    pytest.param(
        b'{"event": "nueva_solicitud", "payload": {"servicioId": 1, "clienteId": 2}}',
        read_notify_role,
        ["role"],
        "Field required",
        id="no-role",
    ),
    pytest.param(
        b'{"role": "", "event": "nueva_solicitud", "payload": {"servicioId": 1, "clienteId": 2}}',
        read_notify_role,
        ["role"],
        "1 to 128 letters",
        id="empty-role",
    ),
    pytest.param(
        b'{"userId": 123, "event": "reserva_confirmada", "payload": {"reservaId": 1}}',
        read_notify_user,
        ["userId"],
        "valid string",
        id="number-for-user-id",
    ),
    pytest.param(
        b'{"userId": "user 123", "event": "reserva_confirmada", "payload": {"reservaId": 1}}',
        read_notify_user,
        ["userId"],
        "no spaces",
        id="user-id-with-space",
    ),
    pytest.param(
        b'{"services": {"total": "50"}}',
        read_update_dashboard,
        ["services", "total"],
        "valid integer",
        id="dashboard-counter-not-a-number",
    ),
    pytest.param(
        b'["services"]', read_update_dashboard, [], "should be an object", id="dashboard-not-object"
    ),
]


@pytest.mark.parametrize(("body", "read", "loc", "says"), WRONG)
def test_wrong_input_is_rejected_saying_where_and_why(
    body: bytes, read: Any, loc: list[str] | None, says: str
) -> None:
    with pytest.raises(SchemaError) as caught:
        read(body)
    if loc is None:
        assert isinstance(caught.value, NotJSON)
    else:
        assert isinstance(caught.value, InvalidEvent)
        assert [e["loc"] for e in caught.value.errors] == [loc]
    assert says in str(caught.value)


def test_every_wrong_field_is_reported_at_once() -> None:
    body = b'{"type": "reserva:creada", "data": {"reserva": {"id": "1", "fecha": 2}}, "x": 1}'
    with pytest.raises(InvalidEvent) as caught:
        read_emit_event(body)
    assert sorted(e["loc"] for e in caught.value.errors) == [
        ["data", "reserva", "fecha"],
        ["data", "reserva", "id"],
        ["x"],
    ]


@pytest.mark.parametrize(
    ("audience", "loc", "says"),
    [
        (
            {"kind": "team"},
            ["audience", "kind"],
            "unknown kind 'team'; known: 'all', 'role', 'user'",
        ),
        ({"kind": "role"}, ["audience", "role"], "Field required"),
        ({"kind": "user", "user": "a b"}, ["audience", "user"], "no spaces"),
        ({"role": "x"}, ["audience", "kind"], "Field required"),
    ],
)
def test_a_wrong_audience_is_rejected(audience: dict[str, str], loc: list[str], says: str) -> None:
    sent = {"type": "reserva:creada", "data": {"reserva": {"id": 1}}, "audience": audience}
    with pytest.raises(InvalidEvent) as caught:
        parse_event(json.dumps(sent))
    assert [e["loc"] for e in caught.value.errors] == [loc]
    assert says in str(caught.value)


def test_a_new_type_is_one_small_model() -> None:
    catalog = Catalog()

    @catalog.register("factura:emitida", Category.BUSINESS)
    class FacturaEmitida(Payload):
        factura_id: int

    assert catalog["factura:emitida"].payload is FacturaEmitida
    assert catalog["factura:emitida"].category is Category.BUSINESS
    event = Reader(catalog).event(Event.of(FacturaEmitida(factura_id=3)).to_json())
    assert event.type == "factura:emitida"
    assert event.data == FacturaEmitida(factura_id=3)


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("Factura Emitida", "printable ASCII characters without spaces"),
        ("bridge:welcome", "not starting with 'bridge:'"),
        ("x" * 129, "1 to 128"),
        ("reserva:creada", "registered twice"),
    ],
)
def test_a_badly_named_or_repeated_type_fails_at_import(name: str, says: str) -> None:
    catalog = Catalog()
    catalog.register("reserva:creada", Category.BUSINESS)(type("A", (Payload,), {}))
    with pytest.raises(CatalogError, match=says):
        catalog.register(name, Category.BUSINESS)(type("B", (Payload,), {}))


def test_two_payload_classes_of_one_name_are_refused() -> None:
    catalog = Catalog()
    catalog.register("a:one")(type("Same", (Payload,), {}))
    with pytest.raises(CatalogError, match="both have a payload class named Same: rename one"):
        catalog.register("b:two")(type("Same", (Payload,), {}))


def test_a_catalog_in_use_takes_no_more_types() -> None:
    catalog = Catalog()
    Reader(catalog)
    with pytest.raises(CatalogError, match="in use already"):
        catalog.register("late:type")(type("Late", (Payload,), {}))


def test_a_payload_outside_every_catalog_is_not_an_event_type() -> None:
    class Loose(Payload):
        x: int

    with pytest.raises(TypeError, match="register it in your catalog"):
        Event.of(Loose(x=1))


# Lenient reading, the default: what legacy callers send arrives as sent.

UNKNOWN = [
    ("emit-event", {"type": "algo:nuevo", "data": {"cualquier": ["cosa", 1]}}, "data"),
    ("notify-role", {"role": "cliente", "event": "promo", "payload": {"x": 1}}, "payload"),
    ("notify-user", {"userId": "u1", "event": "solo_u1", "payload": [1, 2]}, "payload"),
    ("emit-event", {"type": "Order.Created", "data": "text"}, "data"),
]


@pytest.mark.parametrize(("endpoint", "body", "field"), UNKNOWN, ids=lambda v: str(v)[:20])
def test_a_type_outside_the_catalog_is_taken_untyped_and_refused_when_strict(
    endpoint: str, body: dict[str, Any], field: str
) -> None:
    event = LENIENT.body(endpoint, json.dumps(body))
    assert not event.typed
    assert wire(event)["data"] == body[field]
    with pytest.raises(InvalidEvent, match="unknown event type"):
        STRICT.body(endpoint, json.dumps(body))


def test_a_catalog_type_whose_data_does_not_fit_is_taken_as_sent() -> None:
    body = {"role": "proveedor", "event": "nueva_solicitud", "payload": {"servicioId": 1}}
    event = LENIENT.body("notify-role", json.dumps(body))
    assert (event.type, event.typed, event.data) == ("nueva_solicitud", False, {"servicioId": 1})
    assert wire(event)["audience"] == {"kind": "role", "role": "proveedor"}
    with pytest.raises(InvalidEvent, match="clienteId"):
        STRICT.body("notify-role", json.dumps(body))


def test_an_untyped_event_is_read_back_as_it_was_written() -> None:
    event = Event.untyped("promo", {"a": [1, None, "b"]}, audience=Role(role="cliente"))
    assert LENIENT.event(event.to_json()) == event
    assert Reader(Catalog()).event(event.to_json()) == event


def test_lenient_reading_still_refuses_a_broken_envelope() -> None:
    for body, says in [
        (b'{"type": "bridge:reset", "data": {}}', "not starting with 'bridge:'"),
        (b'{"type": "promo", "data": {}, "id": "two words"}', "match pattern"),
        (b'{"type": "promo"}', "Field required"),
        (b'{"type": "a b", "data": {}}', "without spaces"),
    ]:
        with pytest.raises(InvalidEvent, match=re.escape(says)):
            LENIENT.event(body)


def test_a_dashboard_update_is_typed_only_by_a_catalog_that_has_it() -> None:
    body = b'{"services": {"total": 3}, "otro": true}'
    assert LENIENT.body("update-dashboard", body).typed
    untyped = Reader(Catalog()).body("update-dashboard", body)
    assert (untyped.type, untyped.typed) == ("dashboard:update", False)
    assert wire(untyped)["data"] == {"services": {"total": 3}, "otro": True}
    assert routing_key(untyped) == "dashboard"


def test_untyped_data_nested_too_deep_is_refused_not_a_crash() -> None:
    # Untyped data is any JSON; the parser's depth limit still bounds it.
    deep = b'{"type": "promo", "data": ' + b"[" * 1000 + b"]" * 1000 + b"}"
    with pytest.raises(NotJSON, match="recursion limit exceeded"):
        LENIENT.body("emit-event", deep)
    with pytest.raises(NotJSON, match="recursion limit exceeded"):
        LENIENT.event(deep)
