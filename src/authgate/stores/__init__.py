"""Stores: where users, groups, sessions and counters live.

`open_store` and `open_async_store` pick a backend from a URL:

========================================  ============================================
``memory://``                             in process (tests, demos)
``sqlite:///relative.db``,                one SQLite file (the embedded default)
``sqlite:////absolute/path.db``
``json:///path/to/dir``                   JSON files, written atomically
``redis://host:port/db?prefix=authgate``  Redis (``rediss://`` for TLS)
========================================  ============================================
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..users import Group, User
from .base import AsyncStore, Page, Session, Store
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AsyncStore",
    "MemoryStore",
    "Page",
    "SQLiteStore",
    "Session",
    "Store",
    "SyncStoreAsAsync",
    "open_async_store",
    "open_store",
]

R = TypeVar("R")

_SCHEMES = (
    "memory://, sqlite:///path/to/file.db, json:///path/to/dir, "
    "redis://host:port/db or rediss://..."
)


def _sqlite_path(url: str) -> str:
    """The path of a file URL: ``scheme:///relative`` or ``scheme:////absolute``."""
    parts = urlsplit(url)
    scheme = parts.scheme
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(
            f"bad {scheme} URL {url!r}: use {scheme}:///relative/path or {scheme}:////abs/path"
        )
    path = unquote(parts.path[1:] if parts.path.startswith("/") else parts.path)
    if not path:
        raise ConfigError(f"bad {scheme} URL {url!r}: it names no path ({scheme}:///authgate)")
    if _meant_absolute(path):
        raise ConfigError(
            f"{scheme}:///{path} names the relative path {path!r}, which does not exist here, "
            f"while /{path.split('/')[0]} does: for the absolute path write "
            f"{scheme}:////{path} (four slashes), for a relative one create its directory"
        )
    return path


def _meant_absolute(path: str) -> bool:
    """A relative path whose first directory is missing here but exists at the root:
    ``json:///srv/auth`` (three slashes) written for ``/srv/auth``, which would create
    ``./srv/auth`` without a word."""
    head, sep, _ = path.partition("/")
    return (
        bool(sep)
        and not os.path.isabs(path)
        and not os.path.exists(head)
        and os.path.isdir("/" + head)
    )


def _redis_url(url: str) -> str:
    """`url` when its host and port parse (redis-py would fail later, deep inside)."""
    try:
        urlsplit(url).port  # noqa: B018 - parsing it is the check
    except ValueError as err:
        raise ConfigError(f"bad Redis URL: {err} (expected redis://host:port/db)") from None
    return url


def open_store(url: str) -> Store:
    """Open the sync face of the store named by `url`; `ConfigError` for a bad URL,
    `StoreUnavailable` when the server or file cannot be reached."""
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme == "memory":
        return MemoryStore(url)
    if scheme == "sqlite":
        return SQLiteStore(_sqlite_path(url), url=url)
    if scheme in ("redis", "rediss", "unix"):
        from .redis import RedisStore

        return RedisStore(_redis_url(url))
    if scheme == "json":
        from .jsonfile import JSONFileStore

        return JSONFileStore(_sqlite_path(url).rstrip("/") or "/", url=url)
    raise ConfigError(f"unsupported store URL {url!r}: expected {_SCHEMES}")


def open_async_store(url: str) -> AsyncStore:
    """Open the async face of the store named by `url` (see `open_store`)."""
    scheme = urlsplit(url).scheme.lower() if isinstance(url, str) else ""
    if scheme in ("redis", "rediss", "unix"):
        from .redis import AsyncRedisStore

        return AsyncRedisStore(_redis_url(url))
    if scheme == "memory":
        return SyncStoreAsAsync(open_store(url), offload=False)
    return SyncStoreAsAsync(open_store(url))


class SyncStoreAsAsync:
    """The async face of a store whose I/O is local (SQLite, memory).

    SQLite calls run on a small thread pool so the event loop never waits on the disk;
    the memory store answers in-line (``offload=False``), with no thread hop.
    """

    def __init__(self, sync: Store, *, offload: bool = True, max_workers: int = 4) -> None:
        self.sync = sync
        self.url = sync.url
        self.offload = offload
        self._executor = ThreadPoolExecutor(max_workers, thread_name_prefix="authgate-store")

    def __repr__(self) -> str:
        return f"SyncStoreAsAsync({self.sync!r})"

    async def _call(self, fn: Callable[..., R], *args: Any) -> R:
        if not self.offload:
            return fn(*args)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args))

    async def get_user(self, username: str) -> User | None:
        return await self._call(self.sync.get_user, username)

    async def get_user_by_id(self, user_id: str) -> User | None:
        return await self._call(self.sync.get_user_by_id, user_id)

    async def list_users(self, after: str | None = None, limit: int = 100) -> Page:
        return await self._call(self.sync.list_users, after, limit)

    async def create_user(self, user: User) -> User:
        return await self._call(self.sync.create_user, user)

    async def update_user(self, user: User, expected_version: int) -> User:
        return await self._call(self.sync.update_user, user, expected_version)

    async def delete_user(self, username: str, expected_version: int | None = None) -> None:
        return await self._call(self.sync.delete_user, username, expected_version)

    async def get_group(self, name: str) -> Group | None:
        return await self._call(self.sync.get_group, name)

    async def list_groups(self) -> list[Group]:
        return await self._call(self.sync.list_groups)

    async def put_group(self, group: Group) -> Group:
        return await self._call(self.sync.put_group, group)

    async def delete_group(self, name: str) -> None:
        return await self._call(self.sync.delete_group, name)

    async def create_session(self, session: Session) -> Session:
        return await self._call(self.sync.create_session, session)

    async def get_session(self, session_id: str) -> Session | None:
        return await self._call(self.sync.get_session, session_id)

    async def get_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None]:
        return await self._call(self.sync.get_session_user, session_id, username)

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The sync store's in-memory answer, on the event loop (no thread hop)."""
        peek = getattr(self.sync, "peek_session_user", None)
        return peek(session_id, username) if peek is not None else None

    async def touch_session(self, session_id: str, last_seen: datetime) -> bool:
        return await self._call(self.sync.touch_session, session_id, last_seen)

    async def rotate_refresh(
        self, session_id: str, expected_hash: str, new_hash: str, expires_at: datetime
    ) -> bool:
        return await self._call(
            self.sync.rotate_refresh, session_id, expected_hash, new_hash, expires_at
        )

    async def revoke_session(self, session_id: str) -> bool:
        return await self._call(self.sync.revoke_session, session_id)

    async def list_sessions(self, username: str) -> list[Session]:
        return await self._call(self.sync.list_sessions, username)

    async def revoke_user_sessions(self, username: str, keep: str | None = None) -> int:
        return await self._call(self.sync.revoke_user_sessions, username, keep)

    async def incr(self, key: str, ttl_seconds: float) -> int:
        return await self._call(self.sync.incr, key, ttl_seconds)

    async def get_counter(self, key: str) -> int:
        return await self._call(self.sync.get_counter, key)

    async def counter_ttl(self, key: str) -> float:
        return await self._call(self.sync.counter_ttl, key)

    async def expire_counter(self, key: str, ttl_seconds: float) -> bool:
        return await self._call(self.sync.expire_counter, key, ttl_seconds)

    async def reset_counter(self, key: str) -> None:
        return await self._call(self.sync.reset_counter, key)

    async def close(self) -> None:
        self._executor.shutdown(wait=False)
        self.sync.close()
