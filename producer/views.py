"""The token view: a logged-in user gets a short-lived token for the bridge's ``/ws``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, JsonResponse
from django.utils.module_loading import import_string
from django.views.decorators.http import require_GET

from producer.conf import producer_settings

__all__ = ["roles_of", "token"]


def roles_of(user: object) -> list[str]:
    """The user's roles: ``EVENT_BRIDGE["ROLES"](user)`` if set, else their group names."""
    config = producer_settings()
    if config.roles:
        roles_for = import_string(config.roles)
        return sorted(str(role) for role in roles_for(user))
    groups = getattr(user, "groups", None)
    return sorted(groups.values_list("name", flat=True)) if groups is not None else []


@require_GET
@login_required
def token(request: HttpRequest) -> JsonResponse:
    """``{"token": "…", "url": "ws://…/ws"}`` for the logged-in user."""
    config = producer_settings()
    if not config.jwt_secret:
        return JsonResponse(
            {"error": "EVENT_BRIDGE['JWT_SECRET'] is not set; use the bridge's --jwt-secret"},
            status=503,
        )
    user = request.user
    claims: dict[str, object] = {
        "sub": str(user.pk),
        "roles": roles_of(user),
        "exp": datetime.now(UTC) + timedelta(seconds=config.token_ttl),
    }
    if config.jwt_issuer:
        claims["iss"] = config.jwt_issuer
    if config.jwt_audience:
        claims["aud"] = config.jwt_audience
    issued = jwt.encode(claims, config.jwt_secret, algorithm="HS256")
    return JsonResponse({"token": issued, "url": config.bridge_url})
