"""The user model: usernames, users, groups, the role hierarchy, and the records a store
keeps beside them (login sessions, pages of users)."""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import unicodedata
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import total_ordering
from typing import Any

from .errors import InvalidUsername, ValidationError

__all__ = [
    "DEFAULT_ROLES",
    "Group",
    "Page",
    "Role",
    "RoleHierarchy",
    "Session",
    "User",
    "new_session_id",
    "normalize_group_name",
    "normalize_username",
    "session_tag",
    "shard_of",
    "utcnow",
]

USERNAME_MIN = 3
USERNAME_MAX = 64
#: Beside letters and digits; ``+`` because email addresses (``alice+work@...``) are
#: the login names of many apps' own users tables.
_EXTRA_USERNAME_CHARS = frozenset("._-@+")


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (every timestamp authgate stores)."""
    return datetime.now(timezone.utc)


def shard_of(name: str) -> str:
    """The shard a store that spreads users over servers (Redis Cluster) files `name`'s
    records under: four hex digits of its SHA-256, the same in every process."""
    return hashlib.sha256(name.encode()).hexdigest()[:4]


def session_tag(username: str) -> str:
    """Eight hex digits of the SHA-256 of `username` (the first four its `shard_of`):
    what a session id of the user's begins with."""
    return hashlib.sha256(username.encode()).hexdigest()[:8]


def new_session_id(username: str) -> str:
    """A fresh id for one of `username`'s sessions (logins, API keys, handshakes): 32 hex
    digits, the first eight `username`'s `session_tag` and the other 24 random (96
    bits), so a store that spreads users over servers (Redis Cluster) finds the
    session's server, and its owner's sessions, from the id alone."""
    return session_tag(username) + secrets.token_hex(12)


def normalize_username(raw: str) -> str:
    """Return the canonical form of a username, or raise `InvalidUsername`.

    NFKC folds compatibility forms (fullwidth letters become ASCII ones) and
    case-folding makes ``Alice`` and ``ALICE`` the same user; NFKC runs again after the
    fold because folding can produce non-normalised sequences.  What remains must be
    3-64 letters, digits, ``.``, ``_``, ``-``, ``@`` or ``+``.
    """
    if not isinstance(raw, str):
        raise InvalidUsername("username must be a string", field="username")
    name = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", raw).casefold())
    if not USERNAME_MIN <= len(name) <= USERNAME_MAX:
        raise InvalidUsername(
            f"username must be {USERNAME_MIN} to {USERNAME_MAX} characters long (got {len(name)})",
            field="username",
        )
    bad = sorted({ch for ch in name if not (ch.isalnum() or ch in _EXTRA_USERNAME_CHARS)})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad[:5])
        raise InvalidUsername(
            f"username may contain only letters, digits, '.', '_', '-', '@' and '+' (not {shown})",
            field="username",
        )
    return name


def normalize_group_name(raw: str) -> str:
    """Group names follow the username rules (normalised, same alphabet)."""
    try:
        return normalize_username(raw)
    except InvalidUsername as err:
        raise ValidationError(err.detail.replace("username", "group name"), field="group") from err


@total_ordering
@dataclass(frozen=True, slots=True)
class Role:
    """A role name with its rank in a hierarchy; higher ranks admit lower requirements.

    Roles compare by rank: ``hierarchy["admin"] > hierarchy["viewer"]``.  A role
    outside the hierarchy has rank -1 and admits only itself.
    """

    name: str
    rank: int = -1

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class RoleHierarchy:
    """An ordered list of role names, lowest first (default viewer < operator < admin).

    `admits` answers "does a user with these roles satisfy a requirement of this
    role?": yes when one of the roles is the required one or ranks above it.
    """

    order: tuple[str, ...] = ("viewer", "operator", "admin")
    _ranks: Mapping[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        names = tuple(_normalize_role(name) for name in self.order)
        if not names:
            raise ValidationError("a role hierarchy needs at least one role")
        if len(set(names)) != len(names):
            raise ValidationError("role names in a hierarchy must be unique")
        object.__setattr__(self, "order", names)
        object.__setattr__(self, "_ranks", {name: rank for rank, name in enumerate(names)})

    def __getitem__(self, name: str) -> Role:
        normal = _normalize_role(name)
        return Role(normal, self._ranks.get(normal, -1))

    def known(self, roles: Iterable[str]) -> list[str]:
        """`roles` normalised, each one of this hierarchy's, else a `ValidationError`
        that lists the known roles (a misspelt role would grant nothing, silently)."""
        if isinstance(roles, str):
            roles = [roles]
        out = []
        for role in roles:
            normal = _normalize_role(role)
            if normal not in self._ranks:
                raise ValidationError(
                    f"unknown role {role!r}: the roles are {', '.join(self.order)}",
                    field="roles",
                )
            out.append(normal)
        return out

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.casefold() in self._ranks

    @property
    def top(self) -> str:
        """The highest role (the admin role)."""
        return self.order[-1]

    def rank(self, name: str) -> int:
        """The rank of a role, -1 for a role outside the hierarchy."""
        return self._ranks.get(name, -1)

    def admits(self, held: Iterable[str], required: str) -> bool:
        """True when a holder of `held` roles satisfies a requirement of `required`."""
        held_set = set(held)
        if required in held_set:
            return True
        need = self._ranks.get(required)
        if need is None:
            return False
        return any(self._ranks.get(name, -1) >= need for name in held_set)

    def highest(self, held: Iterable[str]) -> str | None:
        """The highest-ranked role among `held` that the hierarchy knows, else None."""
        ranked = [name for name in held if name in self._ranks]
        return max(ranked, key=self._ranks.__getitem__) if ranked else None

    def implied(self, held: Iterable[str]) -> frozenset[str]:
        """`held` plus every hierarchy role they rank above (admin implies operator...)."""
        roles = set(held)
        top = max((self._ranks[name] for name in roles if name in self._ranks), default=-1)
        roles.update(self.order[: top + 1])
        return frozenset(roles)


def _normalize_role(name: str) -> str:
    if not isinstance(name, str) or not name.strip():
        raise ValidationError("a role name must be a non-empty string", field="roles")
    normal = unicodedata.normalize("NFKC", name.strip()).casefold()
    if len(normal) > 64 or not all(ch.isalnum() or ch in "._-" for ch in normal):
        raise ValidationError(
            f"invalid role name {name!r}: use letters, digits, '.', '_' or '-'", field="roles"
        )
    return normal


def normalize_roles(roles: Iterable[str]) -> frozenset[str]:
    """Normalise a collection of role names (case-folded, validated)."""
    if isinstance(roles, str):
        roles = [roles]
    return frozenset(_normalize_role(role) for role in roles)


DEFAULT_ROLES = RoleHierarchy()


def _normalize_permissions(perms: Iterable[str]) -> frozenset[str]:
    if isinstance(perms, str):
        perms = [perms]
    out = set()
    for perm in perms:
        if not isinstance(perm, str) or ":" not in perm or perm.strip() != perm or not perm:
            raise ValidationError(
                f"invalid permission {perm!r}: expected 'resource:action'", field="permissions"
            )
        out.add(perm)
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class User:
    """A user record.  Frozen: change it with `dataclasses.replace` (or `User.changed`).

    ``password_hash`` is excluded from ``repr`` and from `to_public_dict`; only the
    stores ever see it.
    """

    username: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    permissions: frozenset[str] = frozenset()
    enabled: bool = True
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    version: int = 1
    password_hash: str = field(default="", repr=False)
    scram_credentials: str = field(default="", repr=False)

    @classmethod
    def new(
        cls,
        username: str,
        *,
        roles: Iterable[str] = (),
        groups: Iterable[str] = (),
        permissions: Iterable[str] = (),
        enabled: bool = True,
        email: str = "",
        first_name: str = "",
        last_name: str = "",
        display_name: str = "",
        password_hash: str = "",
        scram_credentials: str = "",
    ) -> User:
        """Build a validated, normalised new user (version 1, fresh id and timestamps)."""
        return cls(
            username=normalize_username(username),
            roles=normalize_roles(roles),
            groups=frozenset(normalize_group_name(g) for g in _as_iter(groups)),
            permissions=_normalize_permissions(permissions),
            enabled=bool(enabled),
            email=_text(email, "email", 320),
            first_name=_text(first_name, "first_name", 128),
            last_name=_text(last_name, "last_name", 128),
            display_name=_text(display_name, "display_name", 256),
            password_hash=password_hash,
            scram_credentials=scram_credentials,
        )

    def changed(self, **changes: Any) -> User:
        """A copy with `changes` applied (validated), ``version`` bumped, ``updated_at`` now."""
        if "username" in changes or "id" in changes or "version" in changes:
            raise ValidationError("username, id and version cannot be changed")
        if "roles" in changes:
            changes["roles"] = normalize_roles(changes["roles"])
        if "groups" in changes:
            changes["groups"] = frozenset(
                normalize_group_name(g) for g in _as_iter(changes["groups"])
            )
        if "permissions" in changes:
            changes["permissions"] = _normalize_permissions(changes["permissions"])
        for name, limit in (("email", 320), ("first_name", 128), ("last_name", 128)):
            if name in changes:
                changes[name] = _text(changes[name], name, limit)
        if "display_name" in changes:
            changes["display_name"] = _text(changes["display_name"], "display_name", 256)
        return dataclasses.replace(self, version=self.version + 1, updated_at=utcnow(), **changes)

    @property
    def full_name(self) -> str:
        """First and last name joined, or the empty string."""
        return " ".join(part for part in (self.first_name, self.last_name) if part)

    def to_public_dict(self) -> dict[str, Any]:
        """A JSON-ready view of the user for APIs and CLIs: never the password hash."""
        return {
            "id": self.id,
            "username": self.username,
            "roles": sorted(self.roles),
            "groups": sorted(self.groups),
            "permissions": sorted(self.permissions),
            "enabled": self.enabled,
            "email": self.email,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "display_name": self.display_name,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "version": self.version,
        }


@dataclass(frozen=True, slots=True)
class Group:
    """A named set of users' extra permissions (membership is kept on each `User`)."""

    name: str
    permissions: frozenset[str] = frozenset()
    description: str = ""

    @classmethod
    def new(cls, name: str, permissions: Iterable[str] = (), description: str = "") -> Group:
        """Build a validated group."""
        return cls(
            normalize_group_name(name),
            _normalize_permissions(permissions),
            _text(description, "description", 1024),
        )


def _as_iter(value: Iterable[str]) -> Iterable[str]:
    return [value] if isinstance(value, str) else value


def _text(value: object, name: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"{name} must be a string", field=name)
    if len(value) > limit:
        raise ValidationError(f"{name} must be at most {limit} characters", field=name)
    return value


@dataclass(frozen=True, slots=True)
class Session:
    """A login session: what a token's ``sid`` points at, revocable at any time.

    ``refresh_hash`` is the SHA-256 of the current refresh token (the token itself is
    never stored); ``user_version`` is the user's version when the session was made.
    """

    id: str
    username: str
    expires_at: datetime
    created_at: datetime = field(default_factory=utcnow)
    last_seen: datetime = field(default_factory=utcnow)
    client_ip: str = ""
    user_agent: str = ""
    refresh_hash: str = field(default="", repr=False)
    kind: str = "login"
    data: dict[str, str] = field(default_factory=dict, compare=False)

    def is_expired(self, now: datetime | None = None) -> bool:
        """True once ``expires_at`` has passed."""
        return (now or utcnow()) >= self.expires_at

    def to_public_dict(self) -> dict[str, object]:
        """A JSON-ready view for "my sessions" listings (no refresh hash)."""
        return {
            "id": self.id,
            "created_at": self.created_at.isoformat(),
            "last_seen": self.last_seen.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "client_ip": self.client_ip,
            "user_agent": self.user_agent,
            "kind": self.kind,
        }

    def replace(self, **changes: Any) -> Session:
        """A copy with `changes` applied."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Page:
    """One page of users; pass ``next_after`` back as ``after`` for the next page."""

    items: Sequence[User]
    next_after: str | None
