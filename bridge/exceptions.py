"""Errors of the bridge.

::

    BridgeError
    ├── ConfigError          bad configuration: the command exits 2 with this message
    ├── BrokerUnavailable    an event could not be published with a confirm
    ├── Undecodable          a message from RabbitMQ is not an event; it is dead-lettered
    ├── Unauthorized         a token that is missing, forged, expired or malformed
    ├── AdminError           an operator command: RabbitMQ unreachable or refusing
    ├── EmitError            `event-bridge emit`: the event was not taken
    ├── TailError            `event-bridge tail`: no connection, or the bridge closed it
    ├── SchemaTooNew         `event-bridge typescript`: a schema it cannot convert
    └── HelperNameError      `event-bridge typescript`: a class that cannot name a helper

Each message says what went wrong in words an operator can act on.
"""

from __future__ import annotations

__all__ = [
    "AdminError",
    "BridgeError",
    "BrokerUnavailable",
    "ConfigError",
    "EmitError",
    "HelperNameError",
    "SchemaTooNew",
    "TailError",
    "Unauthorized",
    "Undecodable",
]


class BridgeError(Exception):
    """Base of the bridge's own errors."""


class ConfigError(BridgeError):
    """The configuration cannot work; the message says what to change."""


class BrokerUnavailable(BridgeError):
    """The broker did not confirm an event: it was not taken, and the caller should know."""


class Undecodable(BridgeError):
    """A message that is not an event; ``str(exc)`` is the reason put in its dead-letter header."""


class Unauthorized(BridgeError):
    """A token that is missing, forged, expired or malformed; the message says which."""


class AdminError(BridgeError):
    """RabbitMQ could not be reached or refused what was asked; the message says why."""


class EmitError(BridgeError):
    """The event was not taken; the message says why."""


class TailError(BridgeError):
    """The connection could not be made or was closed by the bridge; the message says why."""


class SchemaTooNew(BridgeError):
    """The schema uses something the TypeScript converter does not know; extend it."""


class HelperNameError(BridgeError, ValueError):
    """A payload class whose name cannot make a client helper; the message says which."""
