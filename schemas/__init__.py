"""The machinery of typed events, shared by the Django producer, the bridge and browsers.

A project declares its own event types in a catalog (see :mod:`schemas.catalog`),
builds events from them and sends them anywhere as JSON::

    from schemas import Event, Reader
    from shop.events import Order, OrderCreated, catalog

    event = Event.of(OrderCreated(order=Order(id=1, total=12.5)))
    assert Reader(catalog).event(event.to_json()) == event

The RabbitMQ names live in :mod:`schemas.topology`, the HTTP bodies in
:mod:`schemas.requests`.
"""

from schemas.audience import Audience, Channel, Everyone, Role, User
from schemas.catalog import Catalog, CatalogError, EventType, load_catalog
from schemas.envelope import DASHBOARD, Event, UntypedEvent
from schemas.exceptions import FieldError, InvalidEvent, NotJSON, SchemaError
from schemas.jsonschema import event_schema
from schemas.payload import Category, ChannelName, Clock, Money, Name, Payload
from schemas.reader import Reader

__all__ = [
    "DASHBOARD",
    "Audience",
    "Catalog",
    "CatalogError",
    "Category",
    "Channel",
    "ChannelName",
    "Clock",
    "Event",
    "EventType",
    "Everyone",
    "FieldError",
    "InvalidEvent",
    "Money",
    "Name",
    "NotJSON",
    "Payload",
    "Reader",
    "Role",
    "SchemaError",
    "UntypedEvent",
    "User",
    "event_schema",
    "load_catalog",
]
