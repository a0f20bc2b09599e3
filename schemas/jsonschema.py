"""The JSON Schema of a catalog's events, for frontends and type generators."""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field, TypeAdapter

from schemas.catalog import Catalog
from schemas.envelope import UntypedEvent

__all__ = ["event_schema"]


def event_schema(catalog: Catalog) -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of every typed event of ``catalog`` a browser may receive.

    The ``type`` field tells the variants apart; each variant's ``data`` is
    that type's payload. An empty catalog describes the untyped event, whose
    ``data`` is any JSON value.
    """
    models = [entry.model for entry in catalog.values()] or [UntypedEvent]
    union: Any = Union[tuple(models)]  # noqa: UP007 - built at run time
    if len(models) > 1:
        union = Annotated[union, Field(discriminator="type")]
    schema = TypeAdapter(union).json_schema()
    # Producers may leave out id, timestamp and audience; browsers always get them.
    for model in models:
        definition = schema if len(models) == 1 else schema["$defs"][model.__name__]
        definition["required"] = list(definition["properties"])
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "Event",
        "description": "One event from event-bridge, as a WebSocket client receives it.",
        **schema,
    }
