"""Composable guards (`Policy`, combined with ``&``, ``|``, ``~``) and the object-level
rules; a missing check denies, never grants.  The models' own hooks are in `objects`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..identity import Identity
from ..users import RoleHierarchy
from .grants import parse_grant

__all__ = [
    "AllowAll",
    "DenyAll",
    "HasPermission",
    "HasRole",
    "IsAuthenticated",
    "IsOwner",
    "Policy",
]


# -- composable guards ------------------------------------------------------------------


class Policy:
    """A guard: `allows(identity)` for the class level, `allows_object(identity, obj)`
    for one object.  Combine with ``&``, ``|`` and ``~``.

    Unlike Django REST framework, an operand's two checks are judged together: in
    ``A | B`` on an object, A counts only if *both* its checks pass, so
    ``HasRole("admin") | IsOwner()`` never lets a non-admin non-owner through.
    """

    def allows(self, identity: Identity) -> bool:
        """The class-level decision (no object)."""
        raise NotImplementedError

    def allows_object(self, identity: Identity, obj: object) -> bool:
        """The decision for one object: by default, the class-level one."""
        return self.allows(identity)

    def describe(self) -> str:
        """What this policy requires, for a 403 message."""
        return type(self).__name__

    def __and__(self, other: Policy) -> Policy:
        return _And(self, other)

    def __or__(self, other: Policy) -> Policy:
        return _Or(self, other)

    def __invert__(self) -> Policy:
        return _Not(self)


@dataclass(frozen=True)
class _And(Policy):
    left: Policy
    right: Policy

    def allows(self, identity: Identity) -> bool:
        return self.left.allows(identity) and self.right.allows(identity)

    def allows_object(self, identity: Identity, obj: object) -> bool:
        return self.left.allows_object(identity, obj) and self.right.allows_object(identity, obj)

    def describe(self) -> str:
        return f"({self.left.describe()} and {self.right.describe()})"


@dataclass(frozen=True)
class _Or(Policy):
    left: Policy
    right: Policy

    def allows(self, identity: Identity) -> bool:
        return self.left.allows(identity) or self.right.allows(identity)

    def allows_object(self, identity: Identity, obj: object) -> bool:
        return any(
            side.allows(identity) and side.allows_object(identity, obj)
            for side in (self.left, self.right)
        )

    def describe(self) -> str:
        return f"({self.left.describe()} or {self.right.describe()})"


@dataclass(frozen=True)
class _Not(Policy):
    inner: Policy

    def allows(self, identity: Identity) -> bool:
        return not self.inner.allows(identity)

    def allows_object(self, identity: Identity, obj: object) -> bool:
        return not (self.inner.allows(identity) and self.inner.allows_object(identity, obj))

    def describe(self) -> str:
        return f"not {self.inner.describe()}"


@dataclass(frozen=True)
class AllowAll(Policy):
    """Everyone, anonymous included."""

    def allows(self, identity: Identity) -> bool:
        return True

    def describe(self) -> str:
        return "nothing"


@dataclass(frozen=True)
class DenyAll(Policy):
    """Nobody."""

    def allows(self, identity: Identity) -> bool:
        return False

    def describe(self) -> str:
        return "an impossible condition"


@dataclass(frozen=True)
class IsAuthenticated(Policy):
    """Any authenticated identity."""

    def allows(self, identity: Identity) -> bool:
        return identity.is_authenticated

    def describe(self) -> str:
        return "authentication"


@dataclass(frozen=True)
class HasRole(Policy):
    """One of the roles, or a role that includes one of them."""

    roles: tuple[str, ...]
    hierarchy: RoleHierarchy = field(default_factory=RoleHierarchy)

    def __init__(self, *roles: str, hierarchy: RoleHierarchy | None = None) -> None:
        if not roles:
            raise ValueError("HasRole needs at least one role")
        h = hierarchy or RoleHierarchy()
        object.__setattr__(self, "hierarchy", h)
        object.__setattr__(self, "roles", tuple(h[r].name for r in roles))

    def allows(self, identity: Identity) -> bool:
        return identity.is_authenticated and any(
            self.hierarchy.admits(identity.roles, role) for role in self.roles
        )

    def describe(self) -> str:
        including = {name for role in self.roles for name in self.hierarchy.including(role)}
        names = sorted(set(self.roles) | including, key=lambda n: (self.hierarchy.rank(n), n))
        return " or ".join(names) + " role"


@dataclass(frozen=True)
class HasPermission(Policy):
    """Every one of the permissions (``resource:action``)."""

    permissions: tuple[str, ...]

    def __init__(self, *permissions: str) -> None:
        if not permissions:
            raise ValueError("HasPermission needs at least one permission")
        for perm in permissions:
            parse_grant(perm)
        object.__setattr__(self, "permissions", permissions)

    def allows(self, identity: Identity) -> bool:
        return identity.is_authenticated and all(
            identity.grants.allows(p) for p in self.permissions
        )

    def describe(self) -> str:
        return " and ".join(self.permissions) + " permission"


@dataclass(frozen=True)
class IsOwner(Policy):
    """The object's owner, or a member of a group it is shared with (PlantDB's rule).

    The object carries the owner's username in `owner_attr` and, optionally, group
    names in `groups_attr`; dicts work too.  Without an object it denies.
    """

    owner_attr: str = "owner"
    groups_attr: str | None = "shared_with"

    def allows(self, identity: Identity) -> bool:
        return identity.is_authenticated

    def allows_object(self, identity: Identity, obj: object) -> bool:
        if not identity.is_authenticated:
            return False
        if _field(obj, self.owner_attr) == identity.username:
            return True
        if self.groups_attr is None:
            return False
        shared = _field(obj, self.groups_attr) or ()
        if isinstance(shared, str):  # one group, not the set of its letters
            shared = (shared,)
        return not identity.groups.isdisjoint(shared)

    def describe(self) -> str:
        if self.groups_attr is None:
            return "ownership of the object"
        return "ownership of the object (or a group it is shared with)"


def _field(obj: object, name: str) -> Any:
    if type(obj) is dict or isinstance(obj, Mapping):  # a plain dict skips the ABC check
        return obj.get(name)
    return getattr(obj, name, None)
