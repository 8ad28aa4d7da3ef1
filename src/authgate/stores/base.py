"""The store protocol: what every backend offers, in a sync and an async face.

Backends differ in where records live; they agree on behaviour, which the contract
suite in ``tests/test_store_contract.py`` pins down:

- usernames are unique after normalisation (`authgate.users.normalize_username`);
- `update_user` writes only when the stored version equals ``expected_version``;
- `delete_user` removes the user from every index, its sessions included;
- `list_users` pages by username (keyset), so a page never repeats or skips a user
  that existed when the listing started, whatever is inserted meanwhile;
- `incr` is atomic across threads, processes and hosts; the expiry is set by the
  first increment of a window; a counter never goes below zero;
- sessions past ``expires_at`` are gone: `get_session` returns None.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, runtime_checkable

from ..users import Group, Page, Session, User

__all__ = ["AsyncStore", "Page", "Session", "Store"]


@runtime_checkable
class Store(Protocol):
    """The synchronous face of a store (used by WSGI apps, the CLI, scripts)."""

    url: str

    # users
    def get_user(self, username: str) -> User | None:
        """The user with this (normalised) username, or None."""

    def get_user_by_id(self, user_id: str) -> User | None:
        """The user with this id, or None."""

    def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        """Users ordered by username, starting after the username `after`."""

    def create_user(self, user: User) -> User:
        """Insert a new user; `UserExists` when the username is taken."""

    def update_user(self, user: User, expected_version: int) -> User:
        """Replace a user if its stored version is `expected_version`, else
        `VersionConflict` (or `UserNotFound`); nothing is written on refusal."""

    def delete_user(self, username: str, expected_version: int | None = None) -> None:
        """Delete a user, its indexes and its sessions; `UserNotFound` if absent; with
        `expected_version`, `VersionConflict` (nothing deleted) if the stored user is at
        another version: the delete applies only to the record it was decided on."""

    # groups
    def get_group(self, name: str) -> Group | None:
        """The group with this name, or None."""

    def list_groups(self) -> list[Group]:
        """All groups, ordered by name."""

    def put_group(self, group: Group) -> Group:
        """Create or replace a group."""

    def delete_group(self, name: str) -> None:
        """Delete a group; `NotFound` if absent."""

    # sessions
    def create_session(self, session: Session) -> Session:
        """Store a new session."""

    def get_session(self, session_id: str) -> Session | None:
        """The live session with this id, or None (missing, revoked or expired)."""

    def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        """The live session and the user, read together (one round trip where the
        backend allows): the per-request check of a stateful `Gate`.

        An answer from a store's session cache (SQLite, Redis) carries only what the
        check reads: the session without its refresh hash, client details, data or
        ``created_at``, the user without its password hash or SCRAM credentials.  Read
        records to change with `get_session` and `get_user`, never from here."""

    def touch_session(self, session_id: str, last_seen: datetime) -> bool:
        """Record activity; False when the session is gone."""

    def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool:
        """Atomically swap the refresh hash if it still equals `expected_hash`."""

    def revoke_session(self, session_id: str) -> bool:
        """Delete one session; False when it was already gone."""

    def list_sessions(self, username: str) -> list[Session]:
        """The user's live sessions, oldest first."""

    def revoke_user_sessions(self, username: str, keep: str | None = None) -> int:
        """Delete all of a user's sessions except `keep`; return how many went."""

    # counters
    def incr(self, key: str, ttl_seconds: float, by: int = 1) -> int:
        """Atomically add `by` (one; -1 gives a reservation back) and return the new
        value, never below zero; a new counter expires `ttl_seconds` after its first
        hit."""

    def get_counter(self, key: str) -> int:
        """The counter's value, 0 when absent or expired."""

    def counter_ttl(self, key: str) -> float:
        """Seconds until the counter expires, 0 when absent."""

    def expire_counter(self, key: str, ttl_seconds: float) -> bool:
        """Make a live counter expire `ttl_seconds` from now; False when absent."""

    def reset_counter(self, key: str) -> None:
        """Delete a counter."""

    def close(self) -> None:
        """Release connections."""


@runtime_checkable
class AsyncStore(Protocol):
    """The asynchronous face of a store (used by ASGI apps); same meaning as `Store`."""

    url: str

    async def get_user(self, username: str) -> User | None: ...
    async def get_user_by_id(self, user_id: str) -> User | None: ...
    async def list_users(self, after: str | None = None, limit: int = 100) -> Page: ...
    async def create_user(self, user: User) -> User: ...
    async def update_user(self, user: User, expected_version: int) -> User: ...
    async def delete_user(self, username: str, expected_version: int | None = None) -> None: ...
    async def get_group(self, name: str) -> Group | None: ...
    async def list_groups(self) -> list[Group]: ...
    async def put_group(self, group: Group) -> Group: ...
    async def delete_group(self, name: str) -> None: ...
    async def create_session(self, session: Session) -> Session: ...
    async def get_session(self, session_id: str) -> Session | None: ...
    async def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]: ...
    async def touch_session(self, session_id: str, last_seen: datetime) -> bool: ...
    async def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool: ...
    async def revoke_session(self, session_id: str) -> bool: ...
    async def list_sessions(self, username: str) -> list[Session]: ...
    async def revoke_user_sessions(self, username: str, keep: str | None = None) -> int: ...
    async def incr(self, key: str, ttl_seconds: float, by: int = 1) -> int: ...
    async def get_counter(self, key: str) -> int: ...
    async def counter_ttl(self, key: str) -> float: ...
    async def expire_counter(self, key: str, ttl_seconds: float) -> bool: ...
    async def reset_counter(self, key: str) -> None: ...
    async def close(self) -> None: ...


class Sweeper:
    """When a store that keeps expired records (SQLite, memory, JSON files) should delete
    them: at most once per `interval` seconds, on a write.  Records written for anonymous
    requests (SCRAM handshakes, failure counters for made-up names) then cannot pile up.
    """

    __slots__ = ("_next", "interval")

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._next = 0.0

    def due(self, now: float) -> bool:
        """True at most once per interval (the caller then sweeps)."""
        if now < self._next:
            return False
        self._next = now + self.interval
        return True
