"""`RolePolicy`: what each role and group grants, in the role order of a deployment
(from code, a dict, or a TOML/YAML/JSON file)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .. import documents
from ..caches import LRU, PERMISSION_SETS
from ..config import Settings
from ..errors import ConfigError, ValidationError
from ..users import RoleHierarchy
from .grants import PermissionSet, parse_grant

__all__ = ["RolePolicy"]


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
    """Which permissions each role and group grants, with the roles' hierarchy.

    A role gets what every role it includes grants (admin gets operator's and
    viewer's).  Build it in code, from a dict, or from a TOML / YAML / JSON file, the
    roles a chain (``order``, lowest first)::

        [roles]
        order = ["viewer", "operator", "admin"]
        [roles.permissions]
        viewer = ["items:read"]
        operator = ["items:create"]
        admin = ["*:*"]
        [groups]
        lab = ["plants:read"]

    or a graph (``include``: the roles each includes)::

        [roles.include]
        admin = ["editor", "billing"]
        editor = ["viewer"]
        billing = ["viewer"]
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
        """From ``{"roles": {"order": [...], "permissions": {...}}, "groups": {...}}``
        (or ``"include": {role: [included, ...]}`` in place of ``order``); ``roles`` may
        also map role names to permission lists directly.  Without an ``order`` or an
        ``include`` the roles are `hierarchy`'s (default: viewer, operator, admin)."""
        unknown = sorted(str(key) for key in data if key not in ("roles", "groups"))
        if unknown:
            raise ConfigError(
                f"invalid role policy: unknown table {unknown[0]!r} (known: 'roles', 'groups')"
            )
        roles = data.get("roles", {})
        if not isinstance(roles, Mapping):
            raise ConfigError("invalid role policy: 'roles' must be a table/mapping")
        order = roles.get("order")
        include = roles.get("include")
        perms = roles.get("permissions")
        if perms is None:
            perms = {k: v for k, v in roles.items() if k not in ("order", "include")}
        try:
            if order is not None and include is not None:
                raise ValidationError(
                    "give 'roles.order' (a chain) or 'roles.include' (a graph), not both"
                )
            if order is not None and (isinstance(order, str) or not isinstance(order, list)):
                raise ValidationError("'roles.order' must be a list of role names")
            if order:
                hierarchy = RoleHierarchy(tuple(order))
            if include is not None:
                hierarchy = RoleHierarchy.graph(_table(include, "roles.include"))
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
