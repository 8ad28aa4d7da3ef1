"""Permissions: ``resource:action`` grants, role policies, composable guards, object hooks.

A grant is ``resource:action``.  ``*`` as the action matches any action; ``*`` as a
resource segment matches any one segment, and a resource covers everything below it:
``streams/1:send`` allows ``streams/1/topics/7:send``, ``streams/*:read`` allows
``streams/9/topics/2:read``, ``*:*`` allows everything.

A `PermissionSet` is built once per distinct (roles, groups, direct grants) and caches
its decisions, so a check on the hot path is a dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote

from . import documents
from .caches import LRU, PARSED_GRANTS, PERMISSION_DECISIONS, PERMISSION_SETS
from .config import Settings
from .errors import ConfigError, ValidationError
from .identity import Identity
from .users import RoleHierarchy

__all__ = [
    "AllowAll",
    "DenyAll",
    "Grant",
    "HasPermission",
    "HasRole",
    "IsAuthenticated",
    "IsOwner",
    "ObjectHooks",
    "PermissionSet",
    "Policy",
    "RolePolicy",
    "check_object",
    "parse_grant",
]


@dataclass(frozen=True, slots=True)
class Grant:
    """A parsed ``resource:action``."""

    resource: tuple[str, ...]
    action: str

    def __str__(self) -> str:
        return "/".join(self.resource) + ":" + self.action

    def covers(self, other: Grant) -> bool:
        """True when holding this grant allows `other`."""
        if self.action not in ("*", other.action):
            return False
        if len(self.resource) > len(other.resource):
            return False
        return all(g in ("*", r) for g, r in zip(self.resource, other.resource, strict=False))


_grants: LRU[str, Grant] = LRU(PARSED_GRANTS)


def parse_grant(text: str) -> Grant:
    """Parse ``resource:action``; `ValidationError` for anything else."""
    if not isinstance(text, str):
        raise ValidationError(f"invalid permission {text!r}: expected 'resource:action'")
    grant = _grants.get(text)
    if grant is None:
        grant = _parse_grant(text)
        _grants.put(text, grant)
    return grant


def _parse_grant(text: str) -> Grant:
    resource, sep, action = text.rpartition(":")
    if not sep or not resource or not action or any(ch.isspace() for ch in text):
        raise ValidationError(f"invalid permission {text!r}: expected 'resource:action'")
    parts = tuple(resource.split("/"))
    if any(not part for part in parts):
        raise ValidationError(f"invalid permission {text!r}: empty path segment")
    # A grant on docs/alice must not cover docs/alice/../bob: an app that normalises the
    # path afterwards would serve bob's.  Percent-encoded dots are refused as well.
    if any(unquote(part) in (".", "..") or "\\" in part for part in parts):
        raise ValidationError(f"invalid permission {text!r}: '.' and '..' segments are refused")
    return Grant(parts, action)


class PermissionSet:
    """A set of grants that answers "is this allowed?" quickly, memoising answers."""

    __slots__ = ("_decided", "_exact", "_patterns", "grants")

    def __init__(self, grants: Iterable[str]) -> None:
        parsed = {parse_grant(g) for g in grants}
        self.grants = frozenset(str(g) for g in parsed)
        # Grants with no '*' segment: checked by looking up each prefix of the target.
        self._exact = frozenset(str(g) for g in parsed if "*" not in g.resource)
        self._patterns = tuple(g for g in parsed if "*" in g.resource)
        self._decided: LRU[str, bool] = LRU(PERMISSION_DECISIONS)

    def __repr__(self) -> str:
        return f"PermissionSet({sorted(self.grants)!r})"

    def __contains__(self, permission: object) -> bool:
        return isinstance(permission, str) and self.allows(permission)

    def allows(self, permission: str) -> bool:
        """True when some grant covers `permission`."""
        decided = self._decided.get(permission)
        if decided is None:
            decided = self._decide(parse_grant(permission))
            self._decided.put(permission, decided)
        return decided

    def _decide(self, target: Grant) -> bool:
        exact = self._exact
        if exact:
            prefix = ""
            for part in target.resource:
                prefix = f"{prefix}/{part}" if prefix else part
                if f"{prefix}:{target.action}" in exact or f"{prefix}:*" in exact:
                    return True
        return any(g.covers(target) for g in self._patterns)


def _table(value: object, what: str) -> Mapping[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"'{what}' must be a table/mapping of names to permission lists")
    return value


def _group_key(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"a group name must be a non-empty string, not {name!r}")
    return name.casefold()


def _grant_list(perms: object, owner: str) -> frozenset[str]:
    """A list of permission strings (a bare string is refused: it is not a list of one,
    and iterating it would grant its characters)."""
    if isinstance(perms, str) or not isinstance(perms, list | tuple | set | frozenset):
        raise ValidationError(
            f'{owner}: permissions must be a list of strings such as ["items:read"], '
            f"not {type(perms).__name__}"
        )
    if not all(isinstance(p, str) for p in perms):
        raise ValidationError(f"{owner}: every permission must be a string")
    return frozenset(perms)


class RolePolicy:
    """Which permissions each role and group grants, with the role order.

    Higher roles inherit what lower ones grant (admin gets operator's and viewer's).
    Build it in code, from a dict, or from a TOML / YAML / JSON file::

        [roles]
        order = ["viewer", "operator", "admin"]
        [roles.permissions]
        viewer = ["items:read"]
        operator = ["items:create"]
        admin = ["*:*"]
        [groups]
        lab = ["plants:read"]
    """

    def __init__(
        self,
        permissions: Mapping[str, Iterable[str]] | None = None,
        *,
        hierarchy: RoleHierarchy | None = None,
        groups: Mapping[str, Iterable[str]] | None = None,
    ) -> None:
        self.hierarchy = hierarchy or RoleHierarchy()
        self.role_permissions = {
            self.hierarchy.known([name])[0]: _grant_list(perms, f"role {name!r}")
            for name, perms in _table(permissions, "roles").items()
        }
        self.group_permissions = {
            _group_key(name): _grant_list(perms, f"group {name!r}")
            for name, perms in _table(groups, "groups").items()
        }
        for perms in [*self.role_permissions.values(), *self.group_permissions.values()]:
            for perm in perms:
                parse_grant(perm)
        self._sets: LRU[tuple[frozenset[str], frozenset[str], frozenset[str]], PermissionSet]
        self._sets = LRU(PERMISSION_SETS)

    def __repr__(self) -> str:
        return (
            f"RolePolicy(order={self.hierarchy.order!r}, roles={sorted(self.role_permissions)!r})"
        )

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], hierarchy: RoleHierarchy | None = None
    ) -> RolePolicy:
        """From ``{"roles": {"order": [...], "permissions": {...}}, "groups": {...}}``;
        ``roles`` may also map role names to permission lists directly.  Without an
        ``order`` the roles rank as `hierarchy` (default: viewer, operator, admin)."""
        unknown = sorted(str(key) for key in data if key not in ("roles", "groups"))
        if unknown:
            raise ConfigError(
                f"invalid role policy: unknown table {unknown[0]!r} (known: 'roles', 'groups')"
            )
        roles = data.get("roles", {})
        if not isinstance(roles, Mapping):
            raise ConfigError("invalid role policy: 'roles' must be a table/mapping")
        order = roles.get("order")
        perms = roles.get("permissions")
        if perms is None:
            perms = {k: v for k, v in roles.items() if k != "order"}
        try:
            if order is not None and (isinstance(order, str) or not isinstance(order, list)):
                raise ValidationError("'roles.order' must be a list of role names")
            if order:
                hierarchy = RoleHierarchy(tuple(order))
            return cls(perms, hierarchy=hierarchy, groups=data.get("groups", {}))
        except ValidationError as err:
            raise ConfigError(f"invalid role policy: {err.detail}") from err

    @classmethod
    def from_file(cls, path: str | Path, hierarchy: RoleHierarchy | None = None) -> RolePolicy:
        """From a ``.toml``, ``.yaml`` / ``.yml`` or ``.json`` file (see `from_dict`);
        every error names the file."""
        data = documents.read_file(path, "the role policy")
        try:
            return cls.from_dict(data, hierarchy)
        except ConfigError as err:
            raise ConfigError(f"{path}: {err.detail}") from err

    @classmethod
    def from_settings(cls, settings: Settings) -> RolePolicy:
        """The policy a deployment is configured with, the same for the Gate, the CLI
        and start-up: ``AUTHGATE_POLICY_FILE`` (its ``roles.order`` if it has one, else
        ``AUTHGATE_ROLES``), or the top role granted everything."""
        configured = RoleHierarchy(settings.roles)
        if settings.policy_file:
            return cls.from_file(settings.policy_file, configured)
        return cls({configured.top: ["*:*"]}, hierarchy=configured)

    def permissions_for(
        self,
        roles: frozenset[str],
        groups: frozenset[str] = frozenset(),
        direct: frozenset[str] = frozenset(),
    ) -> PermissionSet:
        """The effective permissions of roles + groups + direct grants (memoised)."""
        key = (roles, groups, direct)
        found = self._sets.get(key)
        if found is None:
            grants: set[str] = set(direct)
            for role in self.hierarchy.implied(roles):
                grants |= self.role_permissions.get(role, frozenset())
            for group in groups:
                grants |= self.group_permissions.get(group, frozenset())
            found = PermissionSet(grants)
            self._sets.put(key, found)
        return found


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
    """One of the roles, or a role ranked above one of them."""

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
        higher = {
            name
            for role in self.roles
            for name in self.hierarchy.order
            if self.hierarchy.rank(name) > self.hierarchy.rank(role) >= 0
        }
        names = sorted(set(self.roles) | higher, key=lambda n: (self.hierarchy.rank(n), n))
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
        return bool(identity.groups & set(shared))

    def describe(self) -> str:
        return "ownership of the object (or a group it is shared with)"


def _field(obj: object, name: str) -> Any:
    if isinstance(obj, Mapping):
        return obj.get(name)
    return getattr(obj, name, None)


# -- object-level hooks ------------------------------------------------------------------


@runtime_checkable
class ObjectHooks(Protocol):
    """What a model may define (the AMSDAL / Django REST framework hooks)."""

    def has_object_permission(self, identity: Identity, action: str) -> bool: ...


def check_object(identity: Identity, obj: object, action: str) -> bool:
    """Decide `action` on `obj` for `identity`.

    The class hook ``has_permission(cls, identity, action)`` and the object hook
    ``has_object_permission(self, identity, action)`` must both allow when defined.
    With neither, the permission ``<resource>:<action>`` decides, where the resource is
    the class's ``__authgate_resource__`` or its lower-cased name.
    """
    cls = type(obj)
    class_hook: Callable[[Identity, str], bool] | None = getattr(cls, "has_permission", None)
    object_hook: Callable[[Identity, str], bool] | None = getattr(
        obj, "has_object_permission", None
    )
    if class_hook is None and object_hook is None:
        resource = getattr(cls, "__authgate_resource__", cls.__name__.lower())
        return identity.can(f"{resource}:{action}")
    if class_hook is not None and not class_hook(identity, action):
        return False
    return object_hook is None or bool(object_hook(identity, action))
