"""The browser client's TypeScript types and its table of event types, from a catalog.

The bridge serves ``/client.d.ts`` and ``/client.js`` made by these from the
catalog it loaded (``--catalog``); ``event-bridge client-types`` writes the same
``client.d.ts`` for a frontend built without a bridge running.

The types come from :func:`schemas.event_schema` and the ``bridge:*`` models in
``schemas/protocol.py``, walked by the small converter below. It knows the
JSON Schema that pydantic writes for these models (objects, ``$ref``,
``anyOf``/``oneOf``, ``const``, arrays, scalars) and raises
:class:`SchemaTooNew` on any keyword it does not know, so a new construct
never turns into ``any`` unnoticed.

Which fields are optional follows what the bridge writes, not what producers
may leave out: in an event's ``data`` a field a producer did not set is left
out, so the schema's ``required`` list holds; everything else (the envelope,
the audience, ``bridge:*`` messages) is written with every field.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import models_json_schema

from bridge.exceptions import HelperNameError, SchemaTooNew
from schemas import Catalog, Category, UntypedEvent, event_schema, protocol
from schemas.audience import Audience

__all__ = ["client_js", "client_types", "helpers"]

#: The audiences' definitions, written as `Audience`.
_AUDIENCES = ("Everyone", "Role", "User", "Channel")

#: The lines around ``client.js``'s table of event types, filled in from the catalog.
BEGIN = "// <event types: filled in from the bridge's catalog when it starts>"
END = "// </event types>"

#: The seed's name for the helper of "reserva:creada", kept as an alias.
SEED_ALIASES = {"onReservaNueva": "reserva:creada"}
#: Names on the client object that helpers must not take.
RESERVED = {"on", "onBusinessEvent", "subscribe", "close", *SEED_ALIASES}

#: Keywords the converter turns into types or deliberately ignores (validation only).
_TYPED = {"type", "properties", "required", "additionalProperties", "items", "$ref"}
_TYPED |= {"anyOf", "oneOf", "const", "enum"}
_IGNORED = {"title", "description", "default", "format", "pattern", "discriminator"}
_IGNORED |= {"minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum"}
_IGNORED |= {"exclusiveMaximum", "minItems", "maxItems", "uniqueItems"}
#: JSON Schema types as TypeScript; no type at all means any JSON value.
_SCALARS: dict[str | None, str] = {"string": "string", "integer": "number", "number": "number"}
_SCALARS |= {"boolean": "boolean", "null": "null", None: "unknown"}
_FORMATS: dict[str | None, str] = {
    "date": "An ISO 8601 date, `YYYY-MM-DD`.",
    "date-time": "An ISO 8601 date and time, in UTC: `2024-11-15T14:30:00Z`.",
}
_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


# JSON Schema to TypeScript


def ts_type(schema: dict[str, Any], aliases: dict[str, str]) -> str:
    """The TypeScript type of one schema; ``aliases`` names some unions ("Everyone | …")."""
    unknown = set(schema) - _TYPED - _IGNORED
    if unknown:
        raise SchemaTooNew(f"unsupported JSON Schema keywords {sorted(unknown)} in {schema}")
    if "$ref" in schema:
        return _ref(schema)
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        return " | ".join(json.dumps(value) for value in values)
    members = schema.get("anyOf", schema.get("oneOf"))
    if members is not None:
        union = " | ".join(_unique(ts_type(member, aliases) for member in members))
        return aliases.get(union, union)
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(ts_type({**schema, "type": k}, aliases) for k in kind)
    if kind in _SCALARS:
        return _SCALARS[kind]
    if kind in {"array", "object"}:
        return _container(schema, aliases)
    raise SchemaTooNew(f"unsupported type {kind!r} in {schema}")


def _container(schema: dict[str, Any], aliases: dict[str, str]) -> str:
    if schema["type"] == "array":
        item = ts_type(schema.get("items", {}), aliases)
        return f"({item})[]" if " | " in item else f"{item}[]"
    if "properties" in schema:
        fields = _fields(schema, aliases, all_present=False)
        return "{ " + " ".join(line.strip() for line in fields) + " }"
    extra = schema.get("additionalProperties", True)
    value = "unknown" if extra is True else ts_type(extra, aliases) if extra else "never"
    return f"Record<string, {value}>"


def interface(
    name: str, schema: dict[str, Any], aliases: dict[str, str], *, all_present: bool
) -> str:
    """``export interface Name { … }`` for an object schema, with its description as JSDoc."""
    if schema.get("type") != "object":
        raise SchemaTooNew(f"{name}: expected an object schema, got {schema}")
    lines = [*_doc(schema.get("description"), ""), f"export interface {name} {{"]
    lines += _fields(schema, aliases, all_present=all_present)
    lines.append("}")
    return "\n".join(lines)


def _fields(schema: dict[str, Any], aliases: dict[str, str], *, all_present: bool) -> list[str]:
    required = set(schema.get("required", ()))
    lines = []
    for prop, spec in schema.get("properties", {}).items():
        key = prop if _IDENTIFIER.fullmatch(prop) else json.dumps(prop)
        optional = "" if all_present or prop in required else "?"
        lines += _doc(spec.get("description") or _FORMATS.get(_format_of(spec)), "  ")
        lines.append(f"  {key}{optional}: {ts_type(spec, aliases)};")
    extra = schema.get("additionalProperties")
    if extra is True:
        lines.append("  /** Other fields may sit beside these. */")
        lines.append("  [key: string]: unknown;")
    elif isinstance(extra, dict):
        lines.append(f"  [key: string]: {ts_type(extra, aliases)};")
    return lines


def _format_of(spec: dict[str, Any]) -> str | None:
    members = spec.get("anyOf", [spec])
    return next((m["format"] for m in members if "format" in m), None)


def _doc(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    text = re.sub(r"``([^`]+)``", r"`\1`", text.strip())  # reST literals to Markdown
    lines = text.splitlines()
    if len(lines) == 1:
        return [f"{indent}/** {lines[0]} */"]
    return [f"{indent}/**", *(f"{indent} * {line}".rstrip() for line in lines), f"{indent} */"]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if "$ref" in schema:
            yield _ref(schema)
        for value in schema.values():
            yield from _refs(value)
    elif isinstance(schema, list):
        for value in schema:
            yield from _refs(value)


def _reachable(defs: dict[str, Any], roots: Iterable[str]) -> set[str]:
    found: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo.extend(_refs(defs[name]))
    return found


# What the bridge sends besides events


def protocol_models() -> list[type[BaseModel]]:
    """The ``bridge:*`` messages of ``schemas/protocol.py``: models whose ``type`` is fixed."""
    found = []
    for name in protocol.__all__:
        model = getattr(protocol, name)
        if isinstance(model, type) and issubclass(model, BaseModel):
            field = model.model_fields.get("type")
            if field is not None and str(field.default).startswith("bridge:"):
                found.append(model)
    return found


# The outputs


def helpers(catalog: Catalog) -> dict[str, str]:
    """The client helper of each event type, by type: ``on`` and its payload's class name.

    "reserva:creada", whose payload is ``ReservaCreada``, gets ``onReservaCreada``.
    Raises :class:`HelperNameError` when a name is one of the client's own members
    (:data:`RESERVED`) or not an identifier. (The catalog refuses two payload
    classes of one name.)
    """
    found: dict[str, str] = {}
    for event_type, entry in catalog.items():
        cls = entry.payload.__name__
        name = "on" + cls
        if not _IDENTIFIER.fullmatch(name):
            raise HelperNameError(
                f"{event_type!r}: its payload class {cls} would give the client helper "
                f"{name!r}, which is not an ASCII identifier; rename the class"
            )
        if name in RESERVED:
            raise HelperNameError(
                f"{event_type!r}: its payload class {cls} would give the client helper "
                f"{name}, which is the client's own ({', '.join(sorted(RESERVED))}); "
                "rename the class"
            )
        found[event_type] = name
    return found


@dataclass(frozen=True)
class Schemas:
    """Everything ``client.d.ts`` is made from, read once."""

    #: Every JSON Schema definition: entities, payloads, audiences, events, messages.
    defs: dict[str, Any]
    #: The event interface of each event type, in catalog order.
    events: dict[str, str]
    #: The definitions found inside some event's ``data``.
    payloads: set[str]
    #: The ``bridge:*`` messages.
    messages: list[type[BaseModel]]
    #: Unions written under a name: "Everyone | Role | User" is "Audience".
    aliases: dict[str, str]

    @classmethod
    def read(cls, catalog: Catalog) -> Schemas:
        defs: dict[str, Any] = {}
        events: dict[str, str] = {}
        if catalog:
            schema = event_schema(catalog)
            defs.update(schema.get("$defs", {}))
            if len(catalog) == 1:  # one model: the schema is that model itself
                (name,) = catalog
                model = catalog[name].model.__name__
                defs[model] = {k: v for k, v in schema.items() if k not in {"$defs", "$schema"}}
                events[name] = model
            else:
                by_ref = {ref: t for t, ref in schema["discriminator"]["mapping"].items()}
                events = {by_ref[member["$ref"]]: _ref(member) for member in schema["oneOf"]}
        data = (_ref(defs[name]["properties"]["data"]) for name in events.values())
        messages = protocol_models()
        # UntypedEvent for the audiences' definitions, which an empty catalog lacks;
        # its own interface is written by hand (its data is `unknown`).
        models: list[type[BaseModel]] = [*messages, UntypedEvent]
        _, extra = models_json_schema([(m, "serialization") for m in models])
        for name, definition in extra.get("$defs", {}).items():
            if name in defs and defs[name] != definition:
                raise SchemaTooNew(f"{name} is both an event schema and a bridge:* message")
            defs[name] = definition
        audiences = TypeAdapter(Audience).json_schema()["oneOf"]
        aliases = {" | ".join(ts_type(member, {}) for member in audiences): "Audience"}
        return cls(defs, events, _reachable(defs, data), messages, aliases)

    def interface(self, name: str) -> list[str]:
        # A field a producer did not set is left out of an event's data; everything
        # else the bridge writes whole.
        all_present = name not in self.payloads
        return [interface(name, self.defs[name], self.aliases, all_present=all_present), ""]

    def payload_of(self, event_type: str) -> str:
        return _ref(self.defs[self.events[event_type]]["properties"]["data"])


def client_types(catalog: Catalog) -> str:
    """The whole text of ``client.d.ts`` for ``catalog``'s event types.

    An empty catalog gives valid types in which every event is an ``UntypedEvent``.
    Raises :class:`HelperNameError` for a payload class that cannot name a helper,
    :class:`SchemaTooNew` for a model this converter cannot write.
    """
    names = helpers(catalog)  # first: a clash is reported before the schema is built
    schemas = Schemas.read(catalog)
    events, messages = schemas.events, schemas.messages
    plain = [n for n in schemas.defs if n not in events.values()]
    plain = [n for n in plain if n not in {m.__name__ for m in messages}]
    # What events hold and the audiences; not UntypedEvent's own (written by hand).
    wanted = _reachable(schemas.defs, [*events.values(), *_AUDIENCES])
    plain = [n for n in plain if n in wanted]
    business = [t for t, e in catalog.items() if e.category is Category.BUSINESS]

    out = [
        _HEADER.strip(),
        "",
        "// Payloads: the `data` of each event type, and what it holds.",
        "",
    ]
    for name in sorted(plain, key=lambda name: name not in schemas.payloads):  # then audiences
        out += schemas.interface(name)
    out += [f"export type Audience = {next(iter(schemas.aliases))};", ""]
    out += ["// Events, as the bridge sends them.", ""]
    for name in events.values():
        out += schemas.interface(name)
    out += [*_UNTYPED_EVENT.strip().splitlines(), ""]
    out += [
        "/** Any event the bridge may send: typed by `type` when the catalog has it. */",
        "export type BridgeEvent =",
        *(f"  | {name}" for name in events.values()),
        "  | UntypedEvent;",
        "",
        "/** Each event type of the catalog's interface, by type name. */",
        "export interface EventMap {",
        *(f"  {json.dumps(t)}: {name};" for t, name in events.items()),
        "}",
        "",
        "export type EventType = keyof EventMap;",
        "",
        "/** The `data` of an event type. */",
        'export type PayloadOf<T extends EventType> = EventMap[T]["data"];',
        "",
        f"export type EventCategory = {' | '.join(json.dumps(c.value) for c in Category)};",
        "",
        "/** The event types of category `business`: what `onBusinessEvent` receives. */",
        "export type BusinessEventType =",
        *(f"  | {json.dumps(t)}" for t in business),
        "  | never;",
        "",
        "export type BusinessEvent = EventMap[BusinessEventType];",
        "",
        "// Messages of the bridge itself.",
        "",
    ]
    for model in messages:
        out += schemas.interface(model.__name__)
    out += [
        _CLIENT_MESSAGES.strip(),
        "",
        "/** Everything `on` may listen to, by type. */",
        "export interface MessageMap extends EventMap {",
        *(f"  {json.dumps(m.model_fields['type'].default)}: {m.__name__};" for m in messages),
        '  "bridge:unauthorized": UnauthorizedMessage;',
        '  "bridge:disconnected": DisconnectedMessage;',
        "}",
        "",
        "/** Any event or `bridge:*` message. */",
        "export type BridgeMessage = MessageMap[keyof MessageMap];",
        "",
        _CLIENT_HEAD.strip(),
    ]
    for alias, event_type in SEED_ALIASES.items():
        if event_type in catalog:
            note = f"The seed's name for `{names[event_type]}`."
            out += _helper(schemas, alias, event_type, note)
    for event_type in catalog:
        out += _helper(schemas, names[event_type], event_type)
    out += [_CLIENT_TAIL.strip("\n"), ""]
    return "\n".join(out)


def _helper(schemas: Schemas, name: str, event_type: str, note: str = "") -> list[str]:
    event = schemas.events[event_type]
    description = (schemas.defs[event].get("description") or "").strip()
    text = f"`{event_type}`" + (f": {description}" if description else "")
    text += f"\n{note}" if note else ""
    handler = f"(data: {schemas.payload_of(event_type)}, event: {event}) => void"
    return [
        "",
        *_doc(f"{text}\n@returns a function that stops the handler.", "  "),
        f"  {name}(handler: {handler}): Unsubscribe;",
    ]


def client_table(catalog: Catalog) -> str:
    """The filled-in section of ``client.js``: every event type, its category and helper."""
    names = helpers(catalog)
    rows = [
        f"  {json.dumps(t)}: {{ category: {json.dumps(e.category.value)}, "
        f"helper: {json.dumps(names[t])} }},"
        for t, e in catalog.items()
    ]
    return "\n".join(
        [
            BEGIN,
            "/**",
            " * Every event type of the bridge's catalog, in catalog order: its category",
            " * and the name of its helper on the client. Other types arrive untyped.",
            " */",
            "export const EVENT_TYPES = Object.freeze({",
            *rows,
            "});",
            END,
        ]
    )


def client_js(template: str, catalog: Catalog) -> str:
    """The text of ``client.js``: its ``template`` (``bridge/static/client.js``) with the
    lines between :data:`BEGIN` and :data:`END` replaced by ``catalog``'s table of types.

    Raises :class:`ValueError` when the template lacks those lines, and
    :class:`HelperNameError` as :func:`helpers` does.
    """
    start, end = template.find(BEGIN), template.find(END)
    if start < 0 or end < start:
        raise ValueError(f"client.js: the lines {BEGIN!r} and {END!r} are missing")
    return template[:start] + client_table(catalog) + template[end + len(END) :]


def _ref(schema: dict[str, Any]) -> str:
    return str(schema["$ref"]).removeprefix("#/$defs/")


_HEADER = """
// Types of client.js, the browser client of event-bridge, for the event types of the
// catalog the bridge loaded. Generated from its pydantic models: do not edit.
// Write it for a build: event-bridge client-types --catalog your.events --out client.d.ts
"""

_UNTYPED_EVENT = """
/**
 * An event whose type is not in the bridge's catalog, or whose data did not fit its
 * model: its data is whatever the producer sent.
 */
export interface UntypedEvent {
  id: string;
  type: string;
  data: unknown;
  /** An ISO 8601 date and time, in UTC: `2024-11-15T14:30:00Z`. */
  timestamp: string;
  audience: Audience;
}
"""

_CLIENT_MESSAGES = """
// Messages of the client itself, so the page can follow the connection.

/**
 * The bridge refused the token (close code 4401), or it expired (4419) and `token`
 * is a string, not a function that gets a new one: the client stopped.
 * Connect again with a new token.
 */
export interface UnauthorizedMessage {
  type: "bridge:unauthorized";
  code: number;
  reason: string;
}

/** The connection was lost; the client tries again after `delay` ms. */
export interface DisconnectedMessage {
  type: "bridge:disconnected";
  /**
   * The close code: 1001 the bridge is restarting, 1006 no answer (or the event stream
   * failed), 1013 the client read too slowly, 4000 the socket went silent.
   */
  code: number;
  reason: string;
  /** Milliseconds until the next attempt. */
  delay: number;
}
"""

_CLIENT_HEAD = """
// The client.

/** Stops a handler; calling it again does nothing. */
export type Unsubscribe = () => void;

export interface ConnectOptions {
  /**
   * The JWT for `/ws`, or a function giving one (called before every attempt, so a
   * short-lived token can be fetched afresh). Leave it out for an anonymous connection.
   */
  token?: string | (() => string | Promise<string>);
  /**
   * `"query"` (default): `?token=` in the URL. `"message"`: sent as `{"op": "auth"}`
   * once the socket opens, which keeps it out of URLs and lets a refused token be
   * told apart (close code 4401) from a bridge that is down.
   */
  tokenIn?: "query" | "message";
  /** Let the bridge put a burst of events in one frame (`?batch=1`). Default true. */
  batch?: boolean;
  /**
   * Milliseconds between `{"op": "ping"}`; a socket from which nothing came for two
   * intervals, while an answer was due, is replaced. Default 15000.
   */
  heartbeat?: number;
  /** First reconnect delay cap in ms, doubling per failed attempt (full jitter). Default 500. */
  minDelay?: number;
  /** Largest reconnect delay cap in ms. Default 30000. */
  maxDelay?: number;
  /** How many recent event ids are remembered to drop duplicates. Default 1000. */
  rememberIds?: number;
  /**
   * `"auto"` (default): a WebSocket, and Server-Sent Events (`/sse`) for the next
   * attempt when one cannot connect, as behind a proxy that breaks WebSocket; back
   * to WebSocket whenever a connection that worked drops. `"websocket"` or `"sse"`:
   * that one only. A stream carries the token as `?token=`.
   */
  transport?: "auto" | "websocket" | "sse";
  /** The event stream's URL; by default the WebSocket URL with its last segment made `sse`. */
  sseUrl?: string;
}

/** A connection to a bridge that reconnects by itself and resumes where it left off. */
export interface Client {
  /**
   * Call `handler` with every event of `type`, or every `bridge:*` message of that
   * type; `"*"` for everything.
   * @returns a function that stops the handler.
   */
  on<T extends keyof MessageMap>(type: T, handler: (message: MessageMap[T]) => void): Unsubscribe;
  on(type: "*", handler: (message: BridgeMessage) => void): Unsubscribe;
  /** An event type outside the catalog: its data is whatever was sent. */
  on<T extends string>(
    type: T & (T extends keyof MessageMap ? never : T),
    handler: (message: UntypedEvent) => void,
  ): Unsubscribe;

  /**
   * Call `handler` with every event of the catalog's category `business`.
   * @returns a function that stops the handler.
   */
  onBusinessEvent(handler: (event: BusinessEvent) => void): Unsubscribe;
"""

_CLIENT_TAIL = """

  /**
   * Receive the events of a channel (`"order:42"`) that the connection's token lists
   * or `options.token` (a subscription token) allows; subscribed again, and resumed,
   * after every reconnect. A refusal arrives as `bridge:refused`.
   * @returns a function that ends the subscription.
   */
  subscribe(
    channel: string,
    handler: (event: BridgeEvent) => void,
    options?: {
      token?: string | (() => string | Promise<string>);
      onPresence?: (message: JoinMessage | LeaveMessage) => void;
    },
  ): Unsubscribe;

  /** Close the connection for good: no more reconnects, no more events. */
  close(): void;
}

/**
 * Connect to a bridge.
 * @param url `ws://host:4000/ws` (`wss://` behind TLS); a path such as `/ws` is taken
 *   relative to the page.
 */
export declare function connect(url: string, options?: ConnectOptions): Client;

/** Every event type of the catalog, with its category and the name of its helper. */
export declare const EVENT_TYPES: {
  readonly [T in EventType]: { readonly category: EventCategory; readonly helper: string };
};
"""
