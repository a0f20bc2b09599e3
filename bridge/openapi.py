"""The OpenAPI document of the HTTP API, generated from the same pydantic models."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from schemas import Reader

__all__ = ["openapi"]

_REF = "#/components/schemas/{model}"

_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "detail": {"type": "array"}},
    "required": ["error"],
}

_ERROR_REF = {"$ref": _REF.format(model="Error")}

#: Every ``/api/dashboard/*`` operation may answer this (health and metrics never do).
_TOO_MANY = {
    "description": "Over the caller's rate limit (per address, or for the API key).",
    "headers": {
        "Retry-After": {
            "description": "Seconds to wait before the next request.",
            "required": True,
            "schema": {"type": "integer", "minimum": 1},
        }
    },
    "content": {"application/json": {"schema": _ERROR_REF}},
}

_SUMMARIES = {
    "emit-event": "Send a business event to every connection.",
    "update-dashboard": "Replace the live dashboard; new connections get the latest.",
    "notify-role": "Send an event to every connection whose token has the role.",
    "notify-user": "Send an event to every connection of one user.",
    "publish": "Send an event to the connections subscribed to one channel.",
}


def openapi(
    version: str, reader: Reader, *, api_key: bool = False, public_reads: bool = False
) -> dict[str, Any]:
    """OpenAPI 3.1 for ``/api/*``: every request body and event is ``reader``'s catalog's own.

    With ``api_key`` the POST endpoints require the key; without, it is optional.
    The reads need a bearer (a token or the key) unless ``public_reads``.
    """
    components: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    security: list[dict[str, list[str]]] = [{"apiKey": []}, {"bearer": []}]
    if not api_key:
        security.insert(0, {})
    for name, body in reader.bodies.items():
        post = _post(name, _schema(TypeAdapter(body), components))
        paths[f"/api/dashboard/{name}"] = {"post": {**post, "security": security}}
    events = _schema(TypeAdapter(list[reader.any_event]), components)  # type: ignore[name-defined]
    reads: list[dict[str, list[str]]] = [{}] if public_reads else [{"bearer": []}]
    history = _get("The recent events the caller may see, oldest first.", events)
    stats = _get("Connections by role, events by type, dashboard (for operators).")
    paths["/api/dashboard/history"] = {"get": {**history, "security": reads}}
    paths["/api/dashboard/stats"] = {"get": {**stats, "security": reads}}
    paths["/api/health"] = {
        "get": {
            "summary": "Whether events flow: 503 while the broker is unreachable.",
            "responses": {"200": _json("Healthy."), "503": _json("The broker is unreachable.")},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "event-bridge", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                "bearer": {"type": "http", "scheme": "bearer"},
            },
        },
    }


def _schema(adapter: TypeAdapter[Any], components: dict[str, Any]) -> dict[str, Any]:
    schema = adapter.json_schema(ref_template=_REF)
    components.update(schema.pop("$defs", {}))
    return schema


def _post(name: str, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "summary": _SUMMARIES[name],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "202": _json(
                "RabbitMQ confirmed the event.",
                {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]},
            ),
            "400": _json("The body is not JSON.", _ERROR_REF),
            "401": _json("The API key is missing or wrong.", _ERROR_REF),
            "413": _json("The body is too large.", _ERROR_REF),
            "422": _json(
                "The body does not fit; detail lists each field.",
                _ERROR_REF,
            ),
            "429": _TOO_MANY,
            "503": _json("The event was not taken.", _ERROR_REF),
        },
    }


def _get(summary: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    responses = {
        "200": _json("OK.", schema),
        "401": _json("No credentials, or a token that is not valid.", _ERROR_REF),
        "403": _json("A client token, where a monitor token or the API key is needed.", _ERROR_REF),
        "429": _TOO_MANY,
    }
    return {"summary": summary, "responses": responses}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    content = {"application/json": {"schema": schema or {"type": "object"}}}
    return {"description": description, "content": content}
