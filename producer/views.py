"""Tokens for the bridge's ``/ws``: :func:`issue_token` for any user, a view for the logged-in."""

from __future__ import annotations

from datetime import timedelta

import jwt
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET

from producer.conf import producer_settings
from schemas.protocol import JWT_ALGORITHM, token_claims

__all__ = ["TokenError", "issue_token", "roles_of", "token"]


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


def issue_token(user: object, *, ttl: float | None = None, monitor: bool = False) -> str:
    """A token for ``user`` (their primary key and :func:`roles_of`), as the bridge checks it.

    It lives ``ttl`` seconds (default ``EVENT_BRIDGE["TOKEN_TTL"]``, 300) and carries
    ``JWT_ISSUER`` and ``JWT_AUDIENCE`` when set. A ``monitor`` token sees every event
    (the operators' dashboard): give it to staff only. Raises :class:`TokenError`
    without ``EVENT_BRIDGE["JWT_SECRET"]``.
    """
    config = producer_settings()
    if not config.jwt_secret:
        raise TokenError("EVENT_BRIDGE['JWT_SECRET'] is not set; use the bridge's --jwt-secret")
    claims = token_claims(
        str(getattr(user, "pk", user)),
        roles_of(user),
        ttl=timedelta(seconds=config.token_ttl if ttl is None else ttl),
        issuer=config.jwt_issuer,
        audience=config.jwt_audience,
        monitor=monitor,
    )
    return jwt.encode(claims, config.jwt_secret, algorithm=JWT_ALGORITHM)


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
