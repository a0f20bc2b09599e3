"""The options and helpers several commands share: catalog, JWT claims, secrets, RabbitMQ."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from kombu import Connection as KombuConnection

from bridge.exceptions import AdminError
from bridge.rabbitadmin.connection import connect
from schemas import Catalog, CatalogError, load_catalog

F = TypeVar("F", bound=Callable[..., Any])


_CATALOG_HELP = (
    "Your project's event types: the module that holds its Catalog, e.g. shop.events "
    "(or shop.events:catalog), importable from the current directory or PYTHONPATH. "
    "Default: none, every event is untyped and delivered as sent."
)


def catalog_option(help_text: str = _CATALOG_HELP) -> Callable[[F], F]:
    return click.option(
        "--catalog", envvar="BRIDGE_CATALOG", show_envvar=True, metavar="MODULE", help=help_text
    )


def strict_option() -> Callable[[F], F]:
    return click.option(
        "--strict-events",
        envvar="BRIDGE_STRICT_EVENTS",
        show_envvar=True,
        is_flag=True,
        help="Refuse events whose type is not in the catalog or whose data does not fit "
        "it (422, or dead-lettered), instead of delivering them as sent.",
    )


def named_catalog(spec: str | None) -> Catalog:
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


def claim_options(what: str) -> Callable[[F], F]:
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


def read_secret(name: str, value: str | None, file: Path | None) -> str | None:
    """A secret from its option, its variable or its file."""
    if value is not None and file is not None:
        flag = "--" + name.replace("_", "-")
        raise click.UsageError(f"give {flag} or {flag}-file, not both")
    if file is not None:
        # A file's last newline is the editor's, not the secret's.
        return file.read_text().rstrip("\r\n")
    return value


def warn_of_secrets_in_ps(*names: str) -> None:
    context = click.get_current_context()
    for name in names:
        if context.get_parameter_source(name) is ParameterSource.COMMANDLINE:
            flag = "--" + name.replace("_", "-")
            click.echo(
                f"warning: {flag} on the command line shows in ps to every user of this "
                f"machine; set BRIDGE_{name.upper()} or {flag}-file instead",
                err=True,
            )


def split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


_BROKER_HELP = (
    "amqp://user:password@host:5672/vhost of RabbitMQ; the nodes of a cluster "
    "separated by ';' (each tried in turn)."
)


def broker_option(help_text: str = _BROKER_HELP) -> Callable[[F], F]:
    return click.option(
        "--broker",
        envvar="BRIDGE_BROKER_URL",
        show_envvar=True,
        required=True,
        metavar="URL",
        help=help_text,
    )


@contextmanager
def rabbit(broker: str) -> Iterator[KombuConnection]:
    try:
        with connect(broker) as connection:
            yield connection
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except AdminError as exc:
        raise click.ClickException(str(exc)) from exc
