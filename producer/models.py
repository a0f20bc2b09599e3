"""The outbox: events written in the caller's transaction, sent later by the relay.

A row is one validated event, as the JSON its envelope is sent as. It exists
only if the transaction that wrote it committed; the relay
(``manage.py event_bridge_relay``) publishes rows oldest first, with publisher
confirms, and deletes each once RabbitMQ confirmed it.
"""

from __future__ import annotations

from datetime import datetime

from django.db import models
from django.utils import timezone

__all__ = ["OUTBOX_CHANNEL", "OUTBOX_TABLE", "OutboxEvent"]

#: The table's name, fixed so that operators and the PostgreSQL trigger can name it.
OUTBOX_TABLE = "event_bridge_outbox"
#: The PostgreSQL LISTEN/NOTIFY channel an insert notifies when its transaction commits.
OUTBOX_CHANNEL = "event_bridge_outbox"


class OutboxEvent(models.Model):
    """One event waiting to be published: oldest first, by its auto-increment ``id``."""

    id: models.BigAutoField[int, int] = models.BigAutoField(primary_key=True)
    #: The event's own id, which the bridge deduplicates by.
    event_id: models.CharField[str, str] = models.CharField(max_length=128)
    #: The event envelope as JSON, exactly as it will be published.
    body: models.TextField[str, str] = models.TextField()
    created: models.DateTimeField[datetime, datetime] = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = OUTBOX_TABLE
        ordering = ("id",)
        verbose_name = "outbox event"

    def __str__(self) -> str:
        return f"outbox event {self.event_id}"
