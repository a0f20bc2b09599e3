"""Reading events and HTTP bodies against one catalog.

::

    reader = Reader(catalog)                  # lenient, the default
    event = reader.event(raw)                 # an envelope, from RabbitMQ or the history
    event = reader.body("notify-role", raw)   # the body of POST /api/dashboard/notify-role

A type in the catalog whose data fits comes back typed: its ``data`` is the
payload model. In lenient mode anything else that is a well-formed event comes
back untyped, its data as sent: a name the catalog does not know, or a catalog
type whose data does not fit (a *misfit*). Legacy callers send names and
shapes nobody declared, and their events must still arrive. In strict mode
both raise :class:`~schemas.exceptions.InvalidEvent` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Annotated, Any, Generic, Literal, TypeVar, Union

from pydantic import (
    BaseModel,
    Discriminator,
    GetJsonSchemaHandler,
    JsonValue,
    Tag,
    TypeAdapter,
    ValidationError,
    create_model,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from schemas.audience import Everyone
from schemas.catalog import Catalog
from schemas.envelope import DASHBOARD, Event, TypeName, UntypedEvent
from schemas.exceptions import FieldError, InvalidEvent, SchemaError
from schemas.payload import Payload
from schemas.requests import Body, EmitEvent, NotifyRole, NotifyUser, Publish

__all__ = ["UNTYPED", "Reader", "Validator"]

#: The tag of the untyped variant in each union: never an event type (it has a space).
UNTYPED = "untyped event"

T = TypeVar("T")
B = TypeVar("B", bound=BaseModel)


class Validator(Generic[T]):
    """Validates JSON with ``first``; what fails there is tried with ``fallback`` (untyped)."""

    def __init__(
        self, first: TypeAdapter[T], fallback: TypeAdapter[T] | None, tags: Collection[str]
    ) -> None:
        self._first = first
        self._fallback = fallback
        self._tags = tags

    def read(self, raw: bytes | str) -> T:
        """The value ``raw`` holds; :class:`~schemas.exceptions.SchemaError` says why not."""
        try:
            return self._first.validate_json(raw)
        except ValidationError as exc:
            if self._fallback is None:
                raise SchemaError.from_validation(exc, self._tags) from exc
        try:
            return self._fallback.validate_json(raw)
        except ValidationError as exc:
            # Not even an untyped event: the envelope itself is wrong.
            raise SchemaError.from_validation(exc, self._tags) from exc


class _AnyOf:
    """Describes a union as ``anyOf`` in JSON Schema: what fits a catalog type fits the
    untyped variant too, so "exactly one of" (``oneOf``) would refuse every typed body."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        described = handler(schema)
        if "oneOf" in described:
            described["anyOf"] = described.pop("oneOf")
        return described


def _union(typed: dict[str, type[B]], untyped: type[B], tag: str) -> Any:
    """The variants told apart by their ``tag``: a catalog type's own, else the untyped one."""
    known = frozenset(typed)

    def pick(value: Any) -> str:
        name = value.get(tag) if isinstance(value, dict) else getattr(value, tag, None)
        # Anything may come here, {} or [] too: only a known name picks its model.
        return name if isinstance(name, str) and name in known else UNTYPED

    variants = [Annotated[model, Tag(name)] for name, model in typed.items()]
    variants.append(Annotated[untyped, Tag(UNTYPED)])
    union: Any = Union[tuple(variants)]  # noqa: UP007 - built at run time
    return Annotated[union, Discriminator(pick), _AnyOf()]


def _documented(union: Any, typed: list[Any], strict: bool) -> Any:
    # Strict, only the catalog's types are taken: the document says so.
    if not strict or not typed:
        return union
    return typed[0] if len(typed) == 1 else Union[tuple(typed)]  # noqa: UP007


def _bodies(
    catalog: Catalog, base: type[B], *, tag: str, body: str
) -> tuple[dict[str, type[B]], type[B]]:
    """One subclass of ``base`` per catalog type, ``body`` its payload, and the untyped one."""

    def variant(prefix: str, name: Any, data: Any) -> type[B]:
        return create_model(  # type: ignore[call-overload, no-any-return]
            f"{prefix}{base.__name__}",
            __base__=base,
            __module__=base.__module__,
            __doc__=base.__doc__,
            **{tag: (name, ...), body: (data, ...)},
        )

    typed = {
        name: variant(entry.payload.__name__, Literal[name], entry.payload)
        for name, entry in catalog.items()
    }
    return typed, variant("Untyped", TypeName, JsonValue)


class Reader:
    """Reads events and HTTP bodies against ``catalog``; see the module's docstring.

    Building one takes a few milliseconds per type: build it once and keep it.
    """

    def __init__(self, catalog: Catalog, *, strict: bool = False) -> None:
        catalog.freeze()
        self.catalog = catalog
        self.strict = strict
        #: Every name that picks a model inside a union, for error messages.
        self.tags = frozenset(catalog) | {"all", "role", "user", "channel", UNTYPED}
        #: Any event, typed or untyped: an annotation for larger models.
        self.any_event = _union(
            {name: entry.model for name, entry in catalog.items()}, UntypedEvent, "type"
        )
        self._events = self.validator(lambda union: union)
        #: What each endpoint's body may be, as an annotation, for the OpenAPI document.
        self.bodies: dict[str, Any] = {}
        self._bodies: dict[str, tuple[Validator[Body], str]] = {}
        for endpoint, base, tag, body in (
            ("emit-event", EmitEvent, "type", "data"),
            ("notify-role", NotifyRole, "event", "payload"),
            ("notify-user", NotifyUser, "event", "payload"),
            ("publish", Publish, "event", "payload"),
        ):
            typed, untyped = _bodies(catalog, base, tag=tag, body=body)
            union = _union(typed, untyped, tag)
            self._bodies[endpoint] = (self._validator(union, untyped), tag)
            self.bodies[endpoint] = _documented(union, list(typed.values()), strict)
        dashboard = catalog[DASHBOARD].payload if DASHBOARD in catalog else None
        untyped_dashboard = dict[str, JsonValue]
        self._dashboard = self._validator(dashboard or untyped_dashboard, untyped_dashboard)
        union = (
            Annotated[dashboard | untyped_dashboard, _AnyOf()] if dashboard else untyped_dashboard
        )
        self.bodies["update-dashboard"] = _documented(
            union, [dashboard] if dashboard else [], strict
        )

    def validator(self, wrap: Callable[[Any], Any]) -> Validator[Any]:
        """A validator of documents that hold events: ``wrap`` turns the event annotation
        into the document's (``lambda event: tuple[tuple[event], dict[str, Any]]``)."""
        return self._validator(wrap(self.any_event), wrap(UntypedEvent))

    def event(self, raw: bytes | str) -> Event:
        """Read one event; raises :class:`~schemas.exceptions.SchemaError` saying why not."""
        event: Event = self._events.read(raw)
        return self.accept(event)

    def body(self, endpoint: str, raw: bytes | str) -> Event:
        """The event the body of ``POST /api/dashboard/<endpoint>`` asks for.

        Raises :class:`~schemas.exceptions.NotJSON` (answer 400) or
        :class:`~schemas.exceptions.InvalidEvent` (answer 422).
        """
        if endpoint == "update-dashboard":
            data = self._dashboard.read(raw)
            if isinstance(data, Payload):
                return self.accept(Event.of(data, audience=Everyone()))
            return self.accept(Event.untyped(DASHBOARD, data, audience=Everyone()), "(body)")
        validator, tag = self._bodies[endpoint]
        return self.accept(validator.read(raw).to_event(), tag)

    def accept(self, event: Event, field: str = "type") -> Event:
        """``event``, unless it is untyped in strict mode: then :class:`InvalidEvent`."""
        if not self.strict or event.typed:
            return event
        known = ", ".join(repr(name) for name in self.catalog) or "none"
        error = FieldError(
            loc=[] if field == "(body)" else [field],
            msg=f"unknown event type {event.type!r}; known: {known}",
            type="union_tag_invalid",
        )
        raise InvalidEvent([error])

    def _validator(self, first: Any, untyped: Any) -> Validator[Any]:
        fallback = None if self.strict else TypeAdapter(untyped)
        return Validator(TypeAdapter(first), fallback, self.tags)
