"""The ``event-bridge`` command line."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import socket
import sys
from pathlib import Path

import click

from bridge.app import Bridge, run
from bridge.config import Settings, display_url
from bridge.exceptions import ConfigError
from bridge.logs import configure
from schemas import event_schema

__all__ = ["cli", "main"]


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
    help="HS256 secret of client tokens. Default: a random one for this run, and a "
    "dashboard link with a token is printed.",
)
@click.option(
    "--api-key", envvar="BRIDGE_API_KEY", show_envvar=True, help="Key the POST endpoints require."
)
@click.option(
    "--allow-anonymous",
    envvar="BRIDGE_ALLOW_ANONYMOUS",
    show_envvar=True,
    is_flag=True,
    help="Accept clients without a token; they get only events for everyone.",
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
    help="Comma-separated browser origins that may connect, e.g. "
    "https://app.example.com; * for any. Default: pages from the bridge's own host.",
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
def serve(
    host: str,
    port: int,
    broker: str,
    jwt_secret: str | None,
    api_key: str | None,
    allow_anonymous: bool,
    history_size: int,
    allowed_origins: str | None,
    instance: str | None,
    compression: bool,
    state_dir: Path,
) -> None:
    """Run one bridge instance until SIGTERM or Ctrl-C.

    Browsers connect to ws://HOST:PORT/ws with a token; GET /api/health says
    whether the broker is reachable. Every option can also be set by its
    environment variable; the flag wins.
    """
    origins = None
    if allowed_origins:
        origins = frozenset(o.strip().rstrip("/").lower() for o in allowed_origins.split(","))
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
        )
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from exc
    configure()
    asyncio.run(run(settings, _announce))


def _announce(bridge: Bridge) -> None:
    settings = bridge.settings
    embedded = " (embedded, one process)" if settings.broker_url.startswith("memory://") else ""
    auth = "JWT, random secret for this run" if settings.jwt_secret_generated else "JWT"
    if settings.allow_anonymous:
        auth += ", anonymous allowed"
    click.echo(
        f"event-bridge: instance {settings.instance} on ws://{settings.host}:{bridge.port}/ws, "
        f"broker {display_url(settings.broker_url)}{embedded}, auth {auth}"
    )
    if settings.jwt_secret_generated:
        click.echo(f"dashboard: {bridge.dashboard_link()}")


@cli.command()
@click.option(
    "--indent",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Spaces per level; 0 prints one line.",
)
def schema(indent: int) -> None:
    """Print the JSON Schema of every event.

    One document, draft 2020-12: a union of the event types told apart by
    their "type" field. Feed it to a type generator for the frontend, e.g.

        event-bridge schema > event.schema.json
    """
    click.echo(json.dumps(event_schema(), indent=indent or None, ensure_ascii=False))
