"""The ``event-bridge`` command line."""

from __future__ import annotations

import json

import click

from schemas import event_schema

__all__ = ["main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="event-bridge")
def main() -> None:
    """Push live events from Django to browsers through RabbitMQ.

    Django enqueues typed events; each bridge instance consumes them and sends
    them over WebSocket to the browsers allowed to see them.
    """


@main.command()
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
