"""The Django side of event-bridge: typed events, sent to RabbitMQ once their transaction commits.

::

    INSTALLED_APPS += ["producer"]
    EVENT_BRIDGE = {"BROKER_URL": "amqp://…", "JWT_SECRET": "…"}

    from producer import WebSocketNotifier, issue_subscription_token, issue_token, model_events

By default each event is a row of the outbox table (:mod:`producer.models`),
written in the caller's transaction; once that commits, this process publishes
it from a background thread (:mod:`producer.sender`), and ``manage.py
event_bridge_relay`` (:mod:`producer.relay`) sweeps what it could not.
``EVENT_BRIDGE["DELIVERY"] = "direct"`` publishes on commit instead.

Publishing itself is :mod:`messaging`, which the bridge shares and which does
not import Django; the names below load Django's parts only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producer.events import model_events
    from producer.notifier import WebSocketNotifier
    from producer.views import issue_subscription_token, issue_token

__all__ = ["WebSocketNotifier", "issue_subscription_token", "issue_token", "model_events"]


def __getattr__(name: str) -> Any:
    # Lazy, so that listing the app in INSTALLED_APPS loads none of Django's models.
    if name == "WebSocketNotifier":
        from producer.notifier import WebSocketNotifier  # noqa: PLC0415

        return WebSocketNotifier
    if name == "model_events":
        from producer.events import model_events  # noqa: PLC0415

        return model_events
    if name in {"issue_token", "issue_subscription_token"}:
        from producer import views  # noqa: PLC0415

        return getattr(views, name)
    raise AttributeError(f"module 'producer' has no attribute {name!r}")
