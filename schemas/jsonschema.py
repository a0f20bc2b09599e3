"""The JSON Schema of events, for frontends and type generators."""

from __future__ import annotations

from typing import Any

from schemas.envelope import EVENT_VARIANTS, EVENTS

__all__ = ["event_schema"]


def event_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of every event a browser may receive.

    The ``type`` field tells the variants apart; each variant's ``data`` is
    that type's payload.
    """
    schema = EVENTS.json_schema()
    # Producers may leave out id, timestamp and audience; browsers always get them.
    for variant in EVENT_VARIANTS.values():
        definition = schema["$defs"][variant.__name__]
        definition["required"] = list(definition["properties"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Event",
        "description": "One event from event-bridge, as a WebSocket client receives it.",
        **schema,
    }
