"""The ``event-bridge`` command line."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from kombu import Connection as KombuConnection

from bridge import emit as emit_module
from bridge import rabbitadmin, typescript
from bridge import tail as tail_module
from bridge.app import Bridge, run
from bridge.auth import Authenticator
from bridge.config import Limits, Settings
from bridge.decode import Decoder
from bridge.exceptions import AdminError, ConfigError, EmitError, HelperNameError, TailError
from bridge.logs import configure
from schemas import Catalog, CatalogError, Reader, event_schema, load_catalog
from schemas.topology import Queue, display_url, instance_queue, is_amqp_url

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])


def main() -> None:
    """Entry point: errors in the command line or the settings are one line and exit 2."""
    try:
        code = cli.main(standalone_mode=False)
    except click.ClickException as exc:
        click.echo(f"event-bridge: error: {exc.format_message()}", err=True)
        sys.exit(exc.exit_code)
    except click.Abort:
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="event-bridge")
def cli() -> None:
    """Push live events from Django to browsers through RabbitMQ.

    Django enqueues typed events; each bridge instance consumes them and sends
    them over WebSocket to the browsers allowed to see them.
    """


_CATALOG_HELP = (
    "Your project's event types: the module that holds its Catalog, e.g. shop.events "
    "(or shop.events:catalog), importable from the current directory or PYTHONPATH. "
    "Default: none, every event is untyped and delivered as sent."
)


def _catalog_option(help_text: str = _CATALOG_HELP) -> Callable[[F], F]:
    return click.option(
        "--catalog", envvar="BRIDGE_CATALOG", show_envvar=True, metavar="MODULE", help=help_text
    )


def _strict_option() -> Callable[[F], F]:
    return click.option(
        "--strict-events",
        envvar="BRIDGE_STRICT_EVENTS",
        show_envvar=True,
        is_flag=True,
        help="Refuse events whose type is not in the catalog or whose data does not fit "
        "it (422, or dead-lettered), instead of delivering them as sent.",
    )


def _catalog(spec: str | None) -> Catalog:
    """The catalog ``spec`` names, or an empty one; a bad one is a usage error (exit 2)."""
    if not spec:
        return Catalog()
    # As uvicorn does: a module beside where the command runs is importable.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return load_catalog(spec)
    except CatalogError as exc:
        raise click.BadParameter(str(exc), param_hint="'--catalog'") from exc
    except Exception as exc:
        raise click.BadParameter(
            f"importing {spec!r} failed: {type(exc).__name__}: {exc}", param_hint="'--catalog'"
        ) from exc


def _claim_options(what: str) -> Callable[[F], F]:
    """``--jwt-issuer`` and ``--jwt-audience``; ``what`` ends their help ("{}": which)."""

    def decorate(command: F) -> F:
        for claim, name in (("aud", "AUDIENCE"), ("iss", "ISSUER")):
            command = click.option(
                f"--jwt-{name.lower()}",
                envvar=f"BRIDGE_JWT_{name}",
                show_envvar=True,
                help=f"The {claim} claim {what.format(name)}.",
            )(command)
        return command

    return decorate


def _default_state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state"
    return Path(base) / "event-bridge"


@cli.command()
@click.option(
    "--host",
    envvar="BRIDGE_HOST",
    show_envvar=True,
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; 0.0.0.0 for every interface.",
)
@click.option(
    "--port",
    envvar="BRIDGE_PORT",
    show_envvar=True,
    type=click.IntRange(0, 65535),
    default=4000,
    show_default=True,
    help="Port for /ws and /api/* (0: any free port).",
)
@click.option(
    "--broker",
    envvar="BRIDGE_BROKER_URL",
    show_envvar=True,
    default="memory://",
    show_default=True,
    help="amqp://user:password@host:5672/vhost for RabbitMQ, or memory:// for one "
    "process with nothing else (events then come only through the HTTP API).",
)
@click.option(
    "--jwt-secret",
    envvar="BRIDGE_JWT_SECRET",
    show_envvar=True,
    help="HS256 secret of client tokens, 32 characters or more. Default: a random one for "
    "this run, and a dashboard link with a token is printed. Prefer the variable or "
    "--jwt-secret-file: a flag's value shows in ps.",
)
@click.option(
    "--jwt-secret-file",
    envvar="BRIDGE_JWT_SECRET_FILE",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the JWT secret (a Docker or Kubernetes secret, say).",
)
@click.option(
    "--max-token-lifetime",
    envvar="BRIDGE_MAX_TOKEN_LIFETIME",
    show_envvar=True,
    type=click.FloatRange(min=1),
    default=Settings.max_token_lifetime,
    show_default=True,
    metavar="SECONDS",
    help="How far ahead a token's exp may be; longer-lived tokens are refused. Open "
    "connections are sent bridge:refresh before their token expires, and closed with "
    "4419 when it does.",
)
@_claim_options("tokens must carry (EVENT_BRIDGE['JWT_{}'] on the Django side)")
@click.option(
    "--api-key",
    envvar="BRIDGE_API_KEY",
    show_envvar=True,
    help="Key the POST endpoints require, 16 characters or more. Prefer the variable or "
    "--api-key-file: a flag's value shows in ps.",
)
@click.option(
    "--api-key-file",
    envvar="BRIDGE_API_KEY_FILE",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the API key.",
)
@click.option(
    "--allow-anonymous",
    envvar="BRIDGE_ALLOW_ANONYMOUS",
    show_envvar=True,
    is_flag=True,
    help="Accept clients without a token; they get only events for everyone.",
)
@click.option(
    "--public-reads",
    envvar="BRIDGE_PUBLIC_READS",
    show_envvar=True,
    is_flag=True,
    help="Serve /api/dashboard/history (events for everyone), /api/dashboard/stats and "
    "/metrics without credentials, as the seed did. Default: a token (history: what it may "
    "see; stats and metrics: a monitor token) or the API key, as 'Authorization: Bearer'.",
)
@click.option(
    "--history-size",
    envvar="BRIDGE_HISTORY_SIZE",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Recent events kept for clients that resume.",
)
@click.option(
    "--allowed-origins",
    envvar="BRIDGE_ALLOWED_ORIGINS",
    show_envvar=True,
    help="Comma-separated browser origins that may connect and publish besides the "
    "bridge's own pages, e.g. https://app.example.com; * for any.",
)
@click.option(
    "--allowed-hosts",
    envvar="BRIDGE_ALLOWED_HOSTS",
    show_envvar=True,
    help="Comma-separated host names this bridge answers to, besides IP addresses, "
    "localhost and the hosts of --allowed-origins, e.g. bridge,events.example.com; * for "
    "any (only behind a proxy that checks Host). Other names get 400: a web page cannot "
    "reach the bridge through a name it controls (DNS rebinding).",
)
@click.option(
    "--instance",
    envvar="BRIDGE_INSTANCE",
    show_envvar=True,
    help="Name of this instance and of its RabbitMQ queue; keep it stable across "
    "restarts. Default: <hostname>-<port>.",
)
@click.option(
    "--compression",
    envvar="BRIDGE_COMPRESSION",
    show_envvar=True,
    is_flag=True,
    help="Accept permessage-deflate when a client offers it (costs about 2x CPU "
    "and 3x memory per connection).",
)
@click.option(
    "--state-dir",
    envvar="BRIDGE_STATE_DIR",
    show_envvar=True,
    type=click.Path(path_type=Path),
    default=_default_state_dir,
    show_default="~/.local/state/event-bridge",
    help="Where the history is kept across restarts.",
)
@click.option(
    "--api-rate-per-ip",
    envvar="BRIDGE_API_RATE_PER_IP",
    show_envvar=True,
    type=click.FloatRange(min=0),
    default=Limits.api_rate_per_ip,
    show_default=True,
    help="Requests per second one address may make to /api/dashboard/* before it gets "
    "429 (callers with the API key have their own limit); 0: no limit. Behind a "
    "reverse proxy every caller shares the proxy's address.",
)
@click.option(
    "--api-burst-per-ip",
    envvar="BRIDGE_API_BURST_PER_IP",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=Limits.api_burst_per_ip,
    show_default=True,
    help="Requests one address may make at once before --api-rate-per-ip applies.",
)
@click.option(
    "--api-rate-per-key",
    envvar="BRIDGE_API_RATE_PER_KEY",
    show_envvar=True,
    type=click.FloatRange(min=0),
    default=Limits.api_rate_per_key,
    show_default=True,
    help="Requests per second made with the API key, from all addresses together; 0: no limit.",
)
@click.option(
    "--api-burst-per-key",
    envvar="BRIDGE_API_BURST_PER_KEY",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=Limits.api_burst_per_key,
    show_default=True,
    help="Requests made with the API key at once before --api-rate-per-key applies.",
)
@click.option(
    "--max-send-buffer",
    envvar="BRIDGE_MAX_SEND_BUFFER",
    show_envvar=True,
    type=click.IntRange(min=1024),
    default=Limits.max_send_buffer,
    show_default=True,
    metavar="BYTES",
    help="Bytes that may wait for one client beyond its socket's own 256 KiB before it "
    "counts as too slow: it is closed with 1013 and resumes when it reconnects.",
)
@click.option(
    "--max-event-size",
    envvar="BRIDGE_MAX_EVENT_SIZE",
    show_envvar=True,
    type=click.IntRange(min=1024),
    default=Limits.max_event_size,
    show_default=True,
    metavar="BYTES",
    help="Largest event: a larger HTTP body gets 413, a larger message from RabbitMQ "
    "is dead-lettered. Send a link to a large thing, not the thing.",
)
@click.option(
    "--max-queued-bytes",
    envvar="BRIDGE_MAX_QUEUED_BYTES",
    show_envvar=True,
    type=click.IntRange(min=1024 * 1024),
    default=Limits.max_queued_bytes,
    show_default=True,
    metavar="BYTES",
    help="Bytes that may wait for all clients together; past it, clients more than "
    "64 KiB behind are closed with 1013 (they resume when they reconnect).",
)
@click.option(
    "--max-connections-per-ip",
    envvar="BRIDGE_MAX_CONNECTIONS_PER_IP",
    show_envvar=True,
    type=click.IntRange(min=0),
    default=Limits.max_connections_per_ip,
    show_default=True,
    help="Open connections (HTTP and WebSocket) one address may hold; more get 429. "
    "0: no bound, for a bridge behind a reverse proxy, where every browser comes from "
    "the proxy's address and the proxy bounds them.",
)
@click.option(
    "--max-connections",
    envvar="BRIDGE_MAX_CONNECTIONS",
    show_envvar=True,
    type=click.IntRange(min=0),
    default=Limits.max_connections,
    show_default=True,
    help="Open connections in all; more get 503. 0: no bound but the process's open files.",
)
@click.option(
    "--http-request-timeout",
    envvar="BRIDGE_HTTP_REQUEST_TIMEOUT",
    show_envvar=True,
    type=click.FloatRange(min=0.1),
    default=Limits.http_request_timeout,
    show_default=True,
    metavar="SECONDS",
    help="Time a client has to send a whole HTTP request, from its first byte; then 408.",
)
@click.option(
    "--http-idle-timeout",
    envvar="BRIDGE_HTTP_IDLE_TIMEOUT",
    show_envvar=True,
    type=click.FloatRange(min=0.1),
    default=Limits.http_idle_timeout,
    show_default=True,
    metavar="SECONDS",
    help="Time a keep-alive HTTP connection may wait for its next request.",
)
@click.option(
    "--batch-window",
    envvar="BRIDGE_BATCH_WINDOW",
    show_envvar=True,
    type=click.FloatRange(min=0.001, max=10),
    default=Limits.batch_window,
    show_default=True,
    metavar="SECONDS",
    help="How long a ?batch=1 connection's events may wait to share one frame: shorter "
    "is fresher, longer costs less CPU per event.",
)
@_catalog_option()
@_strict_option()
def serve(
    host: str,
    port: int,
    broker: str,
    jwt_secret: str | None,
    jwt_secret_file: Path | None,
    max_token_lifetime: float,
    jwt_issuer: str | None,
    jwt_audience: str | None,
    api_key: str | None,
    api_key_file: Path | None,
    allow_anonymous: bool,
    public_reads: bool,
    history_size: int,
    allowed_origins: str | None,
    allowed_hosts: str | None,
    instance: str | None,
    compression: bool,
    state_dir: Path,
    api_rate_per_ip: float,
    api_burst_per_ip: int,
    api_rate_per_key: float,
    api_burst_per_key: int,
    max_send_buffer: int,
    max_event_size: int,
    max_queued_bytes: int,
    max_connections_per_ip: int,
    max_connections: int,
    http_request_timeout: float,
    http_idle_timeout: float,
    batch_window: float,
    catalog: str | None,
    strict_events: bool,
) -> None:
    """Run one bridge instance until SIGTERM or Ctrl-C.

    Browsers connect to ws://HOST:PORT/ws with a token; GET /api/health says
    whether the broker is reachable. Every option can also be set by its
    environment variable; the flag wins.
    """
    origins = frozenset(o.rstrip("/") for o in _names(allowed_origins)) or None
    jwt_secret = _secret("jwt_secret", jwt_secret, jwt_secret_file)
    api_key = _secret("api_key", api_key, api_key_file)
    try:
        settings = Settings(
            host=host,
            port=port,
            broker_url=broker,
            jwt_secret=jwt_secret or secrets.token_urlsafe(32),
            jwt_secret_generated=jwt_secret is None,
            api_key=api_key,
            allow_anonymous=allow_anonymous,
            history_size=history_size,
            allowed_origins=origins,
            instance=instance or f"{socket.gethostname()}-{port}",
            compression=compression,
            state_dir=state_dir,
            limits=Limits(
                api_rate_per_ip=api_rate_per_ip,
                api_burst_per_ip=api_burst_per_ip,
                api_rate_per_key=api_rate_per_key,
                api_burst_per_key=api_burst_per_key,
                max_send_buffer=max_send_buffer,
                max_event_size=max_event_size,
                max_queued_bytes=max_queued_bytes,
                max_connections_per_ip=max_connections_per_ip,
                max_connections=max_connections,
                http_request_timeout=http_request_timeout,
                http_idle_timeout=http_idle_timeout,
                batch_window=batch_window,
            ),
            catalog=_catalog(catalog),
            catalog_spec=catalog,
            strict_events=strict_events,
            allowed_hosts=_names(allowed_hosts),
            public_reads=public_reads,
            max_token_lifetime=max_token_lifetime,
            jwt_issuer=jwt_issuer,
            jwt_audience=jwt_audience,
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    _warn_of_secrets_in_ps("jwt_secret", "api_key")
    configure()
    asyncio.run(run(settings, _announce))


def _secret(name: str, value: str | None, file: Path | None) -> str | None:
    """A secret from its option, its variable or its file."""
    if value is not None and file is not None:
        flag = "--" + name.replace("_", "-")
        raise click.UsageError(f"give {flag} or {flag}-file, not both")
    if file is not None:
        # A file's last newline is the editor's, not the secret's.
        return file.read_text().rstrip("\r\n")
    return value


def _warn_of_secrets_in_ps(*names: str) -> None:
    context = click.get_current_context()
    for name in names:
        if context.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            click.echo(
                f"warning: {flag} on the command line shows in ps to every user of this "
                f"machine; set BRIDGE_{name.upper()} or {flag}-file instead",
                err=True,
            )


def _names(option: str | None) -> frozenset[str]:
    """A comma-separated option's items, lower case."""
    return frozenset(n.strip().lower() for n in (option or "").split(",") if n.strip())


def _announce(bridge: Bridge) -> None:
    settings = bridge.settings
    embedded = " (embedded, one process)" if settings.broker_url.startswith("memory://") else ""
    auth = "JWT, random secret for this run" if settings.jwt_secret_generated else "JWT"
    if settings.allow_anonymous:
        auth += ", anonymous allowed"
    if settings.catalog_spec:
        types = f"catalog {settings.catalog_spec} ({len(settings.catalog)} types"
        types += ", others refused)" if settings.strict_events else ", others untyped)"
    else:
        types = "no catalog (every event untyped)"
    click.echo(
        f"event-bridge: instance {settings.instance} on ws://{settings.host}:{bridge.port}/ws, "
        f"broker {display_url(settings.broker_url)}{embedded}, auth {auth}, {types}; "
        f"{_exposure(settings)}"
    )
    if settings.jwt_secret_generated:
        click.echo(f"dashboard: {bridge.dashboard_link()}")


def _exposure(settings: Settings) -> str:
    """What the running mode lets others do, said plainly for the startup line."""
    local = settings.host in _LOOPBACK
    where = "anyone on this machine" if local else f"anyone who can reach {settings.host}"
    publish = (
        "publishing needs the API key"
        if settings.api_key
        else f"publishing open to {where} (no --api-key)"
    )
    reads = "reads open to all (--public-reads)" if settings.public_reads else "reads need a token"
    origins = ", ".join(sorted(settings.allowed_origins or ())) or "none"
    hosts = ", ".join(["IP addresses", "localhost", *sorted(settings.allowed_hosts)])
    return f"{publish}, {reads}, other origins: {origins}, hosts: {hosts}"


_LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@cli.command()
@click.option(
    "--indent",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Spaces per level; 0 prints one line.",
)
@_catalog_option()
def schema(indent: int, catalog: str | None) -> None:
    """Print the JSON Schema of every event type of the catalog.

    One document, draft 2020-12: a union of the event types told apart by
    their "type" field. Feed it to a type generator for the frontend, e.g.

        event-bridge schema --catalog shop.events > event.schema.json
    """
    document = event_schema(_catalog(catalog))
    click.echo(json.dumps(document, indent=indent or None, ensure_ascii=False))


@cli.command("client-types")
@_catalog_option()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write it to this file instead of printing it.",
)
def client_types_command(catalog: str | None, out: Path | None) -> None:
    """Print the TypeScript types of the browser client for a catalog.

    The same client.d.ts a bridge started with this --catalog serves at
    /client.d.ts, for a frontend built without a bridge running: handlers of
    your event types are checked against their payloads, and names outside the
    catalog still get untyped events. Without --catalog every event is untyped.
    For example:

    \b
        event-bridge client-types --catalog shop.events --out src/bridge/client.d.ts
    """
    try:
        text = typescript.client_types(_catalog(catalog))
    except HelperNameError as exc:
        raise click.BadParameter(str(exc), param_hint="'--catalog'") from exc
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)


# Operator commands: RabbitMQ, one event, a live tail, dead letters.

_BROKER_HELP = "amqp://user:password@host:5672/vhost of RabbitMQ."


def _broker_option(help_text: str = _BROKER_HELP) -> Callable[[F], F]:
    return click.option(
        "--broker",
        envvar="BRIDGE_BROKER_URL",
        show_envvar=True,
        required=True,
        metavar="URL",
        help=help_text,
    )


@contextmanager
def _rabbit(broker: str) -> Iterator[KombuConnection]:
    try:
        with rabbitadmin.connect(broker) as connection:
            yield connection
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except AdminError as exc:
        raise click.ClickException(str(exc)) from exc


def _instance_queue(instance: str | None) -> Queue | None:
    if instance is None:
        return None
    try:
        return instance_queue(instance)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="'--instance'") from exc


@cli.command()
@_broker_option()
@click.option(
    "--instance",
    metavar="NAME",
    help="Also the queue of this bridge instance, bridge.instance.NAME.",
)
@click.option(
    "--check",
    is_flag=True,
    help="Only look: create nothing, list what is missing or different, exit 1 if anything is.",
)
def topology(broker: str, instance: str | None, check: bool) -> None:
    """Declare the RabbitMQ exchanges and queues, or check them.

    Declares the exchanges bridge.events and bridge.dlx and the queue
    bridge.dead (and an instance's queue with --instance) as the bridge and
    the producer do, then prints each with its messages and consumers.
    Declaring is idempotent. With --check nothing is created; bindings are not
    checked, since AMQP cannot read them. For example:

    \b
        event-bridge topology --broker amqp://guest:guest@localhost/ --check
    """
    queue = _instance_queue(instance)
    with _rabbit(broker) as connection:
        try:
            if check:
                entities = rabbitadmin.check_topology(connection, queue)
            else:
                entities = rabbitadmin.declare_topology(connection, queue)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    rows = [["name", "kind", "durable", "arguments", "messages", "consumers", "status"]]
    for entity in entities:
        rows.append(
            [
                entity.name,
                entity.kind,
                "yes" if entity.durable else "no",
                " ".join(f"{k}={v}" for k, v in entity.arguments.items()) or "-",
                "-" if entity.messages is None else str(entity.messages),
                "-" if entity.consumers is None else str(entity.consumers),
                "ok" if entity.problem is None else entity.problem.partition(":")[0],
            ]
        )
    click.echo(rabbitadmin.table(rows))
    problems = [e for e in entities if e.problem is not None]
    for entity in problems:
        click.echo(f"{entity.name}: {entity.problem}", err=True)
    if problems:
        raise click.exceptions.Exit(1)


@cli.command()
@click.argument("type_", metavar="TYPE")
@click.argument("data", metavar="JSON")
@click.option("--role", metavar="R", help="For every connection with this role.")
@click.option("--user", metavar="U", help="For every connection of this user.")
@click.option("--id", "id_", metavar="ID", help="The event id (default: a new UUID).")
@click.option(
    "--via",
    type=click.Choice(["amqp", "http"]),
    default="amqp",
    show_default=True,
    help="amqp: a Celery task message to RabbitMQ, as Django sends; "
    "http: the bridge's POST /api/dashboard/* API.",
)
@click.option(
    "--broker",
    envvar="BRIDGE_BROKER_URL",
    show_envvar=True,
    metavar="URL",
    help="RabbitMQ, for --via amqp: amqp://user:password@host:5672/vhost.",
)
@click.option(
    "--url",
    default="http://127.0.0.1:4000",
    show_default=True,
    help="The bridge, for --via http.",
)
@click.option(
    "--api-key", envvar="BRIDGE_API_KEY", show_envvar=True, help="For --via http, if it needs one."
)
@_catalog_option()
@_strict_option()
def emit(
    type_: str,
    data: str,
    role: str | None,
    user: str | None,
    id_: str | None,
    via: str,
    broker: str | None,
    url: str,
    api_key: str | None,
    catalog: str | None,
    strict_events: bool,
) -> None:
    """Send one event and print its id.

    TYPE is an event type and JSON its data. A type of the catalog is checked
    against its schema before anything is sent: with --strict-events a field
    that does not fit exits 2 and says which, and so does a type outside the
    catalog; without it, such an event is sent as it is, with a warning. The
    event is for everyone unless
    --role or --user says otherwise. It exits 1 when RabbitMQ or the bridge
    does not take it. For example:

    \b
        event-bridge emit reserva:creada '{"reserva": {"id": 7}}' --role admin
        event-bridge emit dashboard:update '{"services": {"total": 3}}' --via http
    """
    if role is not None and user is not None:
        raise click.UsageError("give --role or --user, not both")
    reader = Reader(_catalog(catalog), strict=strict_events)
    try:
        draft = emit_module.draft(type_, data, reader=reader, role=role, user=user, id=id_)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not draft.event.typed:
        why = "does not fit its schema" if type_ in reader.catalog else "is not in the catalog"
        click.echo(f"event-bridge: warning: {type_} {why}: sent untyped, as given", err=True)
    if via == "amqp":
        if broker is None:
            raise click.UsageError("--via amqp needs --broker (or BRIDGE_BROKER_URL)")
        if not is_amqp_url(broker):
            raise click.UsageError(
                f"--broker must be an amqp:// or amqps:// URL, not {display_url(broker)!r}; "
                "for a bridge on memory:// use --via http"
            )
        try:
            emit_module.send_amqp(broker, draft.event)
        except EmitError as exc:
            raise click.ClickException(str(exc)) from exc
        click.echo(draft.event.id)
        return
    if id_ is not None and draft.endpoint != "emit-event":
        raise click.UsageError(
            f"POST /api/dashboard/{draft.endpoint} takes no id: leave out --id or use --via amqp"
        )
    try:
        click.echo(emit_module.send_http(url, draft, api_key=api_key))
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except EmitError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option(
    "--url", default="ws://127.0.0.1:4000/ws", show_default=True, help="The bridge's WebSocket."
)
@click.option("--token", envvar="BRIDGE_TOKEN", show_envvar=True, help="A client token to use.")
@click.option(
    "--jwt-secret",
    envvar="BRIDGE_JWT_SECRET",
    show_envvar=True,
    help="The bridge's secret, to make a token here (ignored when --token is given).",
)
@_claim_options("of the token made here")
@click.option(
    "--user",
    default="event-bridge-tail",
    show_default=True,
    help="With --jwt-secret: the user the token names.",
)
@click.option("--roles", default="", metavar="A,B", help="With --jwt-secret: the token's roles.")
@click.option(
    "--all",
    "monitor",
    is_flag=True,
    help="With --jwt-secret: a monitor token, which sees every event whoever it is for.",
)
@click.option("--types", default="", metavar="T1,T2", help="Print only these event types.")
@click.option("--history", is_flag=True, help="First print the recent events the bridge keeps.")
@click.option("--json", "raw", is_flag=True, help="Print each event as the JSON received.")
def tail(
    url: str,
    token: str | None,
    jwt_secret: str | None,
    jwt_issuer: str | None,
    jwt_audience: str | None,
    user: str,
    roles: str,
    monitor: bool,
    types: str,
    history: bool,
    raw: bool,
) -> None:
    """Print a bridge's events as they arrive, until Ctrl-C.

    Connects to the bridge as a WebSocket client and prints one line per event:
    time, type, audience (all, role:R or user:U) and data. It sees what its
    token may see: give one with --token, or the bridge's --jwt-secret to make
    one here. Without either it connects anonymously. It exits 1 when the
    bridge refuses it or closes the connection. For example:

    \b
        event-bridge tail --jwt-secret "$BRIDGE_JWT_SECRET" --all --types reserva:creada
    """
    renew = None
    if not token and jwt_secret:
        authenticator = Authenticator(jwt_secret, issuer=jwt_issuer, audience=jwt_audience)

        def renew() -> str:
            return authenticator.issue(
                user, _split(roles), ttl=timedelta(hours=12), monitor=monitor
            )

        token = renew()
    try:
        asyncio.run(
            tail_module.tail(
                url,
                token=token,
                renew=renew,
                types=frozenset(_split(types)),
                raw=raw,
                history=history,
                out=click.echo,
                say=lambda text: click.echo(f"tail: {text}", err=True),
            )
        )
    except KeyboardInterrupt:
        return
    except TailError as exc:
        raise click.ClickException(str(exc)) from exc


@cli.command()
@click.option(
    "--jwt-secret",
    envvar="BRIDGE_JWT_SECRET",
    show_envvar=True,
    help="The bridge's secret (prefer the variable or --jwt-secret-file).",
)
@click.option(
    "--jwt-secret-file",
    envvar="BRIDGE_JWT_SECRET_FILE",
    show_envvar=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A file holding the bridge's secret.",
)
@_claim_options("of the token, if the bridge checks one")
@click.option("--user", default="operator", show_default=True, help="The user the token names.")
@click.option("--roles", default="", metavar="A,B", help="The token's roles.")
@click.option(
    "--monitor",
    is_flag=True,
    help="An operator's token: it sees every event, whatever its audience (the dashboard).",
)
@click.option(
    "--ttl",
    type=click.FloatRange(min=1, max=Settings.max_token_lifetime),
    default=3600.0,
    show_default=True,
    metavar="SECONDS",
    help="How long it lives (the bridge refuses more than its --max-token-lifetime).",
)
@click.option(
    "--dashboard",
    metavar="URL",
    help="Print the dashboard's link on the bridge at URL instead, e.g. http://127.0.0.1:4000.",
)
def token(
    jwt_secret: str | None,
    jwt_secret_file: Path | None,
    jwt_issuer: str | None,
    jwt_audience: str | None,
    user: str,
    roles: str,
    monitor: bool,
    ttl: float,
    dashboard: str | None,
) -> None:
    """Print a token for a bridge whose secret you hold.

    A token names a user (claim sub) and roles, and expires; with --monitor it
    has "scope": "monitor" and sees every event, as the dashboard does. A
    bridge started with --jwt-secret prints no dashboard link: make one here.

    \b
        BRIDGE_JWT_SECRET=... event-bridge token --monitor --dashboard http://127.0.0.1:4000
    """
    secret = _secret("jwt_secret", jwt_secret, jwt_secret_file)
    if not secret:
        raise click.UsageError("give the bridge's secret: BRIDGE_JWT_SECRET or --jwt-secret-file")
    _warn_of_secrets_in_ps("jwt_secret")
    authenticator = Authenticator(secret, issuer=jwt_issuer, audience=jwt_audience)
    issued = authenticator.issue(user, _split(roles), ttl=timedelta(seconds=ttl), monitor=monitor)
    if dashboard:
        if not monitor:
            raise click.UsageError("the dashboard needs a monitor token: add --monitor")
        click.echo(f"{dashboard.rstrip('/')}/dashboard.html#token={issued}")
    else:
        click.echo(issued)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


@cli.group("dead-letters")
def dead_letters() -> None:
    """List the messages in bridge.dead, or replay them.

    bridge.dead holds what no bridge could use: messages that are not events
    (the reason is in their x-bridge-error header) and events that failed too
    often or expired in an instance's queue (x-death). Listing leaves them in
    place; replay sends the ones that now decode back to bridge.events. For
    example:

    \b
        event-bridge dead-letters list --limit 10
        event-bridge dead-letters replay --all --dry-run
    """


@dead_letters.command("list")
@_broker_option()
@click.option(
    "--limit",
    type=click.IntRange(min=0),
    default=50,
    show_default=True,
    help="Show at most this many, oldest first; 0 for all.",
)
def list_dead_letters(broker: str, limit: int) -> None:
    """List the dead letters without taking them out of the queue.

    One line each: position, message id, why it died, when, and the start of
    its body. The messages are read unacknowledged and handed back in their
    order, so nothing is lost or reordered; each read counts as a delivery
    (x-delivery-count). For example:

    \b
        event-bridge dead-letters list --broker amqp://guest:guest@localhost/
    """
    with _rabbit(broker) as connection:
        try:
            letters = rabbitadmin.dead_letters(connection, limit or None)
        except AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    if not letters:
        click.echo("bridge.dead is empty")
        return
    rows = [["#", "message id", "reason", "when", "body"]]
    for letter in letters:
        rows.append(
            [
                str(letter.position),
                letter.message_id or "-",
                letter.reason,
                letter.when.strftime("%Y-%m-%d %H:%M:%S") if letter.when else "-",
                _preview(letter.body),
            ]
        )
    click.echo(rabbitadmin.table(rows))


def _preview(body: bytes, size: int = 100) -> str:
    text = " ".join(body.decode("utf-8", errors="replace").split())
    return text if len(text) <= size else text[: size - 1] + "…"


@dead_letters.command("replay")
@_broker_option()
@click.option("--all", "everything", is_flag=True, help="Every message in bridge.dead.")
@click.option(
    "--id", "ids", multiple=True, metavar="ID", help="The message with this id; repeat for more."
)
@click.option("--dry-run", is_flag=True, help="Say what would be replayed; change nothing.")
@_catalog_option("The catalog the bridges run with (their --catalog), to decode as they do.")
@_strict_option()
def replay_dead_letters(
    broker: str,
    everything: bool,
    ids: tuple[str, ...],
    dry_run: bool,
    catalog: str | None,
    strict_events: bool,
) -> None:
    """Send dead letters that now decode back to bridge.events.

    Each selected message is decoded again, as the bridge would: one that is
    still not an event stays in bridge.dead, with the reason printed. The
    others are published to bridge.events with their event's routing key and
    leave bridge.dead only once RabbitMQ confirmed them; one that no queue
    would take stays too. It exits 1 if a selected message was kept. For
    example, after deploying a bridge that knows a new event type:

    \b
        event-bridge dead-letters replay --id 5f0c... --id 9a1b...
    """
    if everything == bool(ids):
        raise click.UsageError("give --all or at least one --id")
    wanted = frozenset(ids)
    decoder = Decoder(Reader(_catalog(catalog), strict=strict_events))
    with _rabbit(broker) as connection:
        try:
            outcomes = rabbitadmin.replay(
                connection,
                lambda letter: everything or letter.message_id in wanted,
                dry_run=dry_run,
                decoder=decoder,
            )
        except AdminError as exc:
            raise click.ClickException(str(exc)) from exc
    kept = 0
    for outcome in outcomes:
        name = outcome.letter.message_id or f"#{outcome.letter.position}"
        if outcome.kept_because is None:
            click.echo(f"replayed {name} to {outcome.routing_key}")
        elif dry_run and outcome.routing_key is not None:
            click.echo(f"would replay {name} to {outcome.routing_key}")
        else:
            kept += 1
            click.echo(f"kept {name}: {outcome.kept_because}")
    missing = wanted - {o.letter.message_id for o in outcomes}
    for id_ in sorted(missing):
        kept += 1
        click.echo(f"not found {id_}: no message with this id in bridge.dead")
    if not outcomes and not missing:
        click.echo("bridge.dead is empty")
    if kept:
        raise click.exceptions.Exit(1)
