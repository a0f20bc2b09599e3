"""Who may connect: JWT tokens."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

import jwt

from bridge.router import Principal

__all__ = ["MONITOR_SCOPE", "Authenticator", "Unauthorized"]

_ALGORITHM = "HS256"

#: The ``scope`` claim of an operator's token: it sees every event (the dashboard).
MONITOR_SCOPE = "monitor"


class Unauthorized(Exception):
    """A token that is missing, forged, expired or malformed; the message says which."""


class Authenticator:
    """Checks and issues the bridge's tokens: HS256 with claims ``sub``, ``roles``, ``exp``."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def verify(self, token: str) -> Principal:
        """The principal a token names; raises :class:`Unauthorized` saying why not."""
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[_ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized("token signature is not valid") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token not valid: {exc}") from exc
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("token claim 'roles' must be a list of strings")
        monitor = claims.get("scope") == MONITOR_SCOPE
        return Principal(user=str(claims["sub"]), roles=frozenset(roles), monitor=monitor)

    def issue(
        self, user: str, roles: Iterable[str], *, ttl: timedelta, monitor: bool = False
    ) -> str:
        """A token for ``user`` with ``roles``, valid for ``ttl``; a monitor sees every event."""
        claims: dict[str, object] = {
            "sub": user,
            "roles": sorted(roles),
            "exp": datetime.now(UTC) + ttl,
        }
        if monitor:
            claims["scope"] = MONITOR_SCOPE
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)
