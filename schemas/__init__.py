"""Typed events shared by the Django producer, the bridge and browsers.

Build an event from a payload and send it anywhere as JSON::

    from schemas import Event, Reserva, ReservaCreada

    event = Event.of(ReservaCreada(reserva=Reserva(id=1, estado="confirmada")))
    event.to_json()

Read one with :func:`parse_event`; the RabbitMQ names live in
:mod:`schemas.topology`, the HTTP bodies in :mod:`schemas.requests`.
"""

from schemas.audience import Audience, Everyone, Role, User
from schemas.catalog import *  # noqa: F403 - the catalog's __all__ is the list of payloads
from schemas.catalog import __all__ as _catalog
from schemas.envelope import Event, parse_event
from schemas.exceptions import FieldError, InvalidEvent, NotJSON, SchemaError
from schemas.jsonschema import event_schema
from schemas.payload import Catalog, Category, Payload

__all__ = [  # noqa: PLE0604 - extended by the catalog's names
    "Audience",
    "Catalog",
    "Category",
    "Event",
    "Everyone",
    "FieldError",
    "InvalidEvent",
    "NotJSON",
    "Payload",
    "Role",
    "SchemaError",
    "User",
    "event_schema",
    "parse_event",
    *_catalog,
]
