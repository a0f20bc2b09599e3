"""The Django side of event-bridge: typed events, sent to RabbitMQ once their transaction commits.

::

    INSTALLED_APPS += ["producer"]
    EVENT_BRIDGE = {"BROKER_URL": "amqp://…", "JWT_SECRET": "…"}

    from producer import WebSocketNotifier, issue_token, model_events

By default each event is a row of the outbox table (:mod:`producer.models`),
written in the caller's transaction, and ``manage.py event_bridge_relay``
(:mod:`producer.relay`) publishes it; ``EVENT_BRIDGE["DELIVERY"] = "direct"``
publishes on commit instead.

The RabbitMQ core (:mod:`producer.publisher`, :mod:`producer.entities`) does
not import Django; the names below load Django only when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from producer.events import model_events
    from producer.notifier import WebSocketNotifier
    from producer.views import issue_token

__all__ = ["WebSocketNotifier", "issue_token", "model_events"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``import producer.publisher`` works without Django settings.
    if name == "WebSocketNotifier":
        from producer.notifier import WebSocketNotifier  # noqa: PLC0415

        return WebSocketNotifier
    if name == "model_events":
        from producer.events import model_events  # noqa: PLC0415

        return model_events
    if name == "issue_token":
        from producer.views import issue_token  # noqa: PLC0415

        return issue_token
    raise AttributeError(f"module 'producer' has no attribute {name!r}")
