"""``event-bridge tail``: print a bridge's events as they arrive."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import click

from bridge import tail as tail_module
from bridge.auth import Authenticator
from bridge.cli.group import cli
from bridge.cli.options import claim_options, split
from bridge.exceptions import TailError


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
@claim_options("of the token made here")
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
            return authenticator.issue(user, split(roles), ttl=timedelta(hours=12), monitor=monitor)

        token = renew()
    try:
        asyncio.run(
            tail_module.tail(
                url,
                token=token,
                renew=renew,
                types=frozenset(split(types)),
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
