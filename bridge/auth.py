"""Who may connect: JWT tokens."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import jwt

from bridge.exceptions import Unauthorized
from bridge.router import Principal
from schemas.payload import CHANNEL_HINT, CHANNEL_NAME
from schemas.protocol import (
    CHANNEL_CLAIM,
    CHANNEL_PATTERN_CLAIM,
    JWT_ALGORITHM,
    MONITOR_SCOPE,
    subscription_claims,
    token_claims,
)

__all__ = ["MAX_TOKEN_LIFETIME", "Authenticator"]


#: How far ahead a token's ``exp`` may be, by default: a day.
MAX_TOKEN_LIFETIME = timedelta(hours=24)

#: Channel patterns one token may list: a token is at most 8 KiB anyway.
MAX_CHANNEL_PATTERNS = 256


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
        claims = self._claims(token, ["exp", "sub"])
        if CHANNEL_CLAIM in claims:
            raise Unauthorized(
                "a subscription token does not open a connection: send it in "
                "{op: subscribe, channel, token}"
            )
        roles = _strings(claims, "roles", "a list of strings")
        channels = _strings(
            claims,
            CHANNEL_PATTERN_CLAIM,
            f"a list of at most {MAX_CHANNEL_PATTERNS} channel names or patterns",
            most=MAX_CHANNEL_PATTERNS,
        )
        monitor = claims.get("scope") == MONITOR_SCOPE
        return Principal(
            user=str(claims["sub"]),
            roles=frozenset(roles),
            monitor=monitor,
            expires=float(claims["exp"]),
            channels=tuple(channels),
        )

    def verify_subscription(self, token: str, user: str | None) -> str:
        """The channel a subscription token allows to ``user``'s connections (``None``:
        an anonymous one); raises :class:`Unauthorized` saying why not."""
        claims = self._claims(token, ["exp"])
        if CHANNEL_CLAIM not in claims:
            raise Unauthorized(
                f"not a subscription token (no {CHANNEL_CLAIM!r} claim): ask the backend "
                "for one (issue_subscription_token, event-bridge token --subscription)"
            )
        channel = claims[CHANNEL_CLAIM]
        if not isinstance(channel, str) or not CHANNEL_NAME.fullmatch(channel):
            raise Unauthorized(f"claim {CHANNEL_CLAIM!r} must be a channel name: {CHANNEL_HINT}")
        if "sub" in claims and str(claims["sub"]) != user:
            raise Unauthorized("it was issued for another user")
        return channel

    def _claims(self, token: str, required: list[str]) -> dict[str, Any]:
        """The claims of a token signed with the secret, unexpired, within the lifetime."""
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
        expires = float(claims["exp"])
        if expires - time.time() > self._max_lifetime.total_seconds():
            hours = self._max_lifetime.total_seconds() / 3600
            raise Unauthorized(
                f"token lives too long: its exp is more than {hours:g} h ahead "
                "(issue shorter tokens, or raise --max-token-lifetime)"
            )
        return dict(claims)

    def issue(
        self,
        user: str,
        roles: Iterable[str],
        *,
        ttl: timedelta,
        monitor: bool = False,
        channels: Iterable[str] = (),
    ) -> str:
        """A token for ``user`` with ``roles``, valid for ``ttl``; a monitor sees every event.
        It may subscribe to ``channels`` (names, or patterns with ``*``)."""
        claims = token_claims(
            user,
            roles,
            ttl=ttl,
            issuer=self._issuer,
            audience=self._audience,
            monitor=monitor,
            channels=channels,
        )
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def issue_subscription(self, channel: str, user: str | None, *, ttl: timedelta) -> str:
        """A subscription token: ``user``'s connections (any, for ``None``) may subscribe
        to ``channel`` while it is valid."""
        claims = subscription_claims(
            channel, user, ttl=ttl, issuer=self._issuer, audience=self._audience
        )
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)


def _strings(claims: dict[str, Any], name: str, what: str, most: int | None = None) -> list[str]:
    """The claim ``name``, a list of strings (empty when absent); :class:`Unauthorized`
    saying it must be ``what`` otherwise."""
    value = claims.get(name, [])
    if (
        not isinstance(value, list)
        or not all(isinstance(item, str) for item in value)
        or (most is not None and len(value) > most)
    ):
        raise Unauthorized(f"token claim {name!r} must be {what}")
    return value
