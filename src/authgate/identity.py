"""Who a request (or a job) acts as: the `Identity` a guard looks at."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["ANONYMOUS", "Grants", "Identity"]


class Grants(Protocol):
    """What an identity's precomputed permissions answer (`PermissionSet`)."""

    grants: frozenset[str]

    def allows(self, permission: str) -> bool: ...


class _NoGrants:
    grants: frozenset[str] = frozenset()

    def allows(self, permission: str) -> bool:
        return False


NO_GRANTS: Grants = _NoGrants()


@dataclass(frozen=True, slots=True)
class Identity:
    """An authenticated user as one request sees it, or the anonymous nobody.

    Compatible with Starlette's conventions: ``is_authenticated`` and ``display_name``
    as on ``request.user``, ``scopes`` as on ``request.auth``.
    """

    username: str = ""
    user_id: str = ""
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    session_id: str = ""
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    is_authenticated: bool = False
    email: str = ""
    full_name: str = ""
    user_version: int = 0
    grants: Grants = field(default=NO_GRANTS, compare=False, repr=False)

    def __call__(self) -> Identity:
        """The identity itself: so ``current_identity()`` (the proxy, called) and an
        identity called alike give an `Identity`, for code written either way."""
        return self

    def can(self, permission: str) -> bool:
        """True when the identity's effective grants cover ``resource:action``."""
        return self.is_authenticated and self.grants.allows(permission)

    def has_role(self, role: str) -> bool:
        """True when the identity holds `role` itself (see `RoleHierarchy.admits` for rank)."""
        return role in self.roles

    @property
    def display_name(self) -> str:
        """The name to show a person (Starlette's ``BaseUser.display_name``)."""
        return self.full_name or self.username

    @property
    def identity(self) -> str:
        """Starlette's ``BaseUser.identity``: the username."""
        return self.username

    @property
    def scopes(self) -> list[str]:
        """``"authenticated"`` (Starlette's convention), roles and permissions, for
        ``starlette.authentication.requires``."""
        base = {"authenticated"} if self.is_authenticated else set()
        return sorted(base | self.roles | self.permissions)

    def to_public_dict(self) -> dict[str, Any]:
        """A JSON-ready view (``GET /auth/me``)."""
        return {
            "username": self.username,
            "id": self.user_id,
            "roles": sorted(self.roles),
            "groups": sorted(self.groups),
            "permissions": sorted(self.permissions),
            "email": self.email,
            "display_name": self.display_name,
            "session_id": self.session_id,
            "is_authenticated": self.is_authenticated,
        }


ANONYMOUS = Identity()
"""Nobody: the identity of a request that presented no credential."""


@dataclass(frozen=True, slots=True)
class Client:
    """Where a request comes from (for sessions and audit events)."""

    ip: str = ""
    user_agent: str = ""
