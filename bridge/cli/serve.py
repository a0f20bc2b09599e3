"""``event-bridge serve``: its options, the startup line it prints, the default state dir."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import resource
import secrets
import socket
import sys
from multiprocessing.connection import Connection
from pathlib import Path

import click

from bridge.app import Bridge, dashboard_link, run
from bridge.cli.group import cli
from bridge.cli.options import (
    catalog_option,
    claim_options,
    named_catalog,
    read_secret,
    strict_option,
    warn_of_secrets_in_ps,
)
from bridge.config import Limits, Settings
from bridge.exceptions import ConfigError
from bridge.logs import configure, tag_records
from bridge.workers import serve_workers
from schemas.topology import display_url

log = logging.getLogger("bridge")

#: Files the process needs beside its connections: RabbitMQ, the history, logs.
_SPARE_FILES = 64


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
    help="Port for /ws, /sse and /api/* (0: any free port).",
)
@click.option(
    "--broker",
    envvar="BRIDGE_BROKER_URL",
    show_envvar=True,
    default="memory://",
    show_default=True,
    help="amqp://user:password@host:5672/vhost for RabbitMQ (the nodes of a cluster "
    "separated by ';': 'amqp://…@a/v;amqp://…@b/v', each tried in turn), or memory:// "
    "for one process with nothing else (events then come only through the HTTP API).",
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
@claim_options("tokens must carry (EVENT_BRIDGE['JWT_{}'] on the Django side)")
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
    help="Recent events kept, in each stream (everyone, each role, each user, each "
    "channel), for clients that resume.",
)
@click.option(
    "--history-ttl",
    envvar="BRIDGE_HISTORY_TTL",
    show_envvar=True,
    type=click.FloatRange(min=1),
    default=Limits.history_ttl,
    show_default=True,
    metavar="SECONDS",
    help="How long an event stays in its stream's history.",
)
@click.option(
    "--history-ids",
    envvar="BRIDGE_HISTORY_IDS",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=Limits.history_ids,
    show_default=True,
    help="Recent events, of every stream together, whose position is kept: a client "
    "may resume after any of them (about 250 bytes each).",
)
@click.option(
    "--history-bytes",
    envvar="BRIDGE_HISTORY_BYTES",
    show_envvar=True,
    type=click.IntRange(min=1024),
    default=Limits.history_bytes,
    show_default=True,
    metavar="BYTES",
    help="Bytes of event JSON the history keeps, every stream together; the oldest go "
    "first (a client that missed them gets bridge:reset naming their stream).",
)
@click.option(
    "--max-channels",
    envvar="BRIDGE_MAX_CHANNELS",
    show_envvar=True,
    type=click.IntRange(min=0),
    default=Limits.max_channels,
    show_default=True,
    help="Channels one connection may subscribe to; more get bridge:refused (0: none).",
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
    help="Open connections (HTTP, WebSocket and event streams) one address may hold; "
    "more get 429. "
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
    help="How long a ?batch=1 connection's events may wait to share one frame (one "
    "message on /sse): shorter "
    "is fresher, longer costs less CPU per event.",
)
@click.option(
    "--workers",
    envvar="BRIDGE_WORKERS",
    show_envvar=True,
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Bridge processes sharing the port (SO_REUSEPORT), one per core is a start. "
    "Each is an instance of its own, named <instance>-<n>, with its own queue and "
    "history, and answers /api/health, stats and /metrics for itself; a worker that "
    "dies is started again. Needs RabbitMQ.",
)
@catalog_option()
@strict_option()
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
    history_ttl: float,
    history_ids: int,
    history_bytes: int,
    max_channels: int,
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
    workers: int,
    catalog: str | None,
    strict_events: bool,
) -> None:
    """Run one bridge instance until SIGTERM or Ctrl-C.

    Browsers connect to ws://HOST:PORT/ws with a token (or, where a proxy breaks
    WebSocket, read http://HOST:PORT/sse); GET /api/health says
    whether the broker is reachable. Every option can also be set by its
    environment variable; the flag wins.
    """
    origins = frozenset(o.rstrip("/") for o in _names(allowed_origins)) or None
    jwt_secret = read_secret("jwt_secret", jwt_secret, jwt_secret_file)
    api_key = read_secret("api_key", api_key, api_key_file)
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
                history_ttl=history_ttl,
                history_ids=history_ids,
                history_bytes=history_bytes,
                max_channels=max_channels,
            ),
            catalog=named_catalog(catalog),
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
    if workers > 1 and settings.broker_url == "memory://":
        raise click.UsageError(
            f"--workers {workers} needs RabbitMQ (--broker amqp://…): with memory:// each "
            "worker would see only the events published to itself"
        )
    warn_of_secrets_in_ps("jwt_secret", "api_key")
    configure()
    _raise_open_files(settings.limits.max_connections)
    try:
        if workers == 1:
            asyncio.run(run(settings, _announce))
            return
        status = serve_workers(
            settings, workers, _run_worker, lambda port: _workers_up(settings, port, workers)
        )
    except OSError as exc:
        if exc.errno not in _LISTEN_ERRORS:
            raise
        where = f"{settings.host}:{settings.port}"
        raise click.ClickException(
            f"cannot listen on {where}: {exc.strerror or exc}; is another bridge running "
            "there? Choose another --port"
        ) from exc
    sys.exit(status)


#: What binding the port can fail with: in use, not ours to take, no such address.
_LISTEN_ERRORS = {errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL}


def _run_worker(settings: Settings, parent: Connection) -> None:
    tag_records(instance=settings.instance)

    def listening(bridge: Bridge) -> None:
        parent.send(bridge.port)
        parent.close()

    asyncio.run(run(settings, listening))


def _workers_up(settings: Settings, port: int, workers: int) -> None:
    names = [f"{settings.instance}-{n}" for n in range(1, workers + 1)]
    shown = ", ".join(names) if workers <= 3 else f"{names[0]} … {names[-1]}"
    _say_started(settings, port, f"instances {shown} ({workers} workers)")


def _raise_open_files(max_connections: int) -> None:
    """Lift the soft limit on open files to the hard one: every connection is a file,
    and the soft limit is often 1,024 while the hard one allows far more."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    files = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if files != soft:
        log.info("raised the open-file limit from %d to %d", soft, files)
    wanted = max_connections + _SPARE_FILES
    if files != resource.RLIM_INFINITY and (max_connections == 0 or files < wanted):
        log.warning(
            "the open-file limit (%d) allows about %d connections, fewer than "
            "--max-connections %s; past it new connections wait and the log says "
            "'out of system resource'. Raise it (ulimit -n, systemd LimitNOFILE=, "
            "docker --ulimit nofile=) to at least %s",
            files,
            files - _SPARE_FILES,
            max_connections or "0 (no bound)",
            wanted if max_connections else "the connections you expect",
        )


def _names(option: str | None) -> frozenset[str]:
    """A comma-separated option's items, lower case."""
    return frozenset(n.strip().lower() for n in (option or "").split(",") if n.strip())


def _announce(bridge: Bridge) -> None:
    _say_started(bridge.settings, bridge.port, f"instance {bridge.settings.instance}")


def _say_started(settings: Settings, port: int, instances: str) -> None:
    embedded = " (embedded, one process)" if settings.broker_url.startswith("memory://") else ""
    auth = "JWT, random secret for this run" if settings.jwt_secret_generated else "JWT"
    if settings.allow_anonymous:
        auth += ", anonymous allowed"
    if settings.catalog_spec:
        count = len(settings.catalog)
        types = f"catalog {settings.catalog_spec} ({count} type{'' if count == 1 else 's'}"
        types += ", others refused)" if settings.strict_events else ", others untyped)"
    else:
        types = "no catalog (every event untyped)"
    click.echo(
        f"event-bridge: {instances} on ws://{settings.host}:{port}/ws "
        f"(and Server-Sent Events on http://{settings.host}:{port}/sse), "
        f"broker {display_url(settings.broker_url)}{embedded}, auth {auth}, {types}; "
        f"{_exposure(settings)}"
    )
    if settings.jwt_secret_generated:
        click.echo(f"dashboard: {dashboard_link(settings, port)}")


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
