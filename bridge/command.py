"""The ``event-bridge`` command's entry point, installed with every extra.

A Django project installs ``event-bridge[django]``, which has the command but
not the server's libraries: it says which extra to install rather than show a
traceback.
"""

from __future__ import annotations

import sys

__all__ = ["main"]

#: The top-level modules of the ``server`` extra's libraries.
SERVER_MODULES = frozenset(
    {"aio_pika", "aiormq", "click", "h11", "prometheus_client", "websockets"}
)


def main() -> None:
    try:
        from bridge.cli import main as cli  # noqa: PLC0415 - the server's libraries, if any
    except ModuleNotFoundError as exc:
        if exc.name not in SERVER_MODULES:
            raise
        sys.exit(
            "event-bridge: the bridge and its commands need the server extra "
            f"({exc.name} is not installed): pip install 'event-bridge[server]'"
        )
    cli()
