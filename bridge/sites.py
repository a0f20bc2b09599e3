"""Which sites may talk to the bridge: the host a request names, the origin a browser sends.

A page on ``evil.example`` whose name the attacker points at 127.0.0.1 (DNS
rebinding) is, to the browser, on the same origin as a bridge it reaches
there: same-origin checks alone would let it in. So every request must name
a host the bridge serves: an IP address or ``localhost`` (no attacker's DNS
can answer for them), a name in ``--allowed-hosts``, or the host of an origin
in ``--allowed-origins``. Then a page may use the bridge from its own origin,
and from the origins configured.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["Sites", "hostname"]


@dataclass(frozen=True)
class Sites:
    """The hosts and browser origins one bridge accepts."""

    #: Host names served besides IP addresses and localhost; ``"*"``: any.
    hosts: frozenset[str] = frozenset()
    #: Browser origins allowed besides the page's own; ``"*"``: any.
    origins: frozenset[str] = frozenset()
    #: The names served: ``hosts``, localhost and the allowed origins' hosts.
    names: frozenset[str] = field(init=False)

    def __post_init__(self) -> None:
        of_origins = {hostname(urlsplit(origin).netloc) for origin in self.origins}
        names = self.hosts | {"localhost"} | {n for n in of_origins if n is not None}
        object.__setattr__(self, "names", frozenset(names))

    def host_refusal(self, host: str | None) -> str | None:
        """Why a request naming ``host`` (its ``Host`` header) is refused, or ``None``."""
        if "*" in self.hosts:
            return None
        name = hostname(host)
        if name is None:
            return "send a Host header naming this bridge"
        if name in self.names or _is_address(name):
            return None
        return f"host {name!r} is not served here: add it to --allowed-hosts"

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Whether a browser on ``origin`` may use a bridge it reached as ``host``.

        No ``Origin`` (servers, scripts) is always allowed; the host is checked apart.
        """
        if origin is None:
            return True
        if "*" in self.origins or origin.rstrip("/").lower() in self.origins:
            return True
        return host is not None and urlsplit(origin).netloc.lower() == host.lower()


def hostname(host: str | None) -> str | None:
    """The name in a ``Host`` header, lower case, without its port; ``None`` if malformed."""
    if not host or not _HOST.fullmatch(host):
        return None
    return urlsplit("//" + host).hostname or None


#: A name or IPv4 address, or an IPv6 address in brackets, then maybe a port.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def _is_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
