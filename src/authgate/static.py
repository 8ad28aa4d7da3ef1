"""Users kept in configuration: a read-only user source (bluesky-httpserver's
``DictionaryAPIAccessControl``).

::

    users:
      bob:
        roles: [admin, expert]          # a list, or a single string
        email: bob@example.com
      jdoe:
        roles: advanced
        displayed_name: Doe, John
        password_hash: $argon2id$...    # optional: lets jdoe log in through the Gate
    roles:                              # optional: change or add role definitions
      advanced: {scopes_add: ["write:queue:edit"]}
      auditor: {scopes_set: ["read:status"]}

``users: None`` means nobody may use the API; ``bob: None`` is a known user with no
roles.  `StaticUserStore` serves these users to a `Gate` (read-only) and keeps sessions
and counters in another store.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from . import documents
from .errors import ConfigError, StoreError, ValidationError
from .faces import Steps, SyncFace, call_now, drive, passed_on
from .stores.base import Page, Session, Store
from .users import User, normalize_username

T = TypeVar("T")

__all__ = ["DEFAULT_ROLE_SCOPES", "StaticAccess", "StaticUserStore"]

#: The built-in roles and their scopes (bluesky-httpserver's, in spirit).
DEFAULT_ROLE_SCOPES: Mapping[str, frozenset[str]] = {
    "observer": frozenset({"read:status", "read:queue", "read:history"}),
    "user": frozenset(
        {"read:status", "read:queue", "read:history", "write:queue:edit", "user:apikeys"}
    ),
    "advanced": frozenset(
        {
            "read:status",
            "read:queue",
            "read:history",
            "write:queue:edit",
            "write:queue:control",
            "user:apikeys",
        }
    ),
    "expert": frozenset(
        {
            "read:status",
            "read:queue",
            "read:history",
            "write:queue:edit",
            "write:queue:control",
            "write:execute",
            "user:apikeys",
        }
    ),
    "admin": frozenset({"*:*"}),
}

_EPOCH = datetime(2000, 1, 1, tzinfo=timezone.utc)
_USER_KEYS = {"roles", "displayed_name", "email", "password_hash", "permissions"}


def _as_set(value: Any, what: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, Iterable) and all(isinstance(v, str) for v in value):
        return frozenset(value)
    raise ConfigError(f"{what} must be a string or a list of strings")


class StaticAccess:
    """Users, roles and scopes from a dict or a YAML / TOML / JSON file."""

    def __init__(
        self,
        users: Mapping[str, Any] | None = None,
        roles: Mapping[str, Any] | None = None,
    ) -> None:
        self.role_scopes: dict[str, frozenset[str]] = dict(DEFAULT_ROLE_SCOPES)
        for name, spec in (roles or {}).items():
            self.role_scopes[name] = self._role(name, spec)
        self.users: dict[str, dict[str, Any]] = {}
        for raw_name, info in (users or {}).items():
            try:
                name = normalize_username(raw_name)
            except ValidationError as err:
                raise ConfigError(f"user {raw_name!r}: {err.detail}") from err
            if isinstance(info, str) and info.lower() in ("none", "null"):
                info = None  # YAML reads the seed's `bob: None` as the string "None"
            if info is not None and not isinstance(info, Mapping):
                raise ConfigError(f"user {raw_name!r}: expected a mapping or None")
            info = dict(info or {})
            info.setdefault("displayed_name", info.pop("dislayed_name", None))
            unknown = set(info) - _USER_KEYS
            if unknown:
                raise ConfigError(f"user {raw_name!r}: unknown keys {sorted(unknown)}")
            held = _as_set(info.get("roles"), f"roles of {raw_name!r}")
            strangers = sorted(held - set(self.role_scopes))
            if strangers:
                raise ConfigError(
                    f"user {raw_name!r}: unknown role {strangers[0]!r}: the roles are "
                    f"{', '.join(self.role_scopes)} (define others under 'roles')"
                )
            self.users[name] = {
                "roles": held,
                "displayed_name": info.get("displayed_name") or "",
                "email": info.get("email") or "",
                "password_hash": info.get("password_hash") or "",
                "permissions": _as_set(info.get("permissions"), f"permissions of {raw_name!r}"),
            }

    def _role(self, name: str, spec: Any) -> frozenset[str]:
        if isinstance(spec, list | str):
            return _as_set(spec, f"role {name!r}")
        if not isinstance(spec, Mapping):
            raise ConfigError(f"role {name!r} must be a list of scopes or a mapping")
        unknown = set(spec) - {"scopes_set", "scopes_add", "scopes_remove"}
        if unknown:
            raise ConfigError(f"role {name!r}: unknown keys {sorted(unknown)}")
        base = (
            _as_set(spec["scopes_set"], f"role {name!r}")
            if "scopes_set" in spec
            else self.role_scopes.get(name, frozenset())
        )
        return (base | _as_set(spec.get("scopes_add"), f"role {name!r}")) - _as_set(
            spec.get("scopes_remove"), f"role {name!r}"
        )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StaticAccess:
        """From ``{"users": ..., "roles": ...}``; a missing or null ``users`` is nobody."""
        users = data.get("users")
        if users in (None, "None", "none", "null"):
            users = None
        return cls(users, data.get("roles"))

    @classmethod
    def from_file(cls, path: str | Path) -> StaticAccess:
        """From a ``.yaml`` / ``.yml``, ``.toml`` or ``.json`` file."""
        return cls.from_dict(documents.read_file(path, "the static users file"))

    def _get(self, username: str) -> dict[str, Any] | None:
        try:
            return self.users.get(normalize_username(username))
        except ValidationError:
            return None

    def is_user_known(self, username: str) -> bool:
        """Is `username` in the configuration?"""
        return self._get(username) is not None

    def get_user_roles(self, username: str) -> set[str]:
        """The user's roles (empty for unknown users)."""
        info = self._get(username)
        return set(info["roles"]) if info else set()

    def get_user_scopes(self, username: str) -> set[str]:
        """The scopes of the user's roles, plus the user's own grants."""
        info = self._get(username)
        if info is None:
            return set()
        scopes = set(info["permissions"])
        for role in info["roles"]:
            scopes |= self.role_scopes.get(role, frozenset())
        return scopes

    def get_displayed_user_name(self, username: str) -> str:
        """``jdoe "Doe, John <jdoe@example.com>"``, ``jdoe "<jdoe@example.com>"``,
        ``jdoe "Doe, John"`` or ``jdoe``, depending on what is known."""
        info = self._get(username)
        if info is None:
            return username
        name, email = info["displayed_name"], info["email"]
        if name and email:
            return f'{username} "{name} <{email}>"'
        if email:
            return f'{username} "<{email}>"'
        if name:
            return f'{username} "{name}"'
        return username

    def get_user_info(self, username: str) -> dict[str, Any]:
        """Roles, scopes and displayed name in one dict."""
        return {
            "username": username,
            "roles": sorted(self.get_user_roles(username)),
            "scopes": sorted(self.get_user_scopes(username)),
            "displayed_name": self.get_displayed_user_name(username),
            "email": (self._get(username) or {}).get("email", ""),
        }

    def user_record(self, username: str) -> User | None:
        """The configured user as a `User` (stable id; scopes as direct grants)."""
        info = self._get(username)
        if info is None:
            return None
        name = normalize_username(username)
        return User(
            username=name,
            id=uuid.uuid5(uuid.NAMESPACE_URL, f"authgate-static:{name}").hex,
            roles=info["roles"],
            permissions=frozenset(self.get_user_scopes(name)),
            email=info["email"],
            display_name=info["displayed_name"],
            created_at=_EPOCH,
            updated_at=_EPOCH,
            password_hash=info["password_hash"],
        )


class StaticUserStore(SyncFace):
    """A `Store` whose users come from a `StaticAccess` (read-only) and whose sessions,
    counters and groups live in `inner` (memory, SQLite or Redis)."""

    def _drive(self, steps: Steps[T]) -> T:
        return drive(steps, call_now)

    def __init__(self, access: StaticAccess, inner: Store) -> None:
        self.access = access
        self.inner = inner
        self.url = inner.url

    def _read_only(self) -> StoreError:
        return StoreError("users come from the static configuration: edit the file instead")

    def get_user(self, username: str) -> User | None:
        return self.access.user_record(username)

    def get_user_by_id(self, user_id: str) -> User | None:
        for name in self.access.users:
            user = self.access.user_record(name)
            if user is not None and user.id == user_id:
                return user
        return None

    def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        names = sorted(n for n in self.access.users if after is None or n > after)
        users = [u for u in map(self.access.user_record, names[:limit]) if u is not None]
        return Page(users, names[limit - 1] if len(names) > limit else None)

    def create_user(self, user: User) -> User:
        raise self._read_only()

    def update_user(self, user: User, expected_version: int) -> User:
        raise self._read_only()

    def delete_user(self, username: str, expected_version: int | None = None) -> None:
        raise self._read_only()

    def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        return self.inner.get_session(session_id), self.access.user_record(username)

    # groups, sessions and counters: the inner store's
    get_group = passed_on(Store.get_group, "inner")
    list_groups = passed_on(Store.list_groups, "inner")
    put_group = passed_on(Store.put_group, "inner")
    delete_group = passed_on(Store.delete_group, "inner")
    create_session = passed_on(Store.create_session, "inner")
    get_session = passed_on(Store.get_session, "inner")
    touch_session = passed_on(Store.touch_session, "inner")
    rotate_refresh = passed_on(Store.rotate_refresh, "inner")
    revoke_session = passed_on(Store.revoke_session, "inner")
    list_sessions = passed_on(Store.list_sessions, "inner")
    revoke_user_sessions = passed_on(Store.revoke_user_sessions, "inner")
    incr = passed_on(Store.incr, "inner")
    get_counter = passed_on(Store.get_counter, "inner")
    counter_ttl = passed_on(Store.counter_ttl, "inner")
    expire_counter = passed_on(Store.expire_counter, "inner")
    reset_counter = passed_on(Store.reset_counter, "inner")

    def close(self) -> None:
        """Close the inner store."""
        self.inner.close()
