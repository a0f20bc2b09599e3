"""The shop's events: imported by Django and by the bridge, so no Django here."""

from schemas import Catalog, Money, Payload

catalog = Catalog()


class Order(Payload):
    id: int
    total: Money | None = None
    customer_id: int | None = None


@catalog.register("order:created")
class OrderCreated(Payload):
    """An order was placed."""

    order: Order


@catalog.register("order:shipped")
class OrderShipped(Payload):
    """An order left the warehouse."""

    order: Order
