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
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from urllib.parse import unquote, urlsplit

from ..errors import ConfigError
from ..faces import AsyncFace, Steps, adrive, call_now, drive, passed_on
from ..users import User
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


class SyncStoreAsAsync(AsyncFace):
    """The async face of a store whose I/O is local (SQLite, memory): each operation
    is the sync store's own, passed on.

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

    async def _drive(self, steps: Steps[R]) -> R:
        if not self.offload:
            return drive(steps, call_now)
        loop = asyncio.get_running_loop()
        return await adrive(steps, lambda thunk: loop.run_in_executor(self._executor, thunk))

    get_user = passed_on(Store.get_user, "sync")
    get_user_by_id = passed_on(Store.get_user_by_id, "sync")
    list_users = passed_on(Store.list_users, "sync")
    create_user = passed_on(Store.create_user, "sync")
    update_user = passed_on(Store.update_user, "sync")
    delete_user = passed_on(Store.delete_user, "sync")
    get_group = passed_on(Store.get_group, "sync")
    list_groups = passed_on(Store.list_groups, "sync")
    put_group = passed_on(Store.put_group, "sync")
    delete_group = passed_on(Store.delete_group, "sync")
    create_session = passed_on(Store.create_session, "sync")
    get_session = passed_on(Store.get_session, "sync")
    get_session_user = passed_on(Store.get_session_user, "sync")
    touch_session = passed_on(Store.touch_session, "sync")
    rotate_refresh = passed_on(Store.rotate_refresh, "sync")
    revoke_session = passed_on(Store.revoke_session, "sync")
    list_sessions = passed_on(Store.list_sessions, "sync")
    revoke_user_sessions = passed_on(Store.revoke_user_sessions, "sync")
    incr = passed_on(Store.incr, "sync")
    get_counter = passed_on(Store.get_counter, "sync")
    counter_ttl = passed_on(Store.counter_ttl, "sync")
    expire_counter = passed_on(Store.expire_counter, "sync")
    reset_counter = passed_on(Store.reset_counter, "sync")

    def peek_session_user(
        self, session_id: str, username: str
    ) -> tuple[Session | None, User | None] | None:
        """The sync store's in-memory answer, on the event loop (no thread hop)."""
        peek = getattr(self.sync, "peek_session_user", None)
        return peek(session_id, username) if peek is not None else None

    async def close(self) -> None:
        """Release the thread pool and the sync store."""
        self._executor.shutdown(wait=False)
        self.sync.close()
