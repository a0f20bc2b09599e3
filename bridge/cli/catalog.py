"""``event-bridge schema`` and ``client-types``: the catalog's JSON Schema and TypeScript types."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bridge import typescript
from bridge.cli.group import cli
from bridge.cli.options import catalog_option, named_catalog
from bridge.exceptions import HelperNameError
from schemas import event_schema


@cli.command()
@click.option(
    "--indent",
    type=click.IntRange(min=0),
    default=2,
    show_default=True,
    help="Spaces per level; 0 prints one line.",
)
@catalog_option()
def schema(indent: int, catalog: str | None) -> None:
    """Print the JSON Schema of every event type of the catalog.

    One document, draft 2020-12: a union of the event types told apart by
    their "type" field. Feed it to a type generator for the frontend, e.g.

        event-bridge schema --catalog shop.events > event.schema.json
    """
    document = event_schema(named_catalog(catalog))
    click.echo(json.dumps(document, indent=indent or None, ensure_ascii=False))


@cli.command("client-types")
@catalog_option()
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
        text = typescript.client_types(named_catalog(catalog))
    except HelperNameError as exc:
        raise click.BadParameter(str(exc), param_hint="'--catalog'") from exc
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote {out}", err=True)
