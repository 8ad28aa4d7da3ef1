"""Why a user may or may not do something: every effective grant with where it comes
from (a role, and the role that brought it in; a group; a direct grant), those that
cover the permission asked about, and, for a refusal, what would allow it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..users import User
from .grants import PermissionSet, parse_grant
from .roles import RolePolicy

__all__ = ["Explanation", "Source", "explain"]


@dataclass(frozen=True, slots=True)
class Source:
    """One grant a user holds and where it comes from: ``via`` is ``"role"``,
    ``"group"`` or ``"direct"``; ``name`` the role or group; ``through`` the role the
    user holds that includes ``name`` (empty when the user holds ``name`` itself)."""

    grant: str
    via: str
    name: str = ""
    through: str = ""

    def __str__(self) -> str:
        if self.via == "direct":
            return f"{self.grant} (a direct grant)"
        where = f"{self.via} {self.name}"
        if self.through:
            where += f", included by role {self.through}"
        return f"{self.grant} (from {where})"

    def to_dict(self) -> dict[str, str]:
        """A JSON-ready view."""
        out = {"grant": self.grant, "via": self.via}
        if self.name:
            out["name"] = self.name
        if self.through:
            out["through"] = self.through
        return out


@dataclass(frozen=True, slots=True)
class Explanation:
    """A decision on ``permission`` for ``username``, with its reasons."""

    username: str
    permission: str
    allowed: bool
    #: Every grant the user holds, with its source.
    grants: tuple[Source, ...]
    #: The grants that cover ``permission`` (empty: refused).
    matched: tuple[Source, ...]
    #: For a refusal: what would allow it (``role editor``, ``group lab``, a direct grant).
    would_allow: tuple[str, ...] = field(default=())

    def __str__(self) -> str:
        verdict = "allowed" if self.allowed else "refused"
        lines = [f"{self.permission} for {self.username}: {verdict}"]
        if self.matched:
            lines += ["because of:", *(f"  {source}" for source in self.matched)]
        if self.would_allow:
            lines += ["it would be allowed by:", *(f"  {way}" for way in self.would_allow)]
        lines += ["grants held:", *(f"  {source}" for source in self.grants or ("(none)",))]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the HTTP API's and the CLI's ``--json``)."""
        return {
            "username": self.username,
            "permission": self.permission,
            "allowed": self.allowed,
            "matched": [source.to_dict() for source in self.matched],
            "would_allow": list(self.would_allow),
            "grants": [source.to_dict() for source in self.grants],
        }


def explain(
    policy: RolePolicy,
    user: User,
    permission: str,
    store_groups: Mapping[str, frozenset[str]] | None = None,
) -> Explanation:
    """Explain whether `user` holds `permission` under `policy` (`store_groups`: the
    grants of the user's groups kept in the store).  The decision is the one
    `RolePolicy.permissions_for` makes; a malformed permission is a `ValidationError`."""
    parse_grant(permission)
    hierarchy = policy.hierarchy
    sources: list[Source] = []
    for role in sorted(hierarchy.implied(user.roles), key=lambda r: (hierarchy.rank(r), r)):
        through = "" if role in user.roles else _holder(hierarchy, user.roles, role)
        for grant in sorted(policy.role_permissions.get(role, ())):
            sources.append(Source(grant, "role", role, through))
    for group in sorted(user.groups):
        defined = policy.group_permissions.get(group)
        kept = (store_groups or {}).get(group, frozenset()) if defined is None else defined
        sources += [Source(grant, "group", group) for grant in sorted(kept)]
    sources += [Source(grant, "direct") for grant in sorted(user.permissions)]
    matched = tuple(s for s in sources if PermissionSet([s.grant]).allows(permission))
    would: tuple[str, ...] = ()
    if not matched:
        roles = [
            f"role {role}"
            for role in hierarchy.order
            if PermissionSet(
                [g for r in hierarchy.implied({role}) for g in policy.role_permissions.get(r, ())]
            ).allows(permission)
        ]
        groups = [
            f"group {name}"
            for name, grants in sorted(policy.group_permissions.items())
            if PermissionSet(grants).allows(permission)
        ]
        would = (*roles, *groups, f"a direct grant of {permission}")
    return Explanation(user.username, permission, bool(matched), tuple(sources), matched, would)


def _holder(hierarchy: Any, held: frozenset[str], role: str) -> str:
    """The held role that includes `role` (the first in order)."""
    for name in sorted(held, key=lambda r: (hierarchy.rank(r), r)):
        if hierarchy.admits({name}, role):
            return name
    return ""
