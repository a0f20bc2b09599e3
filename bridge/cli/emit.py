"""``event-bridge emit``: send one event through RabbitMQ or the bridge's HTTP API."""

from __future__ import annotations

import click

from bridge import emit as emit_module
from bridge.cli.group import cli
from bridge.cli.options import catalog_option, named_catalog, strict_option
from bridge.exceptions import EmitError
from schemas import Reader
from schemas.topology import display_url, is_amqp_url


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
    help="RabbitMQ, for --via amqp: amqp://user:password@host:5672/vhost; a cluster's "
    "nodes separated by ';'.",
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
@catalog_option()
@strict_option()
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
    reader = Reader(named_catalog(catalog), strict=strict_events)
    try:
        draft = emit_module.draft(type_, data, reader=reader, role=role, user=user, id=id_)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if not draft.event.typed:
        why = "does not fit its schema" if type_ in reader.catalog else "is not in the catalog"
        click.echo(f"event-bridge: warning: {type_} {why}: sent untyped, as given", err=True)
    if via == "amqp":
        if broker is None:
            raise click.UsageError(
                "--via amqp needs --broker (or BRIDGE_BROKER_URL); "
                "for a bridge on memory:// use --via http"
            )
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
