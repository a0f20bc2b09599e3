"""The Django side of event-bridge: typed events, sent to RabbitMQ once their transaction commits.

::

    INSTALLED_APPS += ["producer"]
    EVENT_BRIDGE = {"BROKER_URL": "amqp://…", "JWT_SECRET": "…"}

    from producer import WebSocketNotifier, model_events

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

__all__ = ["WebSocketNotifier", "model_events"]


def __getattr__(name: str) -> Any:
    # Lazy, so that ``import producer.publisher`` works without Django settings.
    if name == "WebSocketNotifier":
        from producer.notifier import WebSocketNotifier  # noqa: PLC0415

        return WebSocketNotifier
    if name == "model_events":
        from producer.events import model_events  # noqa: PLC0415

        return model_events
    raise AttributeError(f"module 'producer' has no attribute {name!r}")
