from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "shop"

    def ready(self) -> None:
        # Here, not at the top: apps load before models may be imported.
        from producer import model_events  # noqa: PLC0415
        from shop import events  # noqa: PLC0415

        model_events(
            self.get_model("Order"),
            created="order:created",
            updated="order:shipped",
            payload=lambda o: events.OrderCreated(
                order=events.Order(id=o.id, total=o.total, customer_id=o.customer_id)
            ),
        )
