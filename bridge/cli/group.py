"""The ``event-bridge`` click group, on which every command module registers its commands."""

from __future__ import annotations

import click

__all__ = ["cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="event-bridge")
def cli() -> None:
    """Push live events from Django to browsers through RabbitMQ.

    Django enqueues typed events; each bridge instance consumes them and sends
    them to the browsers allowed to see them, over WebSocket (/ws) or, where a
    proxy breaks WebSocket, Server-Sent Events (/sse).
    """
