"""Who may receive an event: everyone, one role, or one user on every device."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.payload import Name

__all__ = ["Audience", "Everyone", "Role", "User"]

_CONFIG = ConfigDict(strict=True, extra="forbid", frozen=True)


class Everyone(BaseModel):
    """Every connection, anonymous ones included."""

    model_config = _CONFIG

    kind: Literal["all"] = "all"


class Role(BaseModel):
    """Connections whose token carries this role."""

    model_config = _CONFIG

    kind: Literal["role"] = "role"
    role: Name


class User(BaseModel):
    """Every connection of this user (the token's ``sub``)."""

    model_config = _CONFIG

    kind: Literal["user"] = "user"
    user: Name


Audience = Annotated[Everyone | Role | User, Field(discriminator="kind")]
