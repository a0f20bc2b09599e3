"""The outbox in Django's admin: read-only, with its backlog at the top of the list."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from producer.models import OutboxEvent
from producer.relay import backlog

__all__ = ["OutboxEventAdmin"]


@admin.register(OutboxEvent)
class OutboxEventAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # generic in the stubs only
    """Events waiting to be sent. Only the relay adds and removes them."""

    list_display = ("event_id", "event_type", "created", "waiting")
    readonly_fields = ("event_id", "created", "body")

    @admin.display(description="type")
    def event_type(self, row: OutboxEvent) -> str:
        return str(json.loads(row.body).get("type", "?"))

    @admin.display(description="waiting")
    def waiting(self, row: OutboxEvent) -> str:
        return f"{(timezone.now() - row.created).total_seconds():.0f} s"

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        waiting = backlog()
        if waiting.stuck:
            stuck = f"{waiting}: nothing is sending them; run manage.py event_bridge_relay"
            self.message_user(request, stuck, messages.WARNING)
        else:
            self.message_user(request, str(waiting), messages.INFO)
        return super().changelist_view(request, extra_context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: OutboxEvent | None = None) -> bool:
        return False
