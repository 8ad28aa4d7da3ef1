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
    """The roles of a deployment and which include which.

    By default a chain, lowest first (``viewer < operator < admin``): each role
    includes the ones before it.  `graph` builds any other shape, where a role may
    include several (``editor`` and ``billing`` both include ``viewer``; ``admin``
    includes both), refusing cycles.  Either way one role, the top (the admin role),
    includes every other.  `admits` answers "does a user with these roles satisfy a
    requirement of this role?": yes when one of them is that role or includes it.
    ``order`` is lowest first: every role comes after the roles it includes.
    """

    order: tuple[str, ...] = ("viewer", "operator", "admin")
    #: The roles each role includes directly, as ``(role, (included, ...))`` pairs; empty
    #: for a chain (made from ``order``).  Build it with `graph`.
    includes: tuple[tuple[str, tuple[str, ...]], ...] = ()
    _ranks: Mapping[str, int] = field(init=False, repr=False, compare=False)
    _closure: Mapping[str, frozenset[str]] = field(init=False, repr=False, compare=False)
    _top: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.includes:
            direct: dict[str, tuple[str, ...]] = {}
            for role, below in self.includes:
                key = _normalize_role(role)
                if key in direct:
                    raise ValidationError(f"role {role!r} is listed twice")
                direct[key] = tuple(sorted({_normalize_role(r) for r in below}))
            for below in list(direct.values()):
                for name in below:
                    direct.setdefault(name, ())
            names = _lowest_first(direct)
        else:
            names = tuple(_normalize_role(name) for name in self.order)
            if len(set(names)) != len(names):
                raise ValidationError("role names in a hierarchy must be unique")
            direct = {name: names[i - 1 : i] for i, name in enumerate(names)}
        if not names:
            raise ValidationError("a role hierarchy needs at least one role")
        closure: dict[str, frozenset[str]] = {}
        for name in names:  # lowest first: what a role includes is known before it
            closure[name] = frozenset({name}).union(*(closure[r] for r in direct[name]))
        tops = [name for name in names if len(closure[name]) == len(names)]
        if not tops:
            raise ValidationError(
                "no role includes every other: make one (the admin role) include them all"
            )
        object.__setattr__(self, "order", names)
        object.__setattr__(self, "includes", tuple(sorted(direct.items())) if self.includes else ())
        object.__setattr__(self, "_ranks", {name: rank for rank, name in enumerate(names)})
        object.__setattr__(self, "_closure", closure)
        object.__setattr__(self, "_top", tops[-1])

    @classmethod
    def graph(cls, includes: Mapping[str, Iterable[str]]) -> RoleHierarchy:
        """Roles from which each includes directly: ``{"admin": ["editor", "billing"],
        "editor": ["viewer"], "billing": ["viewer"]}``.  A role only included is a role
        too; a cycle (``a`` includes ``b`` includes ``a``) is a `ValidationError`."""
        if not isinstance(includes, Mapping) or not includes:
            raise ValidationError("a role graph maps each role to the roles it includes")
        pairs = []
        for role, below in includes.items():
            if isinstance(below, str) or not isinstance(below, Iterable):
                raise ValidationError(f"role {role!r}: the roles it includes must be a list")
            pairs.append((role, tuple(below)))
        return cls((), tuple(pairs))

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
        """The role that includes every other (the admin role)."""
        return self._top

    def rank(self, name: str) -> int:
        """A role's place in `order` (after every role it includes), -1 for a role
        outside the hierarchy.  In a graph two roles may rank apart and neither
        include the other: ask `admits` or `implied`, not ranks, what a role grants."""
        return self._ranks.get(name, -1)

    def admits(self, held: Iterable[str], required: str) -> bool:
        """True when a holder of `held` roles satisfies a requirement of `required`."""
        held_set = set(held)
        return required in held_set or any(
            required in self._closure.get(name, ()) for name in held_set
        )

    def including(self, role: str) -> frozenset[str]:
        """The other roles that include `role` (whose holders `admits` for it)."""
        return frozenset(
            name for name, below in self._closure.items() if role in below and name != role
        )

    def highest(self, held: Iterable[str]) -> str | None:
        """The held role that includes the most others (the latest in `order` among
        equals), else None when the hierarchy knows none of `held`."""
        ranked = [name for name in held if name in self._ranks]
        if not ranked:
            return None
        return max(ranked, key=lambda name: (len(self._closure[name]), self._ranks[name]))

    def implied(self, held: Iterable[str]) -> frozenset[str]:
        """`held` plus every role they include (admin implies operator...)."""
        roles = set(held)
        for name in list(roles):
            roles |= self._closure.get(name, frozenset())
        return frozenset(roles)

    def describe(self) -> str:
        """The hierarchy in a line: ``viewer < operator < admin`` for a chain, else
        each role with what it includes."""
        if not self.includes:
            return " < ".join(self.order)
        return "; ".join(
            f"{role} includes {', '.join(below)}" for role, below in self.includes if below
        )


def _lowest_first(direct: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """The roles, each after every role it includes (ties by name), or a
    `ValidationError` that names a cycle."""
    done: dict[str, None] = {}
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycle = [*visiting[visiting.index(name) :], name]
            raise ValidationError(f"roles form a cycle: {' includes '.join(cycle)}")
        visiting.append(name)
        for below in direct[name]:
            visit(below)
        visiting.pop()
        done[name] = None

    for name in sorted(direct):
        visit(name)
    return tuple(done)


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
"""The default role order, lowest first: viewer < operator < admin."""


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
    #: Has the user shown they receive mail at ``email``?  A new address is not.
    email_verified: bool = False
    first_name: str = ""
    last_name: str = ""
    display_name: str = ""
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    version: int = 1
    password_hash: str = field(default="", repr=False)
    scram_credentials: str = field(default="", repr=False)
    #: The user's second factors (`authgate.factors.Factors`, JSON; their secrets
    #: sealed): never serialised into any API answer or log.
    factors: str = field(default="", repr=False)

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
        email_verified: bool = False,
        first_name: str = "",
        last_name: str = "",
        display_name: str = "",
        password_hash: str = "",
        scram_credentials: str = "",
        factors: str = "",
    ) -> User:
        """Build a validated, normalised new user (version 1, fresh id and timestamps)."""
        return cls(
            username=normalize_username(username),
            roles=normalize_roles(roles),
            groups=frozenset(normalize_group_name(g) for g in _as_iter(groups)),
            permissions=_normalize_permissions(permissions),
            enabled=bool(enabled),
            email=_text(email, "email", 320),
            email_verified=_flag(email_verified, "email_verified"),
            first_name=_text(first_name, "first_name", 128),
            last_name=_text(last_name, "last_name", 128),
            display_name=_text(display_name, "display_name", 256),
            password_hash=password_hash,
            scram_credentials=scram_credentials,
            factors=factors,
        )

    def changed(self, **changes: Any) -> User:
        """A copy with `changes` applied (validated), ``version`` bumped, ``updated_at`` now.

        A new ``email`` is unverified: ``email_verified`` becomes False unless `changes`
        sets it too.
        """
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
        if "email_verified" in changes:
            changes["email_verified"] = _flag(changes["email_verified"], "email_verified")
        elif "email" in changes and changes["email"] != self.email:
            changes["email_verified"] = False
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
            "email_verified": self.email_verified,
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


def _flag(value: object, name: str) -> bool:
    # Only a real bool: bool("false") is True, and 1 or None would pass for one silently.
    if not isinstance(value, bool):
        raise ValidationError(f"{name} must be true or false", field=name)
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
