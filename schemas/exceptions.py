"""Errors raised when input does not fit the schemas.

::

    SchemaError
    ├── NotJSON        the bytes are not a JSON document
    └── InvalidEvent   JSON that does not fit; ``errors`` says where and why
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TypedDict

from pydantic import ValidationError
from pydantic_core import ErrorDetails

__all__ = ["FieldError", "InvalidEvent", "NotJSON", "SchemaError"]


class FieldError(TypedDict):
    """One reason input was rejected: where (``loc``), what (``msg``), and a stable ``type``."""

    loc: list[str | int]
    msg: str
    type: str


class SchemaError(ValueError):
    """Input that the schemas reject."""

    @classmethod
    def from_validation(cls, exc: ValidationError, tags: Iterable[str]) -> SchemaError:
        """Translate pydantic's error, dropping the union tags it adds to locations.

        ``tags`` are the names that choose a model in a union (event types,
        audience kinds): pydantic puts the chosen one in each location
        (``reserva:creada.data.reserva.id``), which says nothing the input
        did not.
        """
        errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            if error["type"] == "json_invalid":
                return NotJSON(f"not valid JSON: {error['msg']}")
        known = set(tags)
        return InvalidEvent([_field_error(error, known) for error in errors])


class NotJSON(SchemaError):
    """The input is not a JSON document."""


class InvalidEvent(SchemaError):
    """The input is JSON but does not fit the schema; ``errors`` lists each field."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        self.errors = list(errors)
        lines = [f"{'.'.join(map(str, e['loc'])) or '(body)'}: {e['msg']}" for e in self.errors]
        noun = "error" if len(lines) == 1 else "errors"
        super().__init__(f"{len(lines)} validation {noun}: " + "; ".join(lines))


def _field_error(error: ErrorDetails, known: set[str]) -> FieldError:
    loc = [part for i, part in enumerate(error["loc"]) if not _is_tag(error["loc"], i, known)]
    msg = error["msg"]
    if error["type"] == "union_tag_invalid":
        ctx = error.get("ctx", {})
        field = ctx["discriminator"].strip("'")
        noun = "event type" if field in {"type", "event"} else field
        loc = [*loc, field]
        msg = f"unknown {noun} {ctx['tag']!r}; known: {ctx['expected_tags']}"
    elif error["type"] == "union_tag_not_found":
        loc = [*loc, error.get("ctx", {})["discriminator"].strip("'")]
        msg = "Field required"
    return FieldError(loc=loc, msg=msg, type=error["type"])


#: The tags of the audience union: also the names of body fields ("role", "channel"),
#: which are tags only right after "audience".
_AUDIENCE_KINDS = frozenset({"all", "role", "user", "channel"})


def _is_tag(loc: Sequence[str | int], i: int, known: set[str]) -> bool:
    # A tag follows the location of its union: the document itself, an item of
    # a list (a Celery message's arguments) or the audience field.
    if i > 0 and loc[i - 1] == "audience":
        return loc[i] in known
    after_union = i == 0 or isinstance(loc[i - 1], int)
    return after_union and loc[i] in known and loc[i] not in _AUDIENCE_KINDS
