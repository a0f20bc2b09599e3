"""Errors of the bridge.

::

    BridgeError
    ├── ConfigError          bad configuration: the command exits 2 with this message
    ├── BrokerUnavailable    an event could not be published with a confirm
    └── Undecodable          a message from RabbitMQ is not an event; it is dead-lettered
"""

from __future__ import annotations

__all__ = ["BridgeError", "BrokerUnavailable", "ConfigError", "Undecodable"]


class BridgeError(Exception):
    """Base of the bridge's own errors."""


class ConfigError(BridgeError):
    """The configuration cannot work; the message says what to change."""


class BrokerUnavailable(BridgeError):
    """The broker did not confirm an event: it was not taken, and the caller should know."""


class Undecodable(BridgeError):
    """A message that is not an event; ``str(exc)`` is the reason put in its dead-letter header."""
