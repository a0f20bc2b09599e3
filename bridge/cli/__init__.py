"""The ``event-bridge`` command line: the group with every command, and its entry point."""

from __future__ import annotations

import sys

import click

# Importing a command's module registers its commands on the group: serve, the
# catalog's types, and the operator commands (RabbitMQ, one event, a live tail,
# dead letters).
from bridge.cli import catalog, dead_letters, emit, serve, tail, token, topology  # noqa: F401
from bridge.cli.group import cli

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
