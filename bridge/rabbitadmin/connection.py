"""A connection to RabbitMQ for an operator command, with confirms, and a channel per step."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast

import amqp
from kombu import Connection
from kombu.exceptions import OperationalError

from bridge.exceptions import AdminError
from schemas.topology import broker_urls, display_url, is_amqp_url

__all__ = ["connect", "open_channel"]


def _checked(url: str) -> str:
    if not is_amqp_url(url):
        raise ValueError(
            f"--broker must be an amqp:// or amqps:// URL, not {display_url(url)!r}: "
            "this command works on RabbitMQ"
        )
    return url


@contextmanager
def connect(url: str, *, timeout: float = 5.0) -> Iterator[Connection]:
    """A connection to RabbitMQ with publisher confirms, or :class:`AdminError` saying why not.

    Raises :class:`ValueError` for a URL that is not ``amqp://`` or ``amqps://``.
    """
    connection = Connection(
        _checked(url), connect_timeout=timeout, transport_options={"confirm_publish": True}
    )
    try:
        try:
            # Each node of a ;-separated list once, in turn, without waiting between.
            connection.ensure_connection(
                max_retries=len(broker_urls(url)) - 1, interval_start=0, interval_step=0
            )
        except (OSError, amqp.AMQPError, OperationalError) as exc:
            raise AdminError(f"cannot connect to {display_url(url)}: {exc}") from exc
        yield connection
    finally:
        with contextlib.suppress(OSError, amqp.AMQPError):
            connection.release()


@contextmanager
def open_channel(connection: Connection) -> Iterator[amqp.Channel]:
    # A channel of its own per step: RabbitMQ closes a channel on any refusal.
    channel = cast(amqp.Channel, connection.channel())
    try:
        yield channel
    finally:
        with contextlib.suppress(OSError, amqp.AMQPError):
            channel.close()
