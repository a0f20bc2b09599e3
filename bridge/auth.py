"""Who may connect: JWT tokens."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta

import jwt

from bridge.exceptions import Unauthorized
from bridge.router import Principal
from schemas.protocol import JWT_ALGORITHM, MONITOR_SCOPE, token_claims

__all__ = ["MAX_TOKEN_LIFETIME", "Authenticator"]


#: How far ahead a token's ``exp`` may be, by default: a day.
MAX_TOKEN_LIFETIME = timedelta(hours=24)


class Authenticator:
    """Checks and issues the bridge's tokens: HS256 with claims ``sub``, ``roles``, ``exp``.

    A token may live at most ``max_lifetime``: a leaked one is worth little. With
    an ``issuer`` or an ``audience``, tokens must carry that ``iss`` or ``aud``.
    """

    def __init__(
        self,
        secret: str,
        *,
        max_lifetime: timedelta = MAX_TOKEN_LIFETIME,
        issuer: str | None = None,
        audience: str | None = None,
    ) -> None:
        self._secret = secret
        self._max_lifetime = max_lifetime
        self._issuer = issuer
        self._audience = audience

    def verify(self, token: str) -> Principal:
        """The principal a token names; raises :class:`Unauthorized` saying why not."""
        required = ["exp", "sub"]
        # (PyJWT also requires iss and aud once it is given an issuer and an audience.)
        required += ["iss"] if self._issuer else []
        required += ["aud"] if self._audience else []
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                issuer=self._issuer,
                audience=self._audience,
                options={"require": required},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise Unauthorized("token signature is not valid") from exc
        except jwt.InvalidAudienceError as exc:
            if self._audience is None:
                # Django sets JWT_AUDIENCE, the bridge was not told: say which side to change.
                raise Unauthorized(
                    "token has an aud claim and this bridge checks none: start it with "
                    "--jwt-audience, or drop EVENT_BRIDGE['JWT_AUDIENCE']"
                ) from exc
            raise Unauthorized(f"token not valid: {exc}") from exc
        except jwt.InvalidTokenError as exc:
            raise Unauthorized(f"token not valid: {exc}") from exc
        roles = claims.get("roles", [])
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized("token claim 'roles' must be a list of strings")
        expires = float(claims["exp"])
        if expires - time.time() > self._max_lifetime.total_seconds():
            hours = self._max_lifetime.total_seconds() / 3600
            raise Unauthorized(
                f"token lives too long: its exp is more than {hours:g} h ahead "
                "(issue shorter tokens, or raise --max-token-lifetime)"
            )
        monitor = claims.get("scope") == MONITOR_SCOPE
        return Principal(
            user=str(claims["sub"]), roles=frozenset(roles), monitor=monitor, expires=expires
        )

    def issue(
        self, user: str, roles: Iterable[str], *, ttl: timedelta, monitor: bool = False
    ) -> str:
        """A token for ``user`` with ``roles``, valid for ``ttl``; a monitor sees every event."""
        claims = token_claims(
            user, roles, ttl=ttl, issuer=self._issuer, audience=self._audience, monitor=monitor
        )
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)
