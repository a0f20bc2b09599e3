"""Turn a message from RabbitMQ into an event, or say why it is not one.

Two kinds of message carry events, both JSON:

- a Celery task message, protocol 2: header ``task`` is ``bridge.publish`` and
  the body is ``[args, kwargs, embed]`` with ``args`` exactly ``[event]``;
- a bare event, as :meth:`schemas.Event.to_json` writes it.

Both are read against the bridge's catalog (:class:`~schemas.reader.Reader`).
Anything else raises :class:`~bridge.exceptions.Undecodable`, whose message is
one line fit for a dead-letter header.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge.exceptions import Undecodable
from schemas import Catalog, Event, InvalidEvent, Reader, SchemaError
from schemas.exceptions import FieldError
from schemas.topology import TASK_NAME

__all__ = ["MAX_REASON", "Decoder"]

#: Reasons longer than this are cut: they travel in a message header.
MAX_REASON = 1000

_JSON = "application/json"

# Names for the three parts of a task body, used in error locations.
_TASK_PARTS = ("args", "kwargs", "embed")


class Decoder:
    """Decodes messages against one catalog; lenient or strict as its reader is."""

    def __init__(self, reader: Reader | None = None, *, max_size: int | None = None) -> None:
        self.reader = reader or Reader(Catalog())
        self._max_size = max_size
        # One pass over the body: strict JSON mode reads "2024-11-15" as a date, which
        # validating the decoded Python objects would refuse.
        self._task_body = self.reader.validator(
            lambda event: tuple[tuple[event], dict[str, Any], dict[str, Any]]  # type: ignore[valid-type]
        )

    def decode(self, body: bytes, headers: Mapping[str, object], content_type: str | None) -> Event:
        """The event that a message carries.

        ``headers`` and ``content_type`` are the message's AMQP properties. Raises
        :class:`~bridge.exceptions.Undecodable` saying why when the message is not
        JSON, is a task other than ``bridge.publish``, or does not fit the schema
        (in strict mode, an event type outside the catalog does not); such a
        message should be dead-lettered, never retried.
        """
        _check_content_type(content_type)
        if self._max_size is not None and len(body) > self._max_size:
            raise Undecodable(
                f"a message of {len(body)} bytes is over the bridge's limit of "
                f"{self._max_size} bytes for one event (--max-event-size)"
            )
        task = headers.get("task")
        if task is None:
            return self._bare_event(body)
        return self._task_event(body, _text(task))

    def _bare_event(self, body: bytes) -> Event:
        try:
            return self.reader.event(body)
        except SchemaError as exc:
            raise Undecodable(_one_line(str(exc))) from exc

    def _task_event(self, body: bytes, task: str) -> Event:
        if task != TASK_NAME:
            raise Undecodable(
                _one_line(f"unknown task {task!r}; only {TASK_NAME!r} carries events")
            )
        try:
            args, _kwargs, _embed = self._task_body.read(body)
            event: Event = self.reader.accept(args[0])
        except InvalidEvent as exc:
            error = InvalidEvent([_in_task(e) for e in exc.errors])
            raise Undecodable(_one_line(f"task {TASK_NAME}: {error}")) from exc
        except SchemaError as exc:
            raise Undecodable(_one_line(f"task {TASK_NAME}: {exc}")) from exc
        return event


def _check_content_type(content_type: str | None) -> None:
    # No content type at all is taken as JSON: the body decides.
    media_type = (content_type or _JSON).partition(";")[0].strip().lower()
    if media_type != _JSON:
        raise Undecodable(f"only JSON is accepted, not content type {content_type!r}")


def _in_task(error: FieldError) -> FieldError:
    # "0.0.data.id" says little; "args.0.data.id" says where to look.
    loc = error["loc"]
    if loc and isinstance(loc[0], int) and loc[0] < len(_TASK_PARTS):
        loc = [_TASK_PARTS[loc[0]], *loc[1:]]
    return FieldError(loc=loc, msg=error["msg"], type=error["type"])


def _text(value: object) -> str:
    # AMQP clients hand header strings over as bytes when they are not UTF-8.
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _one_line(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    return reason
