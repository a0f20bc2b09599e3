"""Tokens for the bridge's ``/ws``: :func:`issue_token` for any user, a view for the logged-in,
and :func:`issue_subscription_token` for one channel."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import jwt
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET

from producer.conf import producer_settings
from schemas.payload import CHANNEL_HINT, CHANNEL_NAME
from schemas.protocol import JWT_ALGORITHM, subscription_claims, token_claims

__all__ = ["TokenError", "issue_subscription_token", "issue_token", "roles_of", "token"]


class TokenError(Exception):
    """No token can be made: the message says which setting is missing."""


def roles_of(user: object) -> list[str]:
    """The user's roles: ``EVENT_BRIDGE["ROLES"](user)`` if set, else their group names."""
    config = producer_settings()
    if config.roles:
        roles_for = import_string(config.roles)
        return sorted(str(role) for role in roles_for(user))
    groups = getattr(user, "groups", None)
    return sorted(groups.values_list("name", flat=True)) if groups is not None else []


def issue_token(
    user: object,
    *,
    ttl: float | None = None,
    monitor: bool = False,
    channels: Iterable[str] = (),
) -> str:
    """A token for ``user`` (their primary key and :func:`roles_of`), as the bridge checks it.

    It lives ``ttl`` seconds (default ``EVENT_BRIDGE["TOKEN_TTL"]``, 300) and carries
    ``JWT_ISSUER`` and ``JWT_AUDIENCE`` when set. A ``monitor`` token sees every event
    (the operators' dashboard): give it to staff only. ``channels`` lists the channels
    the connection may subscribe to: names (``"order:42"``) or patterns where ``*``
    stands for any characters (``f"user-feed:{user.pk}:*"``). Raises :class:`TokenError`
    without ``EVENT_BRIDGE["JWT_SECRET"]``, :class:`ValueError` for a pattern that no
    channel could match (a space, say).
    """
    config = producer_settings()
    claims = token_claims(
        _user_id(user),
        roles_of(user),
        ttl=timedelta(seconds=config.token_ttl if ttl is None else ttl),
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        monitor=monitor,
        channels=channels,
    )
    return jwt.encode(claims, _secret(), algorithm=JWT_ALGORITHM)


def issue_subscription_token(user: object | None, channel: str, *, ttl: float | None = None) -> str:
    """A token that lets ``user``'s connections subscribe to ``channel``, once the view
    that issues it has checked that they may see it::

        if request.user.has_perm("shop.view_order", order):
            token = issue_subscription_token(request.user, f"order:{order.pk}")

    The browser sends it with ``subscribe("order:42", handler, {token})``. ``None`` (or
    an anonymous user) issues it for any connection, anonymous ones included. It must
    be used within ``ttl`` seconds (default ``EVENT_BRIDGE["TOKEN_TTL"]``); the
    subscription then lasts as long as the connection. Raises :class:`TokenError`
    without ``EVENT_BRIDGE["JWT_SECRET"]``, :class:`ValueError` for a name that cannot
    be a channel.
    """
    if not CHANNEL_NAME.fullmatch(channel):
        raise ValueError(f"{channel!r} is not a channel name: {CHANNEL_HINT}")
    config = producer_settings()
    anonymous = user is None or getattr(user, "is_anonymous", False)
    claims = subscription_claims(
        channel,
        None if anonymous else _user_id(user),
        ttl=timedelta(seconds=config.token_ttl if ttl is None else ttl),
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
    )
    return jwt.encode(claims, _secret(), algorithm=JWT_ALGORITHM)


def _user_id(user: object) -> str:
    return str(getattr(user, "pk", user))


def _secret() -> str:
    secret = producer_settings().jwt_secret
    if not secret:
        raise TokenError("EVENT_BRIDGE['JWT_SECRET'] is not set; use the bridge's --jwt-secret")
    return secret


@require_GET
def token(request: HttpRequest) -> JsonResponse:
    """``{"token": "…", "url": "ws://…/ws"}`` for the logged-in user; 401 JSON for nobody.

    It is called with ``fetch``: a redirect to the login page would hand the
    script an HTML page, so an anonymous caller gets 401 and says so.
    """
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first: tokens are for logged-in users"}, status=401)
    try:
        issued = issue_token(request.user)
    except TokenError as exc:
        return JsonResponse({"error": str(exc)}, status=503)
    return JsonResponse({"token": issued, "url": producer_settings().bridge_url})
