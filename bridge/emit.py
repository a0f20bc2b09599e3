"""Build one event from the command line and send it through RabbitMQ or the bridge's HTTP API."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bridge.exceptions import EmitError
from messaging.publisher import Publisher, PublishError
from schemas import DASHBOARD, Event, InvalidEvent, NotJSON, Reader

__all__ = ["Draft", "draft", "send_amqp", "send_http"]


@dataclass(frozen=True)
class Draft:
    """An event checked against the schemas, with the HTTP request that would carry it."""

    event: Event
    endpoint: str
    body: bytes


def draft(
    type_: str,
    data: str,
    *,
    reader: Reader,
    role: str | None = None,
    user: str | None = None,
    id: str | None = None,
) -> Draft:
    """The event of type ``type_`` with ``data`` (JSON text) for everyone, ``role`` or ``user``.

    ``reader`` checks it against the catalog, as the bridge would. Raises
    :class:`ValueError` saying which fields are wrong.
    """
    try:
        payload: Any = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the data is not JSON: {exc}") from exc
    if role is not None:
        endpoint, body = "notify-role", {"role": role, "event": type_, "payload": payload}
    elif user is not None:
        endpoint, body = "notify-user", {"userId": user, "event": type_, "payload": payload}
    elif type_ == DASHBOARD:
        endpoint, body = "update-dashboard", payload
    else:
        endpoint, body = "emit-event", {"type": type_, "data": payload}
        if id is not None:
            body["id"] = id
    raw = json.dumps(body).encode()
    try:
        event = reader.body(endpoint, raw)
    except InvalidEvent as exc:
        raise ValueError(f"{type_} does not fit: {_errors(exc, endpoint)}") from exc
    except NotJSON as exc:  # pragma: no cover - json.dumps wrote it
        raise ValueError(str(exc)) from exc
    if id is not None and event.id != id:
        # Only emit-event's body takes an id: give it to the others' envelope.
        envelope = json.loads(event.to_json())
        try:
            event = reader.event(json.dumps({**envelope, "id": id}))
        except InvalidEvent as exc:
            raise ValueError(f"--id {id!r}: {exc}") from exc
    return Draft(event, endpoint, raw)


def _errors(exc: InvalidEvent, endpoint: str) -> str:
    # Name fields as the user wrote them: the data is "data", whatever the endpoint calls it.
    lines = []
    for error in exc.errors:
        loc = [str(part) for part in error["loc"]]
        if endpoint == "update-dashboard":
            loc = ["data", *loc]
        elif loc[:1] == ["payload"]:
            loc[0] = "data"
        elif loc[:1] == ["event"]:
            loc[0] = "type"
        lines.append(f"{'.'.join(loc) or '(data)'}: {error['msg']}")
    return "; ".join(lines)


def send_amqp(broker_url: str, event: Event, *, timeout: float = 5.0) -> None:
    """Publish ``event`` as a Celery task message and wait for RabbitMQ's confirm."""
    publisher = Publisher(broker_url, timeout=timeout)
    try:
        publisher.publish(event)
    except PublishError as exc:
        raise EmitError(str(exc)) from exc
    finally:
        publisher.close()


def send_http(
    base_url: str, draft: Draft, *, api_key: str | None = None, timeout: float = 10.0
) -> str:
    """POST the draft to the bridge at ``base_url``; the id it answers with."""
    if urlsplit(base_url).scheme not in {"http", "https"}:
        raise ValueError(f"--url must be an http:// or https:// URL, not {base_url!r}")
    url = f"{base_url.rstrip('/')}/api/dashboard/{draft.endpoint}"
    headers = {"content-type": "application/json"}
    if api_key:
        headers["x-api-key"] = api_key
    request = urllib.request.Request(url, data=draft.body, headers=headers, method="POST")  # noqa: S310 - scheme checked
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise EmitError(f"{url} answered {exc.code}: {_reason(exc)}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise EmitError(f"cannot reach {url}: {reason}") from exc
    return str(answer["id"])


def _reason(exc: urllib.error.HTTPError) -> str:
    try:
        body = exc.read()
        error = json.loads(body).get("error")
    except (OSError, ValueError, AttributeError):
        return str(exc.reason)
    return str(error or exc.reason)
