"""``event-bridge token``: a client token, or the dashboard's link, from the bridge's secret."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import click

from bridge.auth import Authenticator
from bridge.cli.group import cli
from bridge.cli.options import claim_options, read_secret, split, warn_of_secrets_in_ps
from bridge.config import Settings
from schemas.payload import CHANNEL_HINT, CHANNEL_NAME


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
@claim_options("of the token, if the bridge checks one")
@click.option("--user", default="operator", show_default=True, help="The user the token names.")
@click.option("--roles", default="", metavar="A,B", help="The token's roles.")
@click.option(
    "--channels",
    default="",
    metavar="A,B",
    help="Channels the connection may subscribe to: names, or patterns with * (order:*).",
)
@click.option(
    "--subscription",
    metavar="CHANNEL",
    help="Print a subscription token for this one channel instead (for --user's "
    "connections; with --user '' for any connection).",
)
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
    channels: str,
    subscription: str | None,
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
        BRIDGE_JWT_SECRET=... event-bridge token --user 7 --channels 'order:*'
        BRIDGE_JWT_SECRET=... event-bridge token --user 7 --subscription order:42
    """
    secret = read_secret("jwt_secret", jwt_secret, jwt_secret_file)
    if not secret:
        raise click.UsageError("give the bridge's secret: BRIDGE_JWT_SECRET or --jwt-secret-file")
    warn_of_secrets_in_ps("jwt_secret")
    authenticator = Authenticator(secret, issuer=jwt_issuer, audience=jwt_audience)
    if subscription is not None:
        if monitor or channels or dashboard:
            raise click.UsageError(
                "--subscription makes a token for one channel: leave out --monitor, "
                "--channels and --dashboard"
            )
        if not CHANNEL_NAME.fullmatch(subscription):
            raise click.UsageError(f"--subscription {subscription!r}: {CHANNEL_HINT}")
        lifetime = timedelta(seconds=ttl)
        click.echo(authenticator.issue_subscription(subscription, user or None, ttl=lifetime))
        return
    try:
        issued = authenticator.issue(
            user,
            split(roles),
            ttl=timedelta(seconds=ttl),
            monitor=monitor,
            channels=split(channels),
        )
    except ValueError as exc:
        raise click.UsageError(f"--channels: {exc}") from exc
    if dashboard:
        if not monitor:
            raise click.UsageError("the dashboard needs a monitor token: add --monitor")
        click.echo(f"{dashboard.rstrip('/')}/dashboard.html#token={issued}")
    else:
        click.echo(issued)
