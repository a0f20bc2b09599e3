"""Messages from RabbitMQ become events, or are refused with a reason fit for a header.

Most tests read strictly, against the seed's catalog, to see each refusal; the
bridge's default, lenient reading, takes what does not fit untyped.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

import pytest
from celery import Celery
from kombu.serialization import dumps

from api_rest.events import Reserva, ReservaCreada, catalog
from bridge.decode import MAX_REASON, Decoder
from bridge.exceptions import Undecodable
from schemas import Catalog, Event, Reader, Role

decode = Decoder(Reader(catalog, strict=True)).decode
lenient = Decoder(Reader(catalog)).decode

EVENT = Event.of(
    ReservaCreada(reserva=Reserva(id=1, estado="confirmada")), audience=Role(role="proveedor")
)


def wire(event: Event) -> dict[str, Any]:
    return json.loads(event.to_json())


def celery_message(*args: Any, task: str = "bridge.publish") -> tuple[bytes, dict[str, Any], str]:
    """Body, headers and content type of the task message Celery itself would send."""
    app = Celery("producer", set_as_current=False)
    message = app.amqp.as_task_v2("task-id", task, args=list(args), kwargs={})
    content_type, _encoding, body = dumps(message.body, serializer="json")
    return body.encode(), message.headers, content_type


def test_a_celery_task_message_decodes_to_its_event() -> None:
    body, headers, content_type = celery_message(wire(EVENT))
    assert headers["task"] == "bridge.publish"
    assert content_type == "application/json"
    assert decode(body, headers, content_type) == EVENT


def test_dates_in_a_task_message_are_read_from_json_text() -> None:
    # A date is a string in JSON: only strict JSON-mode validation accepts it.
    reserva = Reserva(id=1, estado="confirmada", fecha=date(2024, 11, 15))
    event = Event.of(ReservaCreada(reserva=reserva))
    body, headers, content_type = celery_message(wire(event))
    assert b'"fecha": "2024-11-15"' in body
    assert decode(body, headers, content_type) == event


def test_a_bare_event_decodes() -> None:
    assert decode(EVENT.to_json(), {}, "application/json") == EVENT


def test_a_message_without_content_type_is_read_as_json() -> None:
    assert decode(EVENT.to_json(), {}, None) == EVENT
    assert decode(EVENT.to_json(), {}, "application/json; charset=utf-8") == EVENT


def test_another_task_is_refused_by_name() -> None:
    body, headers, content_type = celery_message(wire(EVENT), task="app.tasks.send_mail")
    with pytest.raises(Undecodable, match=r"unknown task 'app\.tasks\.send_mail'"):
        decode(body, headers, content_type)


def test_pickle_is_refused() -> None:
    with pytest.raises(Undecodable, match=r"only JSON is accepted.*application/x-python-serialize"):
        decode(b"\x80\x04}\x94.", {"task": "bridge.publish"}, "application/x-python-serialize")


def test_a_body_that_is_not_json_is_refused() -> None:
    with pytest.raises(Undecodable, match="not valid JSON"):
        decode(b"not an event", {}, "application/json")
    with pytest.raises(Undecodable, match="not valid JSON"):
        decode(b"[[", {"task": "bridge.publish"}, "application/json")


@pytest.mark.parametrize("args", [[], ["one", "two"]], ids=["none", "two"])
def test_a_task_needs_exactly_one_argument(args: list[Any]) -> None:
    payload = [wire(EVENT) for _ in args]
    body, headers, content_type = celery_message(*payload)
    with pytest.raises(Undecodable, match=r"task bridge\.publish: 1 validation error: args"):
        decode(body, headers, content_type)


def test_an_invalid_event_in_a_task_names_the_field() -> None:
    event = wire(EVENT)
    event["data"]["reserva"]["id"] = "1"
    body, headers, content_type = celery_message(event)
    with pytest.raises(Undecodable) as caught:
        decode(body, headers, content_type)
    assert str(caught.value) == (
        "task bridge.publish: 1 validation error: "
        "args.0.data.reserva.id: Input should be a valid integer"
    )


def test_an_invalid_bare_event_names_the_field_and_the_known_types() -> None:
    event = wire(EVENT) | {"type": "reserva:borrada"}
    with pytest.raises(Undecodable, match="type: unknown event type 'reserva:borrada'; known: "):
        decode(json.dumps(event).encode(), {}, "application/json")


def test_a_reason_is_one_bounded_line() -> None:
    event = wire(EVENT) | {f"extra{i}\nfield": i for i in range(200)}
    with pytest.raises(Undecodable) as caught:
        decode(json.dumps(event).encode(), {}, None)
    reason = str(caught.value)
    assert "\n" not in reason
    assert len(reason) == MAX_REASON
    assert reason.startswith("200 validation errors: ")


def test_the_task_header_may_arrive_as_bytes() -> None:
    body, headers, content_type = celery_message(wire(EVENT))
    assert decode(body, headers | {"task": b"bridge.publish"}, content_type) == EVENT


def test_lenient_decoding_takes_unknown_types_and_misfits_as_sent() -> None:
    unknown = {"type": "promo", "data": {"x": [1, 2]}, "audience": {"kind": "role", "role": "c"}}
    misfit = wire(EVENT) | {"data": {"reserva": {"id": "1"}}}
    for sent in (unknown, misfit):
        body, headers, content_type = celery_message(sent)
        event = lenient(body, headers, content_type)
        assert (event.typed, wire(event)["data"]) == (False, sent["data"])
        assert not Decoder().decode(json.dumps(sent).encode(), {}, None).typed


def test_lenient_decoding_still_refuses_what_is_not_an_event() -> None:
    body, headers, content_type = celery_message({"type": "promo"})
    with pytest.raises(Undecodable, match=r"args\.0\.data: Field required"):
        lenient(body, headers, content_type)
    with pytest.raises(Undecodable, match="not starting with 'bridge:'"):
        Decoder(Reader(Catalog())).decode(b'{"type": "bridge:pong", "data": {}}', {}, None)


def test_strict_decoding_refuses_a_type_outside_the_catalog_in_a_task() -> None:
    body, headers, content_type = celery_message({"type": "promo", "data": {}})
    with pytest.raises(Undecodable, match=r"task bridge\.publish: .*unknown event type 'promo'"):
        decode(body, headers, content_type)
